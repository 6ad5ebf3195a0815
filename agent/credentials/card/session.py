"""Talking to one card of the profile through a one-method connection.

Rules (CARD-PROFILE.md): SELECT first; MSE → VERIFY → operation inside one PC/SC
transaction, so no other program can slip a command in between; the signature PIN is
verified immediately before each signature and never kept; after an operation the
identification PIN is logged out again, so no other program can ride on it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from agent.credentials.card import apdu
from agent.credentials.card.errors import (
    CardProtocolError,
    CardRemoved,
    CardReset,
    NoCard,
    NoReader,
    NotOurCard,
    PcscUnavailable,
    PinRef,
    WrongCurrentPin,
    WrongPin,
)
from agent.credentials.model import KeyPurpose
from eidcore import strictjson

MAX_FILE = 8192  # a certificate is ~600 bytes; a card that streams more is refused


class Connection(Protocol):
    def transmit(self, command: bytes) -> tuple[bytes, int]:
        """Send one APDU; the response data and the status word. Raises: CardError."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive access for the duration of the block."""
        ...


@dataclass(frozen=True)
class PinStatus:
    pin: PinRef
    tries_left: int | None  # 0 when blocked; None when the token does not say
    verified: bool

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0


class CardSession:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self.apdus = 0

    # -- transport ---------------------------------------------------------------------

    def send(self, command: bytes) -> tuple[bytes, int]:
        data, sw = self._transmit(command)
        if sw >> 8 == 0x6C:  # wrong Le: the card says which
            data, sw = self._transmit(command[:-1] + bytes([sw & 0xFF]))
        if sw >> 8 != 0x61:
            return data, sw  # the common case: one exchange, nothing to collect
        out = bytearray(data)
        while sw >> 8 == 0x61:  # more data waiting: GET RESPONSE
            data, sw = self._transmit(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
            out += data
            if len(out) > MAX_FILE:
                raise CardProtocolError(sw, "get response")
        return bytes(out), sw

    def _transmit(self, command: bytes) -> tuple[bytes, int]:
        self.apdus += 1
        return self._conn.transmit(command)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    # -- reading -------------------------------------------------------------------------

    def select(self) -> None:
        """Raises: NotOurCard."""
        _, sw = self.send(apdu.select_application())
        if sw != apdu.SW_OK:
            raise NotOurCard()

    def read_file(self, fid: int) -> bytes | None:
        """The whole file, or None when the card has no such file."""
        _, sw = self.send(apdu.select_file(fid))
        if sw == apdu.SW_NOT_FOUND:
            return None
        apdu.check(sw, "select file")
        content = bytearray()
        while len(content) <= MAX_FILE:
            data, sw = self.send(apdu.read_binary(len(content)))
            if sw == apdu.SW_WRONG_P1P2 or (sw == apdu.SW_OK and not data):
                break
            apdu.check(sw, "read binary")
            content += data
            if len(data) < apdu.CHUNK:
                break
        else:
            raise CardProtocolError(sw, "read binary (file too large)")
        return bytes(content)

    def chains(self) -> dict[KeyPurpose, tuple[bytes, ...]]:
        """Certificate chains (DER, leaf first) as the card holds them."""
        with self.exclusive():
            self.select()
            ident = self.read_file(apdu.FILE_IDENTIFICATION)
            sign = self.read_file(apdu.FILE_SIGNATURE)
            ca = self.read_file(apdu.FILE_CA)
        if ident is None or sign is None:
            raise NotOurCard()
        tail = (ca,) if ca else ()
        return {KeyPurpose.IDENTIFICATION: (ident, *tail), KeyPurpose.SIGNATURE: (sign, *tail)}

    def card_info(self) -> dict[str, object]:
        with self.exclusive():
            self.select()
            raw = self.read_file(apdu.FILE_INFO)
        try:
            info = strictjson.loads(raw or b"{}")
        except ValueError:
            return {}
        return info if isinstance(info, dict) else {}

    # -- PINs ----------------------------------------------------------------------------

    def pin_status(self, pin: PinRef) -> PinStatus:
        """Tries left without spending one (the empty VERIFY)."""
        with self.exclusive():
            self.select()
            return self._status(pin)

    def _status(self, pin: PinRef) -> PinStatus:
        if pin is PinRef.PUK:
            # The PUK cannot be asked directly; an unblock with a malformed block would
            # spend nothing but also says nothing. The card info has no counters, so the
            # PUK's tries are only learned from an unblock attempt.
            raise ValueError("the PUK's state is learned from an unblock attempt")
        _, sw = self.send(apdu.verify(pin))
        if sw == apdu.SW_OK:
            return PinStatus(pin, 3, True)
        left = apdu.tries_left(sw)
        if sw == apdu.SW_BLOCKED or left == 0:
            return PinStatus(pin, 0, False)
        if left is None:
            raise CardProtocolError(sw, "pin status")
        return PinStatus(pin, left, False)

    def change_pin(self, pin: PinRef, old: str, new: str) -> None:
        """Raises: PinFormat (nothing spent), WrongCurrentPin, PinBlocked, CardError."""
        command = apdu.change_reference_data(pin, old, new)
        with self.exclusive():
            self.select()
            _, sw = self.send(command)
        try:
            apdu.check_pin(sw, pin, "change pin")
        except WrongPin as exc:
            raise WrongCurrentPin(exc.pin, exc.tries_left) from None

    def unblock_pin(self, pin: PinRef, puk: str, new: str | None) -> None:
        """Raises: PinFormat (nothing spent), WrongPuk, PukBlocked, CardError."""
        command = apdu.reset_retry_counter(pin, puk, new)
        with self.exclusive():
            self.select()
            _, sw = self.send(command)
        apdu.check_puk(sw, pin)

    # -- signing -------------------------------------------------------------------------

    def sign(self, purpose: KeyPurpose, data: bytes, pin: str) -> bytes:
        """ES256 r‖s over SHA-256(data) with the key for ``purpose``, behind its PIN.

        Raises: PinFormat (nothing spent), WrongPin, PinBlocked, CardRemoved, CardError.
        """
        ref = PinRef.IDENTIFICATION if purpose is KeyPurpose.IDENTIFICATION else PinRef.SIGNATURE
        verify = apdu.verify(ref, pin)  # formats the PIN before the card is touched
        digest = hashlib.sha256(data).digest()
        if purpose is KeyPurpose.IDENTIFICATION:
            mse, operation = apdu.mse_set(0xA4, apdu.KEY_IDENTIFICATION), apdu.internal_authenticate
        else:
            mse, operation = apdu.mse_set(0xB6, apdu.KEY_SIGNATURE), apdu.compute_signature
        pin_sent = False
        try:
            with self.exclusive():
                self.select()
                _, sw = self.send(mse)
                apdu.check(sw, "manage security environment")
                pin_sent = True  # from here on the card may have counted a try
                _, sw = self.send(verify)
                apdu.check_pin(sw, ref, "verify")
                try:
                    signature, sw = self.send(operation(digest))
                    apdu.check(sw, "sign")
                finally:
                    self.send(apdu.logout(ref))
        except CardRemoved:
            raise CardRemoved(pin_sent=pin_sent) from None
        except (PcscUnavailable, NoReader, NoCard, CardReset):
            if not pin_sent:  # the card or the service went away before any PIN: nothing
                raise CardRemoved(pin_sent=False) from None  # spent, the order can wait
            raise
        if len(signature) != 64:
            raise CardProtocolError(sw, "sign (signature length)")
        return signature
