"""relay/v6.py: BankID v6.0's request fields, read into the relay's values (pure)."""

from __future__ import annotations

import uuid

import pytest

from eidcore.signeddata import OrderKind
from eidcore.status import Hint
from relay import v6
from relay.requests import RelayError

IP = {"endUserIp": "2001:db8::1"}


def test_the_fields_a_bankid_site_sends_are_taken() -> None:
    parsed = v6.parse_start(
        OrderKind.AUTH,
        {
            **IP,
            "returnRisk": True,
            "web": {"referringDomain": "shop.example", "userAgent": "Mozilla/5.0"},
            "app": {"appIdentifier": "se.shop", "deviceOS": "iOS 17"},
            "requirement": {
                "pinCode": True,
                "personalNumber": "198112189876",
                "certificatePolicies": ["1.2.3"],
                "cardReader": "class1",
            },
        },
    )
    assert parsed.start.end_user_ip == "2001:db8::1"
    assert parsed.start.personal_number == "198112189876"
    assert parsed.start.token_kinds == ("card",)  # a card reader: a BankID on card
    assert parsed.policies == ("1.2.3",) and parsed.unsupported is None


@pytest.mark.parametrize(
    ("requirement", "unsupported"),
    [({"mrtd": True}, "mrtd"), ({"cardReader": "class2"}, None), ({}, None)],
)
def test_what_no_agent_can_do_is_named(
    requirement: dict[str, object], unsupported: str | None
) -> None:
    assert v6.parse_start(OrderKind.AUTH, {**IP, "requirement": requirement}).unsupported == (
        unsupported
    )


def test_a_class2_reader_is_a_pin_pad_and_class1_a_card() -> None:
    pad = v6.parse_start(OrderKind.AUTH, {**IP, "requirement": {"cardReader": "class2"}}).start
    assert (pad.pin_pad, pad.token_kinds) == (True, ())
    card = v6.parse_start(OrderKind.AUTH, {**IP, "requirement": {"cardReader": "class1"}}).start
    assert (card.pin_pad, card.token_kinds) == (False, ("card",))


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({**IP, "userNonVisibleData": "***"}, "userNonVisibleData"),  # auth takes it, checked
        ({**IP, "requirement": {"tokenKinds": ["file"]}}, "requirement takes"),
        ({**IP, "requirement": {"pinCode": "yes"}}, "requirement.pinCode"),
        ({**IP, "requirement": {"certificatePolicies": "1.2.3"}}, "certificatePolicies"),
        ({**IP, "requirement": {"certificatePolicies": ["1"] * 17}}, "certificatePolicies"),
        ({**IP, "requirement": {"personalNumber": 198112189876}}, "personalNumber"),
        ({**IP, "app": {"deviceOS": 7}}, "app.deviceOS"),
        ({**IP, "web": ["x"]}, "web takes"),
        ({**IP, "returnUrl": "javascript:alert(1)"}, "returnUrl"),
        ({"endUserIp": "999.1.1.1"}, "endUserIp"),
    ],
)
def test_refusals_name_the_field(body: dict[str, object], said: str) -> None:
    with pytest.raises(RelayError) as caught:
        v6.parse_start(OrderKind.AUTH, body)
    assert caught.value.code.value == "invalidParameters" and said in caught.value.details


def test_a_signature_needs_its_text() -> None:
    with pytest.raises(RelayError, match="userVisibleData is required for sign"):
        v6.parse_start(OrderKind.SIGN, IP)


def test_the_start_answer_has_the_four_uuids_libraries_parse() -> None:
    answer = v6.started("8b0e9c2e-1d2f-4b6a-9c1e-2f3a4b5c6d7e", "token")
    assert set(answer) == {"orderRef", "autoStartToken", "qrStartToken", "qrStartSecret"}
    uuid.UUID(answer["qrStartToken"])
    uuid.UUID(answer["qrStartSecret"])
    assert answer["qrStartToken"] != answer["qrStartSecret"]


def test_hints_in_bankids_words() -> None:
    assert v6.hint_word(Hint.UPDATE_REQUIRED) == "notSupportedByUserApp"
    assert v6.hint_word(Hint.NOT_SUPPORTED) == "notSupportedByUserApp"
    assert v6.hint_word(Hint.USER_SIGN) == "userSign"
    assert v6.hint_word(None) is None


TABLE = {"1.1": "file", "1.2": "card", "1.3": "token"}


@pytest.mark.parametrize(
    ("requirement", "kinds"),
    [
        ({}, ()),
        ({"cardReader": "class1"}, ("card",)),
        ({"certificatePolicies": ["1.1", "1.3"]}, ("file", "token")),
        ({"certificatePolicies": ["1.1", "1.2", "1.3"]}, ()),  # every kind: no requirement
        ({"cardReader": "class1", "certificatePolicies": ["1.2", "1.1"]}, ("card",)),
    ],
)
def test_policies_and_readers_become_kinds(
    requirement: dict[str, object], kinds: tuple[str, ...]
) -> None:
    parsed = v6.parse_start(OrderKind.AUTH, {**IP, "requirement": requirement})
    assert v6.kinds(parsed, TABLE) == kinds


@pytest.mark.parametrize(
    ("requirement", "said"),
    [
        ({"certificatePolicies": ["1.2.752.78.1.1"]}, "is no policy of this relay's issuers"),
        ({"cardReader": "class1", "certificatePolicies": ["1.1"]}, "cardReader needs a card's"),
    ],
)
def test_kinds_no_bankid_here_can_meet_are_refused(
    requirement: dict[str, object], said: str
) -> None:
    parsed = v6.parse_start(OrderKind.AUTH, {**IP, "requirement": requirement})
    with pytest.raises(RelayError, match=said):
        v6.kinds(parsed, TABLE)
