"""A virtual PIV card (NIST SP 800-73-4, the part OpenSC's PIV driver uses), for developing
and testing the agent's PKCS#11 path against the real OpenSC, pcscd and vpcd.

Pure like the profile card (``card.py``): ``process(apdu) -> response``, the persistent
part in ``PivState`` (keys, certificates, PIN and PUK with their counters), the volatile
part (verified PIN, a pending long response) in the session; a try is counted and stored
through ``on_change`` before the PIN is compared. Randomness is an input.

What it answers: SELECT of the PIV application; GET DATA for the discovery object, CHUID
and the certificates of 9A (authentication) and 9C (digital signature); GET RESPONSE
honouring Le; VERIFY (and its empty status query) of the PIV PIN, CHANGE REFERENCE DATA of
PIN and PUK, RESET RETRY COUNTER; GENERAL AUTHENTICATE with ECC P-256 in 9A and 9C (9C only
right after a VERIFY: its key is "always authenticate") and the 9B witness OpenSC asks for
random bytes; the management key (9B, 3DES; external and mutual authentication), and
behind it GENERATE ASYMMETRIC KEY PAIR (P-256) and PUT DATA of the two certificates, with
command chaining. PIN and PUK have 3 tries. Everything else: 6D00 / 6A82, as a card says.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from eidcore import strictjson
from issuer.vcard.card import (  # ISO 7816 status words: the same on both virtual cards
    SW_BLOCKED,
    SW_CLA,
    SW_CONDITIONS,
    SW_INS,
    SW_NOT_FOUND,
    SW_OK,
    SW_REF_NOT_FOUND,
    SW_SECURITY,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
)

PIV_AID = bytes.fromhex("A0000003080000100001 00".replace(" ", ""))
AID_PREFIX = PIV_AID[:5]  # A0 00 00 03 08: what a SELECT may name
PIN_REF, PUK_REF = 0x80, 0x81
ADMIN_REF, ALG_3DES = 0x9B, 0x03  # the card management key and its algorithm
# The well-known management key PIV cards and YubiKeys ship with; an issuer changes it.
DEFAULT_ADMIN_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")
MAX_TRIES = 3
SLOTS = {0x9A: 0x5FC105, 0x9C: 0x5FC10A}  # key reference → its certificate's data object
ALG_P256 = 0x11
CHUID_TAG = 0x5FC102
MAX_CHAINED = 8192  # a chained command's data, all parts together
DISCOVERY_TAG = 0x7E


def _atr() -> bytes:
    # T=1; the historical bytes carry the PIV AID (compact-TLV tag F, 9 bytes), so OpenSC
    # types it as a plain PIV card (the profile card's ATR is in its table as a PIVKey
    # without EC support)
    body = bytes.fromhex("8B 80 01 80 F9 A0 00 00 03 08 00 00 10 00")
    check = 0
    for byte in body:
        check ^= byte
    return b"\x3b" + body + bytes([check])


ATR = _atr()


@dataclass(frozen=True)
class Secret:
    value: bytes  # as the card compares it: padded with FF to 8 bytes
    tries_left: int = MAX_TRIES


@dataclass(frozen=True)
class PivState:
    serial: str
    pin: Secret
    puk: Secret
    keys: dict[int, bytes] = field(default_factory=dict)  # slot → PKCS#8 DER
    objects: dict[int, bytes] = field(default_factory=dict)  # data object tag → contents
    admin_key: bytes = DEFAULT_ADMIN_KEY  # 3DES, for GENERATE and PUT DATA

    def to_json(self) -> bytes:
        def secret(s: Secret) -> dict[str, object]:
            return {"value": s.value.hex(), "triesLeft": s.tries_left}

        return json.dumps(
            {
                "format": "eid-agent/virtual-piv-card",
                "version": 1,
                "serial": self.serial,
                "pin": secret(self.pin),
                "puk": secret(self.puk),
                "adminKey": self.admin_key.hex(),
                "keys": {f"{k:02X}": base64.b64encode(v).decode() for k, v in self.keys.items()},
                "objects": {
                    f"{t:06X}": base64.b64encode(v).decode() for t, v in self.objects.items()
                },
            },
            indent=2,
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PivState:
        """Raises: ValueError (not a virtual PIV card)."""
        try:
            doc = strictjson.loads(data)
            if doc.get("format") != "eid-agent/virtual-piv-card" or doc.get("version") != 1:
                raise ValueError("not a virtual PIV card")

            def secret(d: dict[str, object]) -> Secret:
                return Secret(bytes.fromhex(str(d["value"])), int(str(d["triesLeft"])))

            return cls(
                serial=str(doc["serial"]),
                pin=secret(doc["pin"]),
                puk=secret(doc["puk"]),
                admin_key=bytes.fromhex(str(doc.get("adminKey", DEFAULT_ADMIN_KEY.hex()))),
                keys={int(k, 16): base64.b64decode(v) for k, v in doc["keys"].items()},
                objects={int(t, 16): base64.b64decode(v) for t, v in doc["objects"].items()},
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a virtual PIV card: {type(exc).__name__}") from None


def pad(secret: str) -> bytes:
    """A PIN or PUK as PIV sends it. Raises: ValueError (6-8 ASCII digits)."""
    if not (secret.isascii() and secret.isdigit() and 6 <= len(secret) <= 8):
        raise ValueError("a PIV PIN or PUK is 6-8 digits")
    return secret.encode() + b"\xff" * (8 - len(secret))


def _valid_block(block: bytes) -> bool:
    digits = block.rstrip(b"\xff")
    return len(block) == 8 and len(digits) >= 6 and digits.isdigit()


def new_piv_card(serial: str, pin: str, puk: str) -> PivState:
    """Raises: ValueError (a PIN or PUK of the wrong format)."""
    return PivState(serial, Secret(pad(pin)), Secret(pad(puk)))


def generate_piv_key(state: PivState, slot: int) -> tuple[PivState, ec.EllipticCurvePublicKey]:
    """A P-256 key made inside the card; only the public key leaves."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return replace(state, keys={**state.keys, slot: der}), key.public_key()


