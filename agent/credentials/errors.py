"""The token layer's errors: bad data from outside, and conditions a person can act on.

Each carries structured fields; agent/notices.py maps them to catalogue codes in one place.
Messages never contain passwords, PINs or personal numbers.
"""

from __future__ import annotations

import enum


class CredentialError(Exception):
    """Base of every error a credential can raise."""


class WrongPassword(CredentialError):
    def __init__(self, tries_left: int) -> None:
        super().__init__(f"wrong password, {tries_left} tries left")
        self.tries_left = tries_left


class WrongCurrentPassword(WrongPassword):
    """The old password given for a password change was wrong (it counts as a try)."""


class CredentialLocked(CredentialError):
    def __init__(self) -> None:
        super().__init__("credential locked after too many wrong passwords")


class CredentialDamaged(CredentialError):
    """Not a readable credential file. ``detail`` is for the log, never for the wire."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"credential file damaged: {detail}")
        self.detail = detail


class UnsupportedVersion(CredentialDamaged):
    """Written by a newer agent: readable after an update, so not called damaged to people."""

    def __init__(self, version: object) -> None:
        super().__init__(f"unsupported format version {version!r}")
        self.version = version


class NoSuchCredential(CredentialError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"no credential {token_id!r}")
        self.token_id = token_id


class AmbiguousId(NoSuchCredential):
    def __init__(self, token_id: str) -> None:
        super().__init__(token_id)
        self.args = (f"{token_id!r} matches more than one credential",)


class AlreadyPresent(CredentialError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"credential {token_id} is already present")
        self.token_id = token_id


class PasswordTooWeak(CredentialError):
    def __init__(self, min_length: int) -> None:
        super().__init__(f"password shorter than {min_length} characters")
        self.min_length = min_length


class CannotOpenFile(CredentialError):
    """A file a person chose (to import) could not be read or is not a credential."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"cannot open file: {detail}")
        self.detail = detail


class CannotSaveFile(CredentialError):
    """A path a person chose (to export to) could not be written."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"cannot save file: {detail}")
        self.detail = detail


class RemoveFailed(CredentialError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"cannot remove credential: {detail}")
        self.detail = detail


class StorageFailed(CredentialError):
    """The store could not record something it must record (a wrong-password count)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"credential store write failed: {detail}")
        self.detail = detail


class NoneReason(enum.StrEnum):
    NO_BANKID = "noBankid"
    ALL_EXPIRED = "allExpired"
    NO_VALID = "noValid"
    NONE_FOR_IDENTIFICATION = "noneForIdentification"
    NONE_FOR_SIGNATURE = "noneForSignature"


class NoUsableCredential(CredentialError):
    def __init__(self, reason: NoneReason) -> None:
        super().__init__(f"no usable credential: {reason}")
        self.reason = reason
