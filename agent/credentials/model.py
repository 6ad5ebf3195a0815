"""What the agent knows about a credential without unlocking it."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from eidcore.personal_number import PersonalNumber


class CredentialKind(enum.StrEnum):
    FILE = "file"
    CARD = "card"
    TOKEN = "token"  # noqa: S105 — a PKCS#11 token (PIV card, USB key, HSM), not a secret


class KeyPurpose(enum.StrEnum):
    """Which of a credential's two keys. Never interchangeable (key-use separation)."""

    IDENTIFICATION = "identification"
    SIGNATURE = "signature"


class CredentialState(enum.StrEnum):
    USABLE = "usable"
    EXPIRED = "expired"
    NOT_YET_VALID = "notYetValid"
    LOCKED = "locked"


@dataclass(frozen=True)
class Owner:
    personal_number: PersonalNumber
    given_name: str
    surname: str

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.surname}".strip()


@dataclass(frozen=True)
class CredentialInfo:
    """A credential as listed: readable without the password or PIN.

    Invariant: ``not_before <= not_after``; both are aware datetimes in UTC and bound the
    validity of *both* keys (the intersection of the two certificates).
    """

    id: str
    kind: CredentialKind
    owner: Owner
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    locked: bool
    development: bool
    purposes: frozenset[KeyPurpose]
    tries_left: int | None = None
    pin_pad: bool = False  # the PIN is typed on the reader's PIN pad, never in the agent
    # RSA keys (a security key or PIV card's): they sign BankID's XML (RSA-SHA256), not a
    # bridge order's signedData v2, whose algorithm is ES256 alone (ADR 0021)
    rsa: bool = False

    def state(self, now: dt.datetime) -> CredentialState:
        if self.locked:
            return CredentialState.LOCKED
        if now > self.not_after:
            return CredentialState.EXPIRED
        if now < self.not_before:
            return CredentialState.NOT_YET_VALID
        return CredentialState.USABLE
