"""What a card or its reader can say, as the project's own typed errors."""

from __future__ import annotations

import enum

from agent.credentials.errors import CredentialError


class PinRef(enum.IntEnum):
    """The card's secrets by their reference in the profile; USER is a PKCS#11 token's one
    PIN (PIV's own reference for it)."""

    USER = 0x80
    IDENTIFICATION = 0x81
    SIGNATURE = 0x82
    PUK = 0x83


# A token judges its own PIN's format; the agent only refuses what no token takes.
PIN_LENGTHS = {
    PinRef.IDENTIFICATION: (4, 12),
    PinRef.SIGNATURE: (5, 12),
    PinRef.PUK: (8, 12),
    PinRef.USER: (1, 64),
}


class CardError(CredentialError):
    """Base of everything a card, a reader or pcscd can make go wrong."""


class WrongPin(CardError):
    def __init__(self, pin: PinRef, tries_left: int | None) -> None:
        # None: the token does not say how many (PKCS#11 has only "low" and "final try")
        super().__init__(f"wrong {pin.name} PIN, {tries_left} tries left")
        self.pin, self.tries_left = pin, tries_left


class WrongCurrentPin(WrongPin):
    """The current PIN given to change it was wrong (it spent a try)."""


class PinBlocked(CardError):
    def __init__(self, pin: PinRef) -> None:
        super().__init__(f"{pin.name} PIN blocked")
        self.pin = pin


class WrongPuk(CardError):
    def __init__(self, pin: PinRef, tries_left: int | None) -> None:
        super().__init__(f"wrong PUK (unblocking {pin.name}), {tries_left} tries left")
        self.pin, self.tries_left = pin, tries_left


class PukBlocked(CardError):
    def __init__(self) -> None:
        super().__init__("PUK blocked: the card must be replaced")


class PinFormat(CardError):
    def __init__(self, pin: PinRef) -> None:
        low, high = PIN_LENGTHS[pin]
        super().__init__(f"{pin.name} PIN must be {low}-{high} digits")
        self.pin, self.low, self.high = pin, low, high


class PinsDiffer(CardError):
    def __init__(self) -> None:
        super().__init__("the new PIN and its repetition differ")


class CardRemoved(CardError):
    def __init__(self, *, pin_sent: bool = True) -> None:
        super().__init__("the card was removed")
        # False when the card left before any PIN reached it: nothing was spent, and an
        # order can simply wait for the card to come back.
        self.pin_sent = pin_sent


class CardReset(CardError):
    def __init__(self) -> None:
        super().__init__("the card was reset by another program")


class NoReader(CardError):
    def __init__(self) -> None:
        super().__init__("no card reader")


class NoCard(CardError):
    def __init__(self) -> None:
        super().__init__("no card in the reader")


class PcscUnavailable(CardError):
    def __init__(self, detail: str = "") -> None:
        super().__init__(f"the smart card service is not available {detail}".strip())


class NotOurCard(CardError):
    def __init__(self) -> None:
        super().__init__("the card is not a BankID card of this profile")


class CardProtocolError(CardError):
    """A status word the profile does not expect: a bug or a hostile card."""

    def __init__(self, sw: int, during: str) -> None:
        super().__init__(f"unexpected status {sw:04X} during {during}")
        self.sw, self.during = sw, during
