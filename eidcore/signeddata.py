"""The bytes a credential signs for an order (docs/signed-data.md): built by the agent,
parsed by the rp kit's verifier — one module, so both read the same keys. Pure.

Version 2 names the door the order came through (the localhost bridge, or an order relay
for a requesting party), so that a result from one door or party cannot pass as
another's. Version 1 (bridge only, from agents before the relay) still parses, as the
bridge.

A verifier never rebuilds these bytes: it parses what was signed and compares origin,
nonce, type and time with its own values. So the only requirement on the encoding is that
it is unambiguous JSON; it is canonical anyway (sorted keys, no whitespace) so two agents
produce identical bytes for identical input.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
from dataclasses import dataclass

from eidcore import strictjson

__all__ = [
    "VERSION",
    "Door",
    "MalformedSignedData",
    "OrderKind",
    "SignedData",
    "b64url",
    "build",
    "digest",
    "parse",
    "unb64url",
]

VERSION = 2
_VERSIONS = (1, 2)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class OrderKind(enum.StrEnum):
    """What an order is for, as ``type`` names it: identification (log in) or signing.
    Here, not in the agent's order core, because the dialogs, the rp kit and every door
    that starts orders speak of it too."""

    AUTH = "auth"
    SIGN = "sign"


class Door(enum.StrEnum):
    """How the order reached the agent: a page called the localhost bridge (``origin`` is
    the page's), or a website's server started it at an order relay (``origin`` is the
    relay's, ``party`` the requesting party's identifier there)."""

    BRIDGE = "bridge"
    RELAY = "relay"


class MalformedSignedData(ValueError):
    """The bytes are not signedData this module knows; the message names the field,
    never its value (it came from whoever sent the response)."""


@dataclass(frozen=True)
class SignedData:
    """What was signed. ``type`` is kept as written so that a verifier can say "signed
    for the other kind of order" rather than "malformed"."""

    type: str
    origin: str
    nonce: bytes
    time: dt.datetime
    order_ref: str
    agent: str
    door: Door = Door.BRIDGE
    party: str | None = None  # the relay's requesting party; None for the bridge
    user_visible_format: str | None = None
    user_visible_sha256: str | None = None
    user_non_visible_sha256: str | None = None

    @property
    def has_user_visible_data(self) -> bool:
        return self.user_visible_sha256 is not None

    @property
    def has_user_non_visible_data(self) -> bool:
        return self.user_non_visible_sha256 is not None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Raises: ValueError (binascii.Error is one) for what is not base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def digest(data: bytes) -> str:
    """base64url(SHA-256(data)), as the ``sha256`` fields carry it."""
    return b64url(hashlib.sha256(data).digest())


def build(
    *,
    type: str,
    origin: str,
    nonce: bytes,
    time: dt.datetime,
    order_ref: str,
    agent_version: str,
    user_visible_data: str | None = None,
    user_visible_format: str = "plaintext",
    user_non_visible_data: bytes | None = None,
    door: Door = Door.BRIDGE,
    party: str | None = None,
) -> bytes:
    """Raises: ValueError — a relay order without its party, or a bridge order with one."""
    if (door is Door.RELAY) != (party is not None):
        raise ValueError("a relay order names its party; a bridge order has none")
    doc: dict[str, object] = {
        "v": VERSION,
        "door": door.value,
        "type": type,
        "origin": origin,
        "nonce": b64url(nonce),
        "time": time.astimezone(dt.UTC).strftime(_TIME_FORMAT),
        "orderRef": order_ref,
        "agent": f"eid-agent/{agent_version}",
    }
    if party is not None:
        doc["party"] = party
    if user_visible_data is not None:
        doc["userVisibleData"] = {
            "format": user_visible_format,
            "sha256": digest(user_visible_data.encode("utf-8")),
        }
    if user_non_visible_data is not None:
        doc["userNonVisibleData"] = {"sha256": digest(user_non_visible_data)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse(data: bytes) -> SignedData:
    """Raises: MalformedSignedData. Keys it does not know are ignored (the format's rule
    for additions that keep ``v``)."""
    try:
        doc = strictjson.loads(data)
    except ValueError:
        raise MalformedSignedData("signedData is not JSON") from None
    if not isinstance(doc, dict) or type(doc.get("v")) is not int or doc["v"] not in _VERSIONS:
        raise MalformedSignedData("signedData is not version 1 or 2")
    door, party = _door(doc)
    visible = _part(doc, "userVisibleData")
    non_visible = _part(doc, "userNonVisibleData")
    try:
        nonce = unb64url(_text(doc, "nonce"))
    except (ValueError, binascii.Error):
        raise MalformedSignedData("signedData: nonce is not base64url") from None
    try:
        time = dt.datetime.strptime(_text(doc, "time"), _TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise MalformedSignedData("signedData: time is not YYYY-MM-DDThh:mm:ssZ") from None
    return SignedData(
        type=_text(doc, "type"),
        origin=_text(doc, "origin"),
        nonce=nonce,
        time=time,
        order_ref=_text(doc, "orderRef"),
        agent=_optional_text(doc, "agent") or "",
        door=door,
        party=party,
        user_visible_format=None if visible is None else _optional_text(visible, "format"),
        user_visible_sha256=None if visible is None else _text(visible, "sha256"),
        user_non_visible_sha256=None if non_visible is None else _text(non_visible, "sha256"),
    )


def _door(doc: dict[str, object]) -> tuple[Door, str | None]:
    if doc["v"] == 1:
        return Door.BRIDGE, None  # version 1 had one door
    try:
        door = Door(_text(doc, "door"))
    except ValueError:
        raise MalformedSignedData("signedData: door is neither bridge nor relay") from None
    party = _optional_text(doc, "party")
    if (door is Door.RELAY) != (party is not None):
        raise MalformedSignedData("signedData: a relay order names its party, a bridge none")
    return door, party


def _text(doc: dict[str, object], key: str) -> str:
    value = _optional_text(doc, key)
    if value is None:
        raise MalformedSignedData(f"signedData: {key} is missing")
    return value


def _optional_text(doc: dict[str, object], key: str) -> str | None:
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedSignedData(f"signedData: {key} is not text")


def _part(doc: dict[str, object], key: str) -> dict[str, object] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedSignedData(f"signedData: {key} is not an object")
    return value
