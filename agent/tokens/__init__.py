"""Credentials: BankID on file and BankID on card, behind one store and one selection
rule. The issuer uses this package's credential format (``fileformat``, ``FileToken``,
``KdfParams``, ``KeyPurpose``) to write BankIDs on file: that is its public surface."""

from agent.tokens.errors import (
    AlreadyPresent,
    AmbiguousId,
    CannotOpenFile,
    CannotSaveFile,
    CredentialDamaged,
    CredentialLocked,
    NoneReason,
    NoSuchCredential,
    NoUsableCredential,
    PasswordTooWeak,
    RemoveFailed,
    StorageFailed,
    TokenError,
    UnsupportedVersion,
    WrongCurrentPassword,
    WrongPassword,
)
from agent.tokens.fileformat import MIN_PASSWORD_LENGTH, FileToken, KdfParams
from agent.tokens.lockout import MAX_PASSWORD_TRIES
from agent.tokens.model import CredentialInfo, CredentialState, KeyPurpose, Owner, TokenKind
from agent.tokens.selection import select
from agent.tokens.store import DamagedEntry, TokenStore
from agent.tokens.unlocked import ALGORITHM, UnlockedCredential

__all__ = [
    "ALGORITHM",
    "MAX_PASSWORD_TRIES",
    "MIN_PASSWORD_LENGTH",
    "AlreadyPresent",
    "AmbiguousId",
    "CannotOpenFile",
    "CannotSaveFile",
    "CredentialDamaged",
    "CredentialInfo",
    "CredentialLocked",
    "CredentialState",
    "DamagedEntry",
    "FileToken",
    "KdfParams",
    "KeyPurpose",
    "NoSuchCredential",
    "NoUsableCredential",
    "NoneReason",
    "Owner",
    "PasswordTooWeak",
    "RemoveFailed",
    "StorageFailed",
    "TokenError",
    "TokenKind",
    "TokenStore",
    "UnlockedCredential",
    "UnsupportedVersion",
    "WrongCurrentPassword",
    "WrongPassword",
    "select",
]
