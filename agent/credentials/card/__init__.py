"""BankID on card: the profile's driver, behind a one-method connection, and PC/SC."""

from agent.credentials.card.errors import (
    CardError,
    CardProtocolError,
    CardRemoved,
    CardReset,
    NoCard,
    NoReader,
    NotOurCard,
    PcscUnavailable,
    PinBlocked,
    PinFormat,
    PinRef,
    PinsDiffer,
    PukBlocked,
    WrongCurrentPin,
    WrongPin,
    WrongPuk,
)
from agent.credentials.card.monitor import CardWatcher, cards_now
from agent.credentials.card.pcsc import PcscContext
from agent.credentials.card.session import CardSession, Connection, PinStatus

__all__ = [
    "CardError",
    "CardProtocolError",
    "CardRemoved",
    "CardReset",
    "CardSession",
    "CardWatcher",
    "Connection",
    "NoCard",
    "NoReader",
    "NotOurCard",
    "PcscContext",
    "PcscUnavailable",
    "PinBlocked",
    "PinFormat",
    "PinRef",
    "PinStatus",
    "PinsDiffer",
    "PukBlocked",
    "WrongCurrentPin",
    "WrongPin",
    "WrongPuk",
    "cards_now",
]
