"""The relying-party API as BankID's v6.0 speaks it (``/rp/v6.0/…``), so a site's existing
BankID library works by changing its base URL, its client certificate and the CA it
trusts. Pure: the bodies in, the values the relay's driver uses out, and the answers'
shapes. docs/relay-api.md says, for each field, what the relay does with it.

It is the relay's one API for sites (ADR 0020): BankID's request fields (``requirement``
with ``certificatePolicies``, ``cardReader``, ``pinCode``, ``mrtd``; ``web``, ``app``,
``returnRisk``); the start answer has ``qrStartToken`` and ``qrStartSecret``; an order
that is unknown, another party's, ended or no longer kept is ``400 invalidParameters``
(``404`` is for a wrong path only); the agent's ``updateRequired`` reads as BankID's
``notSupportedByUserApp``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eidcore import policies
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber
from eidcore.signeddata import OrderKind
from eidcore.status import Hint
from relay.requests import (
    ErrorCode,
    OrderStart,
    RelayError,
    ip_address,
    return_url,
    start_data,
)
from relay.rules import CALL_INITIATORS

__all__ = [
    "PATH",
    "StartV6",
    "hint_word",
    "kinds",
    "parse_phone",
    "parse_start",
    "started",
]

PATH = "/rp/v6.0"
_START_FIELDS = {
    "endUserIp",
    "returnUrl",
    "returnRisk",
    "userVisibleData",
    "userVisibleDataFormat",
    "userNonVisibleData",  # BankID's auth takes it too
    "web",
    "app",
    "requirement",
}
_PHONE_FIELDS = {
    "personalNumber",
    "callInitiator",
    "userVisibleData",
    "userVisibleDataFormat",
    "userNonVisibleData",
    "requirement",
}
_REQUIREMENT = {"pinCode", "mrtd", "cardReader", "certificatePolicies", "personalNumber"}
_WEB = {"referringDomain": 256, "userAgent": 256, "deviceIdentifier": 64}
_APP = {"appIdentifier": 256, "deviceOS": 256, "deviceModelName": 256, "deviceIdentifier": 64}
_MAX_POLICIES = 16


@dataclass(frozen=True)
class StartV6:
    """A v6 start, validated. ``start`` is what the relay keeps (its ``token_kinds`` from
    ``cardReader``); ``policies``: ``requirement.certificatePolicies``, which the driver
    turns into kinds with the relay's table; ``unsupported``: what no agent can do
    (``mrtd``: checking a passport), for which the order
    fails as BankID's app fails it."""

    start: OrderStart
    policies: tuple[str, ...] = ()
    unsupported: str | None = None
    call_initiator: str | None = None  # a phone order's: "user" or "RP"


def _invalid(details: str) -> RelayError:
    return RelayError(ErrorCode.INVALID_PARAMETERS, details)


def parse_start(kind: OrderKind, body: Mapping[str, Any]) -> StartV6:
    """Raises: RelayError(invalidParameters) naming the field."""
    data = start_data(kind, body, _START_FIELDS, _START_FIELDS)
    if not isinstance(body.get("returnRisk", False), bool):
        raise _invalid("returnRisk must be true or false")
    _strings(body.get("web"), "web", _WEB)
    _strings(body.get("app"), "app", _APP)
    number, policies, reader, unsupported = _requirement(body.get("requirement"))
    return StartV6(
        start=OrderStart(
            kind=kind,
            end_user_ip=ip_address(body.get("endUserIp")),
            return_url=return_url(body.get("returnUrl")),
            visible=data.visible,
            visible_format=data.visible_format,
            non_visible=data.non_visible,
            personal_number=number,
            token_kinds=("card",) if reader == "class1" else (),
            pin_pad=reader == "class2",
        ),
        policies=policies,
        unsupported=unsupported,
    )


def parse_phone(kind: OrderKind, body: Mapping[str, Any]) -> StartV6:
    """``phone/auth`` or ``phone/sign``: the person is on the phone with the party. No
    ``endUserIp`` (BankID's phone orders have none) and no return URL; the personal number
    is required, and so is who called whom.

    Raises: RelayError(invalidParameters) naming the field."""
    data = start_data(kind, body, _PHONE_FIELDS, _PHONE_FIELDS)
    number = body.get("personalNumber")
    if not isinstance(number, str):
        raise _invalid("personalNumber is required: 12 digits")
    try:
        person = str(PersonalNumber.parse(number))
    except InvalidPersonalNumber as exc:
        raise _invalid(f"personalNumber: 12 digits ({exc.reason})") from None
    initiator = body.get("callInitiator")
    if not isinstance(initiator, str) or initiator not in CALL_INITIATORS:
        raise _invalid("callInitiator must be user or RP")
    requirement = body.get("requirement")
    if isinstance(requirement, dict) and "personalNumber" in requirement:
        raise _invalid("a phone order names the person in personalNumber, not requirement")
    _, policies, reader, unsupported = _requirement(requirement)
    return StartV6(
        start=OrderStart(
            kind=kind,
            end_user_ip="",
            visible=data.visible,
            visible_format=data.visible_format,
            non_visible=data.non_visible,
            personal_number=person,
            token_kinds=("card",) if reader == "class1" else (),
            pin_pad=reader == "class2",
        ),
        policies=policies,
        unsupported=unsupported,
        call_initiator=initiator,
    )


