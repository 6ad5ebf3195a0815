"""Which credentials may serve an operation, or why none may. Pure.

The reasons are distinct because people are told different things: having no BankID at
all, having only expired ones, having only unusable ones, and having usable ones that do
not fit this website's request call for different actions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from agent.credentials.errors import NoneReason, NoUsableCredential
from agent.credentials.model import CredentialInfo, CredentialKind, CredentialState, KeyPurpose
from eidcore.personal_number import PersonalNumber


def select(
    credentials: Iterable[CredentialInfo],
    purpose: KeyPurpose,
    now: dt.datetime,
    *,
    personal_number: PersonalNumber | None = None,
    kinds: frozenset[CredentialKind] | None = None,
    pin_pad: bool = False,
    es256: bool = False,
) -> tuple[CredentialInfo, ...]:
    """The usable credentials for ``purpose`` that match the filters, in a stable order.
    ``es256``: only those whose keys sign ES256 (a bridge order's signedData v2).

    Raises:
        NoUsableCredential: with the reason that tells the person what to do.
    """
    every = tuple(credentials)
    if not every:
        raise NoUsableCredential(NoneReason.NO_BANKID)
    states = [c.state(now) for c in every]
    if all(s is CredentialState.EXPIRED for s in states):
        raise NoUsableCredential(NoneReason.ALL_EXPIRED)
    valid = [c for c, s in zip(every, states, strict=True) if s is CredentialState.USABLE]
    if not valid:
        raise NoUsableCredential(NoneReason.NO_VALID)
    fitting = tuple(
        sorted(
            (
                c
                for c in valid
                if purpose in c.purposes
                and (personal_number is None or c.owner.personal_number == personal_number)
                and (kinds is None or c.kind in kinds)
                and (c.pin_pad or not pin_pad)  # a site may ask for a reader's PIN pad
                and not (es256 and c.rsa)
            ),
            key=lambda c: (c.owner.name, c.kind, c.id),
        )
    )
    if not fitting:
        raise NoUsableCredential(
            NoneReason.NONE_FOR_IDENTIFICATION
            if purpose is KeyPurpose.IDENTIFICATION
            else NoneReason.NONE_FOR_SIGNATURE
        )
    return fitting
