"""PKCS#11 tokens — PIV cards through OpenSC, USB keys, HSMs — beside files and cards.

``lib`` is the one importer of python-pkcs11; ``contents`` (what counts as a BankID on a
token) and ``modules`` (which modules to load) are pure; ``probe`` loads a module in a
child process first; ``watcher`` keeps the snapshot the agent uses. See ADR 0015.
"""

from agent.credentials.pkcs11 import authorities, pivtool, probe  # used as namespaces
from agent.credentials.pkcs11.authorities import chain_authorities, learn
from agent.credentials.pkcs11.contents import TokenContents
from agent.credentials.pkcs11.errors import (
    CannotEnrolHere,
    ManagementKeyRefused,
    ModuleUnusable,
    PinEntryCancelled,
    TokenFault,
)
from agent.credentials.pkcs11.modules import ModuleEntry, find_modules
from agent.credentials.pkcs11.pivtool import DEFAULT_ADMIN_KEY, AdminKeyUnreadable
from agent.credentials.pkcs11.watcher import (
    PROBE_CACHE,
    ModuleProblem,
    TokenWatcher,
    tokens_now,
    tokens_open,
)

__all__ = [
    "DEFAULT_ADMIN_KEY",
    "PROBE_CACHE",
    "AdminKeyUnreadable",
    "CannotEnrolHere",
    "ManagementKeyRefused",
    "ModuleEntry",
    "ModuleProblem",
    "ModuleUnusable",
    "PinEntryCancelled",
    "TokenContents",
    "TokenFault",
    "TokenWatcher",
    "authorities",
    "chain_authorities",
    "find_modules",
    "learn",
    "pivtool",
    "probe",
    "tokens_now",
    "tokens_open",
]
