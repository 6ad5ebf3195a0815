"""A virtual BankID card implementing the project's card profile (docs/card-profile.md).

Pure: ``process(apdu) -> response``, with the persistent part of the card (keys,
certificates, PINs and their retry counters) in ``CardState`` and the volatile part
(selection, verified PINs, security environment) in the session, which a reset or a
removal clears. Whenever the persistent part changes, ``on_change`` is called with the
new state; the driver writes it to disk before the response leaves the card, so a
counter, once spent, stays spent even if the power goes (as on real cards, the try is
counted before the PIN is compared).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from eidcore import strictjson

AID = bytes.fromhex("F0 45 49 44 41 47 45 4E 54 01")  # F0, "EIDAGENT", 01
ATR = bytes.fromhex("3B80800101")  # T=1, no historical bytes
PROFILE_VERSION = 1
MAX_TRIES = 3
PIN_LENGTHS = {0x81: (4, 12), 0x82: (5, 12), 0x83: (8, 12)}
FILES = {0xC001: "identification", 0xC002: "signature"}
KEYS = {0x01: (0xA4, 0x81), 0x02: (0xB6, 0x82)}  # key → (template, PIN that guards it)
CHUNK = 0xC0

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_SECURITY = b"\x69\x82"  # security status not satisfied (no PIN verified)
SW_BLOCKED = b"\x69\x83"  # authentication method blocked
SW_CONDITIONS = b"\x69\x85"  # conditions of use not satisfied (no MSE)
SW_WRONG_DATA = b"\x6a\x80"
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_REF_NOT_FOUND = b"\x6a\x88"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"


@dataclass(frozen=True)
class Pin:
    value: str
    tries_left: int = MAX_TRIES


@dataclass(frozen=True)
class CardState:
    """What survives removal. ``keys`` are PKCS#8 DER: the card's own secret storage."""

    serial: str
    pins: dict[int, Pin]
    keys: dict[int, bytes] = field(default_factory=dict)
    files: dict[int, bytes] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": "eid-agent/virtual-card",
                "version": 1,
                "serial": self.serial,
                "pins": {
                    f"{r:02X}": {"value": p.value, "triesLeft": p.tries_left}
                    for r, p in self.pins.items()
                },
                "keys": {f"{k:02X}": base64.b64encode(v).decode() for k, v in self.keys.items()},
                "files": {f"{f:04X}": base64.b64encode(v).decode() for f, v in self.files.items()},
            },
            indent=2,
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CardState:
        """Raises: ValueError (not a virtual card state)."""
        try:
            doc = strictjson.loads(data)
            if doc.get("format") != "eid-agent/virtual-card" or doc.get("version") != 1:
                raise ValueError("not a virtual card")
            return cls(
                serial=str(doc["serial"]),
                pins={
                    int(r, 16): Pin(str(p["value"]), int(p["triesLeft"]))
                    for r, p in doc["pins"].items()
                },
                keys={int(k, 16): base64.b64decode(v) for k, v in doc["keys"].items()},
                files={int(f, 16): base64.b64decode(v) for f, v in doc["files"].items()},
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a virtual card: {type(exc).__name__}") from None


def new_card(serial: str, pins: dict[int, str]) -> CardState:
    """A blank card with its PINs set and no keys yet. Raises: ValueError (PIN format)."""
    for ref, value in pins.items():
        _check_pin_format(ref, value)
    return CardState(serial, {ref: Pin(value) for ref, value in pins.items()})


def generate_key(state: CardState, key_ref: int) -> tuple[CardState, ec.EllipticCurvePublicKey]:
    """Personalisation: a fresh key pair made inside the card; only the public key leaves."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return replace(state, keys={**state.keys, key_ref: der}), key.public_key()


def write_file(state: CardState, fid: int, data: bytes) -> CardState:
    return replace(state, files={**state.files, fid: data})


def _check_pin_format(ref: int, value: str) -> None:
    low, high = PIN_LENGTHS[ref]
    if not (value.isascii() and value.isdigit() and low <= len(value) <= high):
        raise ValueError(f"PIN {ref:02X} must be {low}-{high} digits")


def pin_block(value: bytes) -> bytes:
    return value + b"\xff" * (12 - len(value))


def _unblock(block: bytes) -> str | None:
    """The digits in a 12-byte PIN block, or None if it is malformed."""
    if len(block) != 12:
        return None
    digits = block.rstrip(b"\xff")
    if b"\xff" in digits or not digits.isdigit():
        return None
    return digits.decode()


class VirtualCard:
    atr = ATR

    def __init__(self, state: CardState, on_change: Callable[[CardState], None]) -> None:
        self.state = state
        self._on_change = on_change
        self.reset()

    def reset(self) -> None:
        """Power cycle, reset or removal: every volatile state goes."""
        self._selected = False
        self._ef: int | None = None
        self._verified: set[int] = set()
        self._mse: tuple[int, int] | None = None  # (template, key)

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        if cla != 0x00:
            return SW_CLA
        data, le = _body(apdu[4:])
        if data is None:
            return SW_WRONG_LENGTH
        if ins == 0xA4:
            return self._select(p1, p2, data)
        if not self._selected:
            return SW_CONDITIONS
        handler = {
            0xB0: lambda: self._read(p1, p2, le),
            0x20: lambda: self._verify(p1, p2, data),
            0x24: lambda: self._change(p1, p2, data),
            0x2C: lambda: self._reset_counter(p1, p2, data),
            0x22: lambda: self._mse_set(p1, p2, data),
            0x88: lambda: self._sign(p1, p2, data, 0xA4),
            0x2A: lambda: self._sign_pso(p1, p2, data),
        }.get(ins)
        return handler() if handler else SW_INS

    # -- commands ------------------------------------------------------------------------

    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 == 0x04:
            if data != AID:
                return SW_NOT_FOUND
            self.reset()  # SELECT clears every verified state
            self._selected = True
            return SW_OK
        if p1 == 0x02 and self._selected:
            fid = int.from_bytes(data, "big") if len(data) == 2 else -1
            if fid == 0xC000 or fid in self.state.files:
                self._ef = fid
                return SW_OK
            return SW_NOT_FOUND
        return SW_WRONG_P1P2

    def _read(self, p1: int, p2: int, le: int) -> bytes:
        if self._ef is None:
            return SW_CONDITIONS
        content = self._card_info() if self._ef == 0xC000 else self.state.files[self._ef]
        offset = (p1 << 8) | p2
        if offset > len(content):
            return SW_WRONG_P1P2
        size = min(le or 256, CHUNK, len(content) - offset)
        return content[offset : offset + size] + SW_OK

    def _card_info(self) -> bytes:
        return json.dumps(
            {
                "serial": self.state.serial,
                "profile": PROFILE_VERSION,
                "pins": {f"{r:02X}": list(PIN_LENGTHS[r]) for r in self.state.pins},
            },
            separators=(",", ":"),
        ).encode()

    def _pin(self, p2: int) -> Pin | None:
        return self.state.pins.get(p2)

    def _verify(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 == 0xFF:  # log out
            self._verified.discard(p2)
            return SW_OK
        if p1 != 0x00:
            return SW_WRONG_P1P2
        if p2 == 0x83:
            return SW_REF_NOT_FOUND  # the PUK only unblocks; it is never "verified"
        pin = self._pin(p2)
        if pin is None:
            return SW_REF_NOT_FOUND
        if not data:  # ask the state without spending a try
            if pin.tries_left == 0:
                return SW_BLOCKED
            return SW_OK if p2 in self._verified else _tries(pin.tries_left)
        if pin.tries_left == 0:
            return SW_BLOCKED
        candidate = _unblock(data)
        if candidate is None:
            return SW_WRONG_DATA  # malformed: the counter is not touched
        if not self._spend_and_compare(p2, candidate):
            self._verified.discard(p2)
            return _tries(self.state.pins[p2].tries_left)
        self._verified.add(p2)
        return SW_OK

    def _spend_and_compare(self, ref: int, candidate: str) -> bool:
        """Count the try first and persist it; then compare; a right one restores."""
        pin = self.state.pins[ref]
        self._set_pin(ref, replace(pin, tries_left=pin.tries_left - 1))
        if candidate != pin.value:
            return False
        self._set_pin(ref, replace(pin, tries_left=MAX_TRIES))
        return True

    def _set_pin(self, ref: int, pin: Pin) -> None:
        self.state = replace(self.state, pins={**self.state.pins, ref: pin})
        self._on_change(self.state)

    def _change(self, p1: int, p2: int, data: bytes) -> bytes:
        pin = self._pin(p2)
        if pin is None:
            return SW_REF_NOT_FOUND
        if p1 != 0x00:
            return SW_WRONG_P1P2
        if len(data) != 24:
            return SW_WRONG_LENGTH
        old, new = _unblock(data[:12]), _unblock(data[12:])
        if old is None or new is None or not _format_ok(p2, new):
            return SW_WRONG_DATA
        if pin.tries_left == 0:
            return SW_BLOCKED
        if not self._spend_and_compare(p2, old):
            return _tries(self.state.pins[p2].tries_left)
        self._set_pin(p2, Pin(new))
        self._verified.discard(p2)
        return SW_OK

    def _reset_counter(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 not in (0x81, 0x82) or p2 not in self.state.pins:
            return SW_REF_NOT_FOUND
        if p1 == 0x00 and len(data) == 24:
            puk, new = _unblock(data[:12]), _unblock(data[12:])
            if new is None or not _format_ok(p2, new):
                return SW_WRONG_DATA
        elif p1 == 0x01 and len(data) == 12:
            puk, new = _unblock(data), None
        else:
            return SW_WRONG_P1P2 if p1 not in (0x00, 0x01) else SW_WRONG_LENGTH
        if puk is None:
            return SW_WRONG_DATA
        if self.state.pins[0x83].tries_left == 0:
            return SW_BLOCKED  # the PUK is blocked: the card must be replaced
        if not self._spend_and_compare(0x83, puk):
            return _tries(self.state.pins[0x83].tries_left)
        current = self.state.pins[p2]
        self._set_pin(p2, Pin(new if new is not None else current.value))
        return SW_OK

    def _mse_set(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0x41 or p2 not in (0xA4, 0xB6):
            return SW_WRONG_P1P2
        key = _tlv(data).get(0x84)
        if key is None or len(key) != 1:
            return SW_WRONG_DATA
        ref = key[0]
        if ref not in KEYS or KEYS[ref][0] != p2 or ref not in self.state.keys:
            return SW_REF_NOT_FOUND  # wrong key for the template
        self._mse = (p2, ref)
        return SW_OK

    def _sign_pso(self, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) != (0x9E, 0x9A):
            return SW_WRONG_P1P2
        return self._sign(0x00, 0x00, data, 0xB6)

    def _sign(self, p1: int, p2: int, digest: bytes, template: int) -> bytes:
        if (p1, p2) != (0x00, 0x00):
            return SW_WRONG_P1P2
        if self._mse is None or self._mse[0] != template:
            return SW_CONDITIONS
        key_ref = self._mse[1]
        guard = KEYS[key_ref][1]
        if guard not in self._verified:
            return SW_SECURITY
        if len(digest) != 32:
            return SW_WRONG_DATA
        if template == 0xB6:
            # One verification buys one signature (the signature PIN every time).
            self._verified.discard(guard)
        key = serialization.load_der_private_key(self.state.keys[key_ref], None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big") + SW_OK


def _format_ok(ref: int, value: str) -> bool:
    try:
        _check_pin_format(ref, value)
    except ValueError:
        return False
    return True


def _tries(left: int) -> bytes:
    return bytes([0x63, 0xC0 | left])


def _body(rest: bytes) -> tuple[bytes | None, int]:
    """(command data, Le) of a short APDU's body; data None when the lengths lie."""
    if not rest:
        return b"", 0
    if len(rest) == 1:
        return b"", rest[0]
    lc = rest[0]
    if len(rest) == 1 + lc:
        return rest[1:], 0
    if len(rest) == 2 + lc:
        return rest[1 : 1 + lc], rest[-1]
    return None, 0


def _tlv(data: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i + 2 <= len(data):
        tag, length = data[i], data[i + 1]
        out[tag] = data[i + 2 : i + 2 + length]
        i += 2 + length
    return out
