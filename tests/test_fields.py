"""eidcore/fields.py: the fields the bridge and the relay read the same way."""

from __future__ import annotations

import base64

import pytest

from eidcore.fields import (
    MAX_USER_NON_VISIBLE_DATA,
    FieldRefused,
    base64_field,
    json_object,
    shown_and_signed,
)
from eidcore.signeddata import OrderKind


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_signature_needs_a_text_an_identification_may_have_one() -> None:
    with pytest.raises(FieldRefused, match="required for sign"):
        shown_and_signed(OrderKind.SIGN, {})
    assert shown_and_signed(OrderKind.AUTH, {}).visible is None
    got = shown_and_signed(
        OrderKind.SIGN,
        {
            "userVisibleData": b64("Pay 100 kr"),
            "userVisibleDataFormat": "simpleMarkdownV1",
            "userNonVisibleData": b64("hash"),
        },
    )
    assert (got.visible, got.visible_format, got.non_visible) == (
        "Pay 100 kr",
        "simpleMarkdownV1",
        b"hash",
    )


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"userVisibleData": b64("a\u202eb")}, "userVisibleData: "),  # bidi override
        ({"userVisibleData": "not base64!"}, "userVisibleData: not valid base64"),
        ({"userVisibleData": 5}, "userVisibleData: not a base64 string"),
        ({"userVisibleDataFormat": {"a": 1}}, "userVisibleDataFormat must be"),
        ({"userVisibleDataFormat": "html"}, "userVisibleDataFormat must be"),
        (
            {"userNonVisibleData": "x" * (MAX_USER_NON_VISIBLE_DATA + 4)},
            "userNonVisibleData is longer than",
        ),
        ({"userNonVisibleData": "%%%%"}, "userNonVisibleData is not valid base64"),
    ],
)
def test_refusals_name_the_field_and_never_echo_it(body: dict[str, object], said: str) -> None:
    with pytest.raises(FieldRefused) as caught:
        shown_and_signed(OrderKind.AUTH, body)
    assert caught.value.details.startswith(said)
    assert "%%%%" not in caught.value.details and "html" not in caught.value.details


def test_base64_field_and_json_object() -> None:
    assert base64_field("aGk=", "x", 10) == b"hi"
    with pytest.raises(FieldRefused, match="x must be a base64 string"):
        base64_field(None, "x", 10)
    assert json_object(b'{"a": 1}', 2) == {"a": 1}
    for bad in (b"[1]", b'{"a": {"b": {"c": 1}}}', b'{"a": 1, "a": 2}', b"\xff"):
        with pytest.raises(FieldRefused):
            json_object(bad, 2)