def _strings(value: object, name: str, fields: Mapping[str, int]) -> None:
    """``web`` and ``app``: what the site saw of the person's device. Checked, not kept:
    the relay computes no risk from them (docs/relay-api.md)."""
    if value is None:
        return
    if not isinstance(value, dict) or not set(value) <= set(fields):
        raise _invalid(f"{name} takes {', '.join(fields)}")
    for key, text in value.items():
        if not isinstance(text, str) or len(text) > fields[key]:
            raise _invalid(f"{name}.{key} must be text of at most {fields[key]} characters")


def _requirement(value: object) -> tuple[str | None, tuple[str, ...], str | None, str | None]:
    """(personal number, policy OIDs, card reader class, what cannot be done)."""
    if value is None:
        return None, (), None, None
    if not isinstance(value, dict) or not set(value) <= _REQUIREMENT:
        raise _invalid(f"requirement takes {', '.join(sorted(_REQUIREMENT))}")
    for flag in ("pinCode", "mrtd"):
        if not isinstance(value.get(flag, False), bool):
            raise _invalid(f"requirement.{flag} must be true or false")
    number = value.get("personalNumber")
    if number is not None:
        if not isinstance(number, str):
            raise _invalid("requirement.personalNumber must be a string of 12 digits")
        try:
            number = str(PersonalNumber.parse(number))
        except InvalidPersonalNumber as exc:
            raise _invalid(f"requirement.personalNumber: 12 digits ({exc.reason})") from None
    policies = value.get("certificatePolicies", [])
    if (
        not isinstance(policies, list)
        or len(policies) > _MAX_POLICIES
        or not all(isinstance(p, str) and 0 < len(p) <= 128 for p in policies)
    ):
        raise _invalid(f"requirement.certificatePolicies must be up to {_MAX_POLICIES} OIDs")
    reader = value.get("cardReader")
    if reader not in (None, "class1", "class2"):
        raise _invalid("requirement.cardReader must be class1 or class2")
    unsupported = None
    if value.get("mrtd", False):
        unsupported = "mrtd"  # checking a passport: no agent can
    # pinCode: every BankID here is used with its password or PIN already
    return number, tuple(policies), reader, unsupported


def kinds(parsed: StartV6, table: Mapping[str, str]) -> tuple[str, ...]:
    """The kinds of BankID the order allows: ``cardReader`` means a card;
    ``certificatePolicies`` the kinds of those policies in the relay's table.

    Raises: RelayError(invalidParameters) for a policy no issuer here has, or a
    ``cardReader`` with policies that are no card's."""
    kinds = set(parsed.start.token_kinds) or set(policies.KINDS)
    if parsed.policies:
        unknown = [p for p in parsed.policies if p not in table]
        if unknown:
            raise _invalid(
                f"requirement.certificatePolicies: {unknown[0][:64]} is no policy of this "
                "relay's issuers",
            )
        kinds &= {table[p] for p in parsed.policies}
        if not kinds:
            raise _invalid("requirement: cardReader needs a card's policy")
    return () if kinds == set(policies.KINDS) else tuple(sorted(kinds))


def started(ref: str, token: str, new_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> dict[str, str]:
    """The start answer. ``qrStartToken`` and ``qrStartSecret`` are there so that pages
    and libraries that draw BankID's animated QR code keep working; a scanned code does
    nothing here today (the agent starts from the link, on the same computer)."""
    return {
        "orderRef": ref,
        "autoStartToken": token,
        "qrStartToken": str(new_uuid()),
        "qrStartSecret": str(new_uuid()),
    }


def hint_word(hint: Hint | None, phone: bool = False) -> str | None:
    """A hint as BankID's v6 names it: an agent that must be updated first is an app that
    cannot do the order (``notSupportedByUserApp``). For a phone order, the person's agent
    asking them to confirm the call is ``userCallConfirm``, and the person saying no is
    ``userDeclinedCall``."""
    if hint is Hint.UPDATE_REQUIRED:
        return "notSupportedByUserApp"
    if phone and hint is Hint.STARTED:
        return "userCallConfirm"
    if phone and hint is Hint.USER_CANCEL:
        return "userDeclinedCall"
    return None if hint is None else hint.value
