"""What both JSON APIs a website calls — the bridge's and the relay's parties' API — read
the same way: the body as a JSON object, base64 with a bound, and the three fields that
say what a person is shown and what is signed with it (``userVisibleData``,
``userVisibleDataFormat``, ``userNonVisibleData``, with BankID v6's limits). Pure.

Each API turns ``FieldRefused`` into its own error, with its own code on the wire.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eidcore import strictjson, visibletext
from eidcore.signeddata import OrderKind

__all__ = [
    "MAX_USER_NON_VISIBLE_DATA",
    "MAX_USER_VISIBLE_DATA",
    "VISIBLE_FORMATS",
    "FieldRefused",
    "ShownAndSigned",
    "base64_field",
    "json_object",
    "shown_and_signed",
]

MAX_USER_VISIBLE_DATA = 40_000  # characters of base64 (BankID v6: the same)
MAX_USER_NON_VISIBLE_DATA = 200_000  # characters of base64 (BankID v6: the same)
VISIBLE_FORMATS = frozenset({"plaintext", "simpleMarkdownV1"})


class FieldRefused(ValueError):
    """``details`` names the field and why, never echoing its value."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def json_object(body: bytes, max_depth: int) -> dict[str, Any]:
    """Raises: FieldRefused."""
    try:
        value = strictjson.loads(body, max_depth=max_depth)
    except strictjson.JsonRefused as exc:
        raise FieldRefused(f"the body is refused: {exc.reason}") from None
    if not isinstance(value, dict):
        raise FieldRefused("the body must be a JSON object")
    return value


def base64_field(value: object, name: str, max_chars: int) -> bytes:
    """Raises: FieldRefused."""
    if not isinstance(value, str):
        raise FieldRefused(f"{name} must be a base64 string")
    if len(value) > max_chars:
        raise FieldRefused(f"{name} is longer than {max_chars} characters")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FieldRefused(f"{name} is not valid base64") from None


@dataclass(frozen=True)
class ShownAndSigned:
    visible: str | None  # the text the dialog shows, exactly (eidcore/visibletext.py)
    visible_format: str
    non_visible: bytes | None


def shown_and_signed(kind: OrderKind, body: Mapping[str, Any]) -> ShownAndSigned:
    """The three fields, checked: a signature needs a text to show; an identification
    may show one.

    Raises: FieldRefused."""
    visible = body.get("userVisibleData")
    if kind is OrderKind.SIGN and visible is None:
        raise FieldRefused("userVisibleData is required for sign")
    fmt = body.get("userVisibleDataFormat", "plaintext")
    if not isinstance(fmt, str) or fmt not in VISIBLE_FORMATS:  # a dict is unhashable
        raise FieldRefused("userVisibleDataFormat must be plaintext or simpleMarkdownV1")
    non_visible = body.get("userNonVisibleData")
    return ShownAndSigned(
        visible=None if visible is None else _visible_text(visible),
        visible_format=fmt,
        non_visible=None
        if non_visible is None
        else base64_field(non_visible, "userNonVisibleData", MAX_USER_NON_VISIBLE_DATA),
    )


def _visible_text(value: object) -> str:
    try:
        return visibletext.from_base64(value, MAX_USER_VISIBLE_DATA)
    except visibletext.TextRefused as exc:
        raise FieldRefused(f"userVisibleData: {exc.details}") from None
