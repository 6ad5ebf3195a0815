"""Request bodies validated into dataclasses at the edge. Pure.

Unknown fields are refused rather than ignored: a page that misspells
``userNonVisibleData`` should learn it now, not discover later that nothing was signed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.bridge import limits
from agent.bridge.errors import BridgeError, ErrorCode
from agent.credentials import CredentialKind
from agent.orders import OrderKind, OrderRequest
from eidcore import strictjson, visibletext
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber

VISIBLE_FORMATS = frozenset({"plaintext", "simpleMarkdownV1"})

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
        value = strictjson.loads(body, max_depth=limits.MAX_JSON_DEPTH)
    except strictjson.JsonRefused as exc:
        raise _invalid(f"the body is refused: {exc.reason}") from None
    if not isinstance(value, dict):
        raise _invalid("the body must be a JSON object")
    return value


def parse_order(kind: OrderKind, body: Mapping[str, Any], origin: str) -> OrderRequest:
    """Raises: BridgeError(invalidParameters) naming the field."""
    allowed = _AUTH_FIELDS if kind is OrderKind.AUTH else _SIGN_FIELDS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _invalid(f"unknown field: {unknown[0]}")
    nonce = _nonce(body.get("nonce"))
    visible = body.get("userVisibleData")
    if kind is OrderKind.SIGN and visible is None:
        raise _invalid("userVisibleData is required for sign")
    text = None if visible is None else _visible_text(visible)
    fmt = body.get("userVisibleDataFormat", "plaintext")
    if not isinstance(fmt, str) or fmt not in VISIBLE_FORMATS:  # a dict is unhashable
        raise _invalid("userVisibleDataFormat must be plaintext or simpleMarkdownV1")
    non_visible = body.get("userNonVisibleData")
    return OrderRequest(
        kind=kind,
        origin=origin,
        nonce=nonce,
        personal_number=_personal_number(body.get("personalNumber")),
        token_kinds=_token_kinds(body.get("tokenKinds")),
        user_visible_data=text,
        user_visible_format=fmt,
        user_non_visible_data=None
        if non_visible is None
        else _b64(non_visible, "userNonVisibleData", limits.MAX_USER_NON_VISIBLE_DATA),
    )


def parse_ref(body: Mapping[str, Any]) -> RefRequest:
    if set(body) != {"orderRef"}:
        raise _invalid("the body must be exactly {orderRef}")
    ref = body["orderRef"]
    if not isinstance(ref, str) or not 0 < len(ref) <= limits.MAX_ORDER_REF_LENGTH:
        raise _invalid("orderRef must be a short string")
    return RefRequest(ref)


def _nonce(value: object) -> bytes:
    if not isinstance(value, str):
        raise _invalid("nonce is required: base64 of 32-96 random bytes")
    # Accept both base64 alphabets, padded or not: pages produce either.
    text = value.replace("-", "+").replace("_", "/")
    raw = _b64(text + "=" * (-len(text) % 4), "nonce", 200)
    if not limits.NONCE_MIN_BYTES <= len(raw) <= limits.NONCE_MAX_BYTES:
        raise _invalid("nonce must be 32-96 bytes")
    return raw


def _b64(value: object, name: str, max_chars: int) -> bytes:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a base64 string")
    if len(value) > max_chars:
        raise _invalid(f"{name} is longer than {max_chars} characters")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{name} is not valid base64") from None


def _visible_text(value: object) -> str:
    try:
        return visibletext.from_base64(value, limits.MAX_USER_VISIBLE_DATA)
    except visibletext.TextRefused as exc:
        raise _invalid(f"userVisibleData: {exc.details}") from None


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