def put_certificate(state: PivState, slot: int, der: bytes) -> PivState:
    """The certificate object of ``slot`` as SP 800-73-4 lays it out."""
    contents = _tlv(0x70, der) + _tlv(0x71, b"\x00") + _tlv(0xFE, b"")
    return replace(state, objects={**state.objects, SLOTS[slot]: contents})


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def _tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    return tag_bytes + _length(len(value)) + value


def _read_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """BER-TLV at the top level (tags of 1-3 bytes, lengths up to 82 xx xx). Raises:
    ValueError on anything that does not add up."""
    out, i = [], 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while i < len(data) and data[i] & 0x80:
                tag = (tag << 8) | data[i]
                i += 1
            if i >= len(data):
                raise ValueError("truncated tag")
            tag = (tag << 8) | data[i]
            i += 1
        if i >= len(data):
            raise ValueError("no length")
        size = data[i]
        i += 1
        if size == 0x81 or size == 0x82:
            count = size & 0x7F
            if i + count > len(data):
                raise ValueError("truncated length")
            size = int.from_bytes(data[i : i + count], "big")
            i += count
        elif size > 0x80:
            raise ValueError("length form not supported")
        if i + size > len(data):
            raise ValueError("truncated value")
        out.append((tag, data[i : i + size]))
        i += size
    return out


