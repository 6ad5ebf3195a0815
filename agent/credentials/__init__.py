"""Credentials: BankID on file and BankID on card, behind one store and one selection
rule. The issuer uses this package's credential format (``fileformat``, ``CredentialFile``,
``KdfParams``, ``KeyPurpose``) to write BankIDs on file: that is its public surface."""

from agent.credentials import fileformat  # the format itself: the issuer writes it
from agent.credentials.certificates import describe
from agent.credentials.errors import (
    AlreadyPresent,
    AmbiguousId,
    CannotOpenFile,
    CannotSaveFile,
    CredentialDamaged,
    CredentialError,
    CredentialLocked,
    NoneReason,
    NoSuchCredential,
    NoUsableCredential,
    PasswordTooWeak,
    RemoveFailed,
    StorageFailed,
    UnsupportedVersion,
    WrongCurrentPassword,
    WrongPassword,
)
from agent.credentials.fileformat import (
    MIN_PASSWORD_LENGTH,
    CredentialFile,
    KdfParams,
    check_new_password,
)
from agent.credentials.hardware import Hardware, Watcher, pin_for, pins_of
from agent.credentials.lockout import MAX_PASSWORD_TRIES
from agent.credentials.model import (
    CredentialInfo,
    CredentialKind,
    CredentialState,
    KeyPurpose,
    Owner,
)
from agent.credentials.selection import select
from agent.credentials.store import CredentialStore, DamagedEntry
from agent.credentials.unlocked import ALGORITHM, UnlockedCredential, without_roots

__all__ = [
    "ALGORITHM",
    "MAX_PASSWORD_TRIES",
    "MIN_PASSWORD_LENGTH",
    "AlreadyPresent",
    "AmbiguousId",
    "CannotOpenFile",
    "CannotSaveFile",
    "CredentialDamaged",
    "CredentialError",
    "CredentialFile",
    "CredentialInfo",
    "CredentialKind",
    "CredentialLocked",
    "CredentialState",
    "CredentialStore",
    "DamagedEntry",
    "Hardware",
    "KdfParams",
    "KeyPurpose",
    "NoSuchCredential",
    "NoUsableCredential",
    "NoneReason",
    "Owner",
    "PasswordTooWeak",
    "RemoveFailed",
    "StorageFailed",
    "UnlockedCredential",
    "UnsupportedVersion",
    "Watcher",
    "WrongCurrentPassword",
    "WrongPassword",
    "check_new_password",
    "describe",
    "fileformat",
    "pin_for",
    "pins_of",
    "select",
    "without_roots",
]
