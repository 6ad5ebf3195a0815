"""PKCS#11 tokens — PIV cards through OpenSC, USB keys, HSMs — beside files and cards.

``lib`` is the one importer of python-pkcs11; ``contents`` (what counts as a BankID on a
token) and ``modules`` (which modules to load) are pure; ``probe`` loads a module in a
child process first; ``watcher`` keeps the snapshot the agent uses. See ADR 0015.
"""

from agent.credentials.pkcs11.errors import ModuleUnusable, TokenFault
from agent.credentials.pkcs11.modules import ModuleEntry, find_modules
from agent.credentials.pkcs11.watcher import ModuleProblem, TokenWatcher

__all__ = [
    "ModuleEntry",
    "ModuleProblem",
    "ModuleUnusable",
    "TokenFault",
    "TokenWatcher",
    "find_modules",
]