class PivCard:
    atr = ATR

    def __init__(
        self,
        state: PivState,
        on_change: Callable[[PivState], None],
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.state = state
        self._on_change = on_change
        self._random = random_bytes
        self.reset()

    def reset(self) -> None:
        self._verified = False
        self._fresh = False  # a VERIFY not yet spent on a 9C signature
        self._pending = b""  # the rest of a long response, for GET RESPONSE
        self._chained: tuple[int, bytes] | None = None  # (INS, data so far) of a chain
        self._challenge: bytes | None = None  # the last 9B challenge given out
        self._admin = False  # the management key was proven (external authenticate)

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        if cla not in (0x00, 0x10):
            return SW_CLA
        data, le = _body(apdu[4:])
        if data is None:
            return SW_WRONG_LENGTH
        if ins == 0xC0:
            return self._get_response(le)
        self._pending = b""
        if cla & 0x10:  # command chaining: more of this command's data follows
            previous = self._chained[1] if self._chained and self._chained[0] == ins else b""
            if len(previous) + len(data) > MAX_CHAINED:
                self._chained = None
                return SW_WRONG_LENGTH
            self._chained = (ins, previous + data)
            return SW_OK
        if self._chained is not None:
            chained_ins, previous = self._chained
            self._chained = None
            if chained_ins == ins:
                data = previous + data
        handler = {
            0xA4: lambda: self._select(p1, data),
            0xCB: lambda: self._get_data(p1, p2, data, le),
            0x20: lambda: self._verify(p1, p2, data),
            0x24: lambda: self._change(p1, p2, data),
            0x2C: lambda: self._reset_counter(p1, p2, data),
            0x87: lambda: self._authenticate(p1, p2, data, le),
            0x47: lambda: self._generate(p1, p2, data, le),
            0xDB: lambda: self._put_data(p1, p2, data),
        }.get(ins)
        return handler() if handler else SW_INS

    # -- long responses ----------------------------------------------------------------------

    def _respond(self, data: bytes, le: int) -> bytes:
        size = le or 256
        if len(data) <= size:
            return data + SW_OK
        self._pending = data[size:]
        return data[:size] + _more(len(self._pending))

    def _get_response(self, le: int) -> bytes:
        if not self._pending:
            return SW_CONDITIONS
        size = le or 256
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk + (_more(len(self._pending)) if self._pending else SW_OK)

    # -- commands ----------------------------------------------------------------------------

    def _select(self, p1: int, data: bytes) -> bytes:
        if p1 != 0x04 or not data.startswith(AID_PREFIX) or not PIV_AID.startswith(data):
            return SW_NOT_FOUND  # other drivers probe with their own AIDs
        # the PIN state survives a SELECT (OpenSC re-selects at transactions' starts)
        template = _tlv(0x4F, PIV_AID[5:]) + _tlv(0x79, _tlv(0x4F, AID_PREFIX))
        return _tlv(0x61, template) + SW_OK

    def _get_data(self, p1: int, p2: int, data: bytes, le: int) -> bytes:
        if (p1, p2) != (0x3F, 0xFF):
            return SW_WRONG_P1P2
        try:
            (tag, value), *rest = _read_tlv(data)
        except ValueError:
            return SW_WRONG_DATA
        if tag != 0x5C or rest or not 1 <= len(value) <= 3:
            return SW_WRONG_DATA
        wanted = int.from_bytes(value, "big")
        if wanted == DISCOVERY_TAG:
            discovery = _tlv(0x4F, PIV_AID) + _tlv(0x5F2F, b"\x40\x00")  # PIV PIN only
            return self._respond(_tlv(0x7E, discovery), le)
        if wanted == CHUID_TAG:
            serial = self.state.serial.encode()[:16].ljust(16, b"\x00")
            chuid = (
                _tlv(0x30, b"\xd4" + b"\x00" * 24)
                + _tlv(0x34, serial)
                + _tlv(0x35, b"20991231")
                + _tlv(0x3E, b"")
                + _tlv(0xFE, b"")
            )
            return self._respond(_tlv(0x53, chuid), le)
        contents = self.state.objects.get(wanted)
        if contents is None:
            return SW_NOT_FOUND
        return self._respond(_tlv(0x53, contents), le)

    def _verify(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 != PIN_REF:
            return SW_REF_NOT_FOUND
        if p1 == 0xFF:  # reset the security status
            self._verified = self._fresh = False
            return SW_OK
        if p1 != 0x00:
            return SW_WRONG_P1P2
        pin = self.state.pin
        if not data:
            if pin.tries_left == 0:
                return SW_BLOCKED
            return SW_OK if self._verified else _tries(pin.tries_left)
        if pin.tries_left == 0:
            return SW_BLOCKED
        if not _valid_block(data):
            return SW_WRONG_DATA
        if not self._spend_and_compare(PIN_REF, data):
            self._verified = self._fresh = False
            return _tries(self.state.pin.tries_left)
        self._verified = self._fresh = True
        return SW_OK

    def _secret(self, ref: int) -> Secret:
        return self.state.pin if ref == PIN_REF else self.state.puk

    def _store(self, ref: int, secret: Secret) -> None:
        if ref == PIN_REF:
            self.state = replace(self.state, pin=secret)
        else:
            self.state = replace(self.state, puk=secret)
        self._on_change(self.state)

    def _spend_and_compare(self, ref: int, candidate: bytes) -> bool:
        secret = self._secret(ref)
        self._store(ref, replace(secret, tries_left=secret.tries_left - 1))
        if candidate != secret.value:
            return False
        self._store(ref, replace(secret, tries_left=MAX_TRIES))
        return True

    def _change(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 not in (PIN_REF, PUK_REF):
            return SW_REF_NOT_FOUND
        if p1 != 0x00:
            return SW_WRONG_P1P2
        if len(data) != 16:
            return SW_WRONG_LENGTH
        old, new = data[:8], data[8:]
        if not (_valid_block(old) and _valid_block(new)):
            return SW_WRONG_DATA
        if self._secret(p2).tries_left == 0:
            return SW_BLOCKED
        if not self._spend_and_compare(p2, old):
            return _tries(self._secret(p2).tries_left)
        self._store(p2, Secret(new))
        if p2 == PIN_REF:
            self._verified = self._fresh = False
        return SW_OK

    def _reset_counter(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 != PIN_REF:
            return SW_REF_NOT_FOUND
        if p1 != 0x00:
            return SW_WRONG_P1P2
        if len(data) != 16:
            return SW_WRONG_LENGTH
        puk, new = data[:8], data[8:]
        if not (_valid_block(puk) and _valid_block(new)):
            return SW_WRONG_DATA
        if self.state.puk.tries_left == 0:
            return SW_BLOCKED
        if not self._spend_and_compare(PUK_REF, puk):
            return _tries(self.state.puk.tries_left)
        self._store(PIN_REF, Secret(new))
        return SW_OK

    def _authenticate(self, p1: int, p2: int, data: bytes, le: int) -> bytes:
        try:
            (tag, template), *rest = _read_tlv(data)
            fields = dict(_read_tlv(template))
        except ValueError:
            return SW_WRONG_DATA
        if tag != 0x7C or rest:
            return SW_WRONG_DATA
        if p2 == ADMIN_REF and 0x81 in fields and not fields[0x81]:
            # a challenge: for an external authenticate with the management key, and what
            # OpenSC's C_GenerateRandom reads
            self._challenge = self._random(8)
            return self._respond(_tlv(0x7C, _tlv(0x81, self._challenge)), le)
        if p2 == ADMIN_REF and 0x82 in fields:
            return self._external_authenticate(p1, fields[0x82])
        if p2 == ADMIN_REF and 0x80 in fields:
            return self._mutual_authenticate(p1, fields, le)
        if p1 != ALG_P256 or p2 not in SLOTS:
            return SW_WRONG_P1P2 if p2 in SLOTS else SW_REF_NOT_FOUND
        if fields.get(0x82) != b"" or len(fields.get(0x81, b"")) != 32:
            return SW_WRONG_DATA
        key_der = self.state.keys.get(p2)
        if key_der is None:
            return SW_REF_NOT_FOUND
        if not self._verified or (p2 == 0x9C and not self._fresh):
            return SW_SECURITY  # 9C: one VERIFY buys one signature
        if p2 == 0x9C:
            self._fresh = False
        key = serialization.load_der_private_key(key_der, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(fields[0x81], ec.ECDSA(Prehashed(hashes.SHA256())))
        return self._respond(_tlv(0x7C, _tlv(0x82, signature)), le)

    def _cipher(self) -> Cipher[modes.ECB]:
        return Cipher(TripleDES(self.state.admin_key), modes.ECB())  # noqa: S305 — PIV's own

    def _mutual_authenticate(self, alg: int, fields: dict[int, bytes], le: int) -> bytes:
        """The management key proven both ways: the card gives an encrypted witness, the
        host sends it back decrypted with a challenge of its own, which the card encrypts
        (what OpenSC's ``piv-tool -A M:9B:03`` does; Debian's 0.23 external authenticate
        sends a response longer than the card's challenge and cannot succeed)."""
        if alg != ALG_3DES:
            return SW_WRONG_P1P2
        if not fields[0x80]:  # step one: the witness
            self._challenge = self._random(8)
            encrypted = self._cipher().encryptor().update(self._challenge)
            return self._respond(_tlv(0x7C, _tlv(0x80, encrypted)), le)
        witness, self._challenge = self._challenge, None
        nonce = fields.get(0x81, b"")
        if witness is None:
            return SW_CONDITIONS
        if len(nonce) != 8:
            return SW_WRONG_DATA
        if not hmac.compare_digest(fields[0x80], witness):
            self._admin = False
            return SW_SECURITY
        self._admin = True
        return self._respond(_tlv(0x7C, _tlv(0x82, self._cipher().encryptor().update(nonce))), le)

    def _external_authenticate(self, alg: int, response: bytes) -> bytes:
        challenge, self._challenge = self._challenge, None
        if alg != ALG_3DES:
            return SW_WRONG_P1P2
        if challenge is None:
            return SW_CONDITIONS
        expected = self._cipher().encryptor().update(challenge)
        if not hmac.compare_digest(response, expected):
            self._admin = False
            return SW_SECURITY
        self._admin = True
        return SW_OK

    def _generate(self, p1: int, p2: int, data: bytes, le: int) -> bytes:
        if p1 != 0x00 or p2 not in SLOTS:
            return SW_WRONG_P1P2
        if not self._admin:
            return SW_SECURITY
        try:
            (tag, template), *rest = _read_tlv(data)
            fields = dict(_read_tlv(template))
        except ValueError:
            return SW_WRONG_DATA
        if tag != 0xAC or rest or fields.get(0x80) != bytes([ALG_P256]):
            return SW_WRONG_DATA
        self.state, public = generate_piv_key(self.state, p2)
        self._on_change(self.state)
        point = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return self._respond(_tlv(0x7F49, _tlv(0x86, point)), le)

    def _put_data(self, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) != (0x3F, 0xFF):
            return SW_WRONG_P1P2
        if not self._admin:
            return SW_SECURITY
        try:
            (tag, name), (content_tag, contents), *rest = _read_tlv(data)
        except ValueError:
            return SW_WRONG_DATA
        if tag != 0x5C or content_tag != 0x53 or rest or len(name) != 3:
            return SW_WRONG_DATA
        wanted = int.from_bytes(name, "big")
        if wanted not in SLOTS.values():
            return SW_NOT_FOUND  # this card keeps the two certificates a BankID needs
        self.state = replace(self.state, objects={**self.state.objects, wanted: contents})
        self._on_change(self.state)
        return SW_OK


def _more(left: int) -> bytes:
    return bytes([0x61, min(left, 0xFF) if left < 256 else 0x00])


def _tries(left: int) -> bytes:
    return bytes([0x63, 0xC0 | left])


def _body(rest: bytes) -> tuple[bytes | None, int]:
    """(data, Le) of a short or extended APDU body; data None when the lengths lie."""
    if not rest:
        return b"", 0
    if len(rest) == 1:
        return b"", rest[0]
    if rest[0] == 0 and len(rest) >= 3:  # extended length
        lc = int.from_bytes(rest[1:3], "big")
        if len(rest) == 3:
            return b"", lc
        if len(rest) in (3 + lc, 5 + lc):
            return rest[3 : 3 + lc], int.from_bytes(rest[3 + lc :], "big") if len(
                rest
            ) > 3 + lc else 0
        return None, 0
    lc = rest[0]
    if len(rest) == 1 + lc:
        return rest[1:], 0
    if len(rest) == 2 + lc:
        return rest[1 : 1 + lc], rest[-1]
    return None, 0
