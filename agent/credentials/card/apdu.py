"""The card profile's commands and status words (docs/card-profile.md). Pure."""

from __future__ import annotations

from agent.credentials.card.errors import (
    PIN_LENGTHS,
    CardProtocolError,
    PinBlocked,
    PinFormat,
    PinRef,
    PukBlocked,
    WrongPin,
    WrongPuk,
)

AID = bytes.fromhex("F0 45 49 44 41 47 45 4E 54 01")
FILE_INFO, FILE_IDENTIFICATION, FILE_SIGNATURE, FILE_CA = 0xC000, 0xC001, 0xC002, 0xC003
KEY_IDENTIFICATION, KEY_SIGNATURE = 0x01, 0x02
CHUNK = 0xC0

SW_OK = 0x9000
SW_SECURITY = 0x6982
SW_BLOCKED = 0x6983
SW_CONDITIONS = 0x6985
SW_WRONG_DATA = 0x6A80
SW_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6A86
SW_REF_NOT_FOUND = 0x6A88


def select_application() -> bytes:
    return bytes([0x00, 0xA4, 0x04, 0x0C, len(AID)]) + AID


def select_file(fid: int) -> bytes:
    return bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")


def read_binary(offset: int, length: int = CHUNK) -> bytes:
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, length])


def pin_block(pin: PinRef, value: str) -> bytes:
    """ASCII digits padded with FF to 12 bytes. Raises: PinFormat."""
    low, high = PIN_LENGTHS[pin]
    if not (value.isascii() and value.isdigit() and low <= len(value) <= high):
        raise PinFormat(pin)
    return value.encode() + b"\xff" * (12 - len(value))


def verify(pin: PinRef, value: str | None = None) -> bytes:
    """VERIFY; without a value it asks the state without spending a try."""
    if value is None:
        return bytes([0x00, 0x20, 0x00, pin])
    return bytes([0x00, 0x20, 0x00, pin, 0x0C]) + pin_block(pin, value)


def logout(pin: PinRef) -> bytes:
    return bytes([0x00, 0x20, 0xFF, pin])


def change_reference_data(pin: PinRef, old: str, new: str) -> bytes:
    return bytes([0x00, 0x24, 0x00, pin, 0x18]) + pin_block(pin, old) + pin_block(pin, new)


def reset_retry_counter(pin: PinRef, puk: str, new: str | None) -> bytes:
    if new is None:
        return bytes([0x00, 0x2C, 0x01, pin, 0x0C]) + pin_block(PinRef.PUK, puk)
    return bytes([0x00, 0x2C, 0x00, pin, 0x18]) + pin_block(PinRef.PUK, puk) + pin_block(pin, new)


def mse_set(template: int, key: int) -> bytes:
    return bytes([0x00, 0x22, 0x41, template, 0x03, 0x84, 0x01, key])


def internal_authenticate(digest: bytes) -> bytes:
    return bytes([0x00, 0x88, 0x00, 0x00, len(digest)]) + digest + b"\x00"


def compute_signature(digest: bytes) -> bytes:
    return bytes([0x00, 0x2A, 0x9E, 0x9A, len(digest)]) + digest + b"\x00"


def tries_left(sw: int) -> int | None:
    return sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None


def check_pin(sw: int, pin: PinRef, during: str) -> None:
    """A VERIFY or CHANGE answer. Raises: WrongPin, PinBlocked, CardProtocolError."""
    if sw == SW_OK:
        return
    left = tries_left(sw)
    if left == 0 or sw == SW_BLOCKED:
        raise PinBlocked(pin)
    if left is not None:
        raise WrongPin(pin, left)
    raise CardProtocolError(sw, during)


def check_puk(sw: int, pin: PinRef) -> None:
    """A RESET RETRY COUNTER answer. Raises: WrongPuk, PukBlocked, CardProtocolError."""
    if sw == SW_OK:
        return
    left = tries_left(sw)
    if sw == SW_BLOCKED or left == 0:
        raise PukBlocked()
    if left is not None:
        raise WrongPuk(pin, left)
    raise CardProtocolError(sw, "unblock")


def check(sw: int, during: str) -> None:
    if sw != SW_OK:
        raise CardProtocolError(sw, during)
