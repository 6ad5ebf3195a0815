"""signedData: the agent builds and the rp kit parses with one module (eidcore)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from eidcore import signeddata

NOW = dt.datetime(2026, 12, 2, 8, 30, 5, tzinfo=dt.UTC)


def _built(**extra: object) -> bytes:
    fields: dict[str, object] = dict(
        type="sign",
        origin="https://bank.example",
        nonce=b"\x01" * 16,
        time=NOW,
        order_ref="ref-1",
        agent_version="1.2.3",
    )
    fields.update(extra)
    return signeddata.build(**fields)  # type: ignore[arg-type]


def test_what_is_built_parses_back_to_the_same_fields() -> None:
    parsed = signeddata.parse(_built(user_visible_data="Betala 100 kr", user_non_visible_data=b"x"))
    assert (parsed.type, parsed.origin, parsed.nonce, parsed.time, parsed.order_ref) == (
        "sign",
        "https://bank.example",
        b"\x01" * 16,
        NOW,
        "ref-1",
    )
    assert parsed.agent == "eid-agent/1.2.3"
    assert parsed.user_visible_format == "plaintext"
    assert parsed.user_visible_sha256 == signeddata.digest(b"Betala 100 kr")
    assert parsed.user_non_visible_sha256 == signeddata.digest(b"x")


def test_the_bytes_are_canonical() -> None:
    raw = _built(user_visible_data="å")
    assert (
        raw
        == json.dumps(
            json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    assert _built() == _built()
    assert not signeddata.parse(_built()).has_user_visible_data


def _doc(**changes: object) -> bytes:
    doc = json.loads(_built())
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[1]",
        b"[" * 700 + b"]" * 700,
        _doc(v=True),
        _doc(v=3),
        _doc(door="other"),
        _doc(door=None),
        _doc(door="relay"),  # a relay order without its party
        _doc(party="shop"),  # a bridge order naming one
        _doc(door="relay", party=7),
        _doc(v="1"),
        _doc(v="9" * 5000),
        _doc(nonce=None),
        _doc(nonce=12),
        _doc(nonce="not base64!"),
        _doc(time="2026-12-02 08:30:05"),
        _doc(time=["x"]),
        _doc(origin={"a": 1}),
        _doc(orderRef=None),
        _doc(userVisibleData="abc"),
        _doc(userVisibleData={"format": "plaintext"}),
        _doc(userNonVisibleData={"sha256": 5}),
    ],
    ids=lambda raw: repr(raw[:40]),
)
def test_what_is_not_version_1_is_refused_by_name(raw: bytes) -> None:
    with pytest.raises(signeddata.MalformedSignedData) as caught:
        signeddata.parse(raw)
    assert "9999" not in str(caught.value)


def test_the_door_and_party_are_signed() -> None:
    relay = signeddata.parse(
        _built(door=signeddata.Door.RELAY, party="shop", origin="https://relay.example")
    )
    assert (relay.door, relay.party, relay.origin) == (
        signeddata.Door.RELAY,
        "shop",
        "https://relay.example",
    )
    bridge = signeddata.parse(_built())
    assert (bridge.door, bridge.party) == (signeddata.Door.BRIDGE, None)
    with pytest.raises(ValueError):
        _built(door=signeddata.Door.RELAY)  # a relay order names its party
    with pytest.raises(ValueError):
        _built(party="shop")


def test_version_1_from_agents_before_the_relay_parses_as_the_bridge() -> None:
    doc = json.loads(_built())
    del doc["door"]
    doc["v"] = 1
    old = signeddata.parse(json.dumps(doc).encode())
    assert (old.door, old.party, old.order_ref) == (signeddata.Door.BRIDGE, None, "ref-1")


def test_unknown_keys_are_ignored() -> None:
    assert signeddata.parse(_doc(later="x")).order_ref == "ref-1"
