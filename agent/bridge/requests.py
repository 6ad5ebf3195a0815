"""Request bodies validated into dataclasses at the edge. Pure.

Unknown fields are refused rather than ignored: a page that misspells
``userNonVisibleData`` should learn it now, not discover later that nothing was signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.bridge import limits
from agent.bridge.errors import BridgeError, ErrorCode
from agent.credentials import CredentialKind
from agent.orders import OrderKind, OrderRequest
from eidcore.fields import (
    VISIBLE_FORMATS,
    FieldRefused,
    base64_field,
    json_object,
    shown_and_signed,
)
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber

__all__ = ["VISIBLE_FORMATS", "RefRequest", "parse_json", "parse_order", "parse_ref"]

_AUTH_FIELDS = {"nonce", "personalNumber", "tokenKinds", "userVisibleData", "userVisibleDataFormat"}
_SIGN_FIELDS = _AUTH_FIELDS | {"userNonVisibleData"}


@dataclass(frozen=True)
class RefRequest:
    order_ref: str


def _invalid(details: str) -> BridgeError:
    return BridgeError(ErrorCode.INVALID_PARAMETERS, details)


def parse_json(body: bytes) -> dict[str, Any]:
    """Raises: BridgeError(invalidParameters)."""
    try:
        return json_object(body, limits.MAX_JSON_DEPTH)
    except FieldRefused as exc:
        raise _invalid(exc.details) from None


def parse_order(kind: OrderKind, body: Mapping[str, Any], origin: str) -> OrderRequest:
    """Raises: BridgeError(invalidParameters) naming the field."""
    allowed = _AUTH_FIELDS if kind is OrderKind.AUTH else _SIGN_FIELDS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _invalid(f"unknown field: {unknown[0]}")
    try:
        nonce = _nonce(body.get("nonce"))
        data = shown_and_signed(kind, body)
    except FieldRefused as exc:
        raise _invalid(exc.details) from None
    return OrderRequest(
        kind=kind,
        origin=origin,
        nonce=nonce,
        personal_number=_personal_number(body.get("personalNumber")),
        token_kinds=_token_kinds(body.get("tokenKinds")),
        user_visible_data=data.visible,
        user_visible_format=data.visible_format,
        user_non_visible_data=data.non_visible,
    )


def parse_ref(body: Mapping[str, Any]) -> RefRequest:
    if set(body) != {"orderRef"}:
        raise _invalid("the body must be exactly {orderRef}")
    ref = body["orderRef"]
    if not isinstance(ref, str) or not 0 < len(ref) <= limits.MAX_ORDER_REF_LENGTH:
        raise _invalid("orderRef must be a short string")
    return RefRequest(ref)


def _nonce(value: object) -> bytes:
    """Raises: FieldRefused."""
    if not isinstance(value, str):
        raise FieldRefused("nonce is required: base64 of 32-96 random bytes")
    # Accept both base64 alphabets, padded or not: pages produce either.
    text = value.replace("-", "+").replace("_", "/")
    raw = base64_field(text + "=" * (-len(text) % 4), "nonce", 200)
    if not limits.NONCE_MIN_BYTES <= len(raw) <= limits.NONCE_MAX_BYTES:
        raise FieldRefused("nonce must be 32-96 bytes")
    return raw


def _personal_number(value: object) -> PersonalNumber | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid("personalNumber must be a string of 12 digits")
    try:
        return PersonalNumber.parse(value)
    except InvalidPersonalNumber as exc:
        raise _invalid(f"personalNumber: 12 digits, no hyphen ({exc.reason})") from None


def _token_kinds(value: object) -> frozenset[CredentialKind] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > len(CredentialKind):
        raise _invalid("tokenKinds must be a non-empty list of file, card, token")
    try:
        kinds = frozenset(CredentialKind(v) for v in value)
    except (ValueError, TypeError):
        raise _invalid("tokenKinds must be a non-empty list of file, card, token") from None
    if len(kinds) != len(value):
        raise _invalid("tokenKinds has duplicates")
    return kinds
