"""PC/SC through pyscard: the only module that imports ``smartcard``.

The low-level ``smartcard.scard`` API is used rather than pyscard's object layer: it
gives the PC/SC result codes directly (mapped below to the project's errors) and explicit
transactions. pyscard's monitor threads are not used: they die for good when pcscd
restarts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from smartcard import scard

from agent.credentials.card.errors import (
    CardError,
    CardRemoved,
    CardReset,
    NoCard,
    NoReader,
    PcscUnavailable,
)

_MAP: dict[int, type[CardError]] = {
    scard.SCARD_W_REMOVED_CARD: CardRemoved,
    scard.SCARD_E_NOT_TRANSACTED: CardRemoved,  # what a pulled card gives mid-session
    scard.SCARD_W_UNPOWERED_CARD: CardRemoved,
    scard.SCARD_W_UNRESPONSIVE_CARD: CardRemoved,
    # Seen transiently while pcscd is taking a card down: not usable this moment.
    scard.SCARD_E_PROTO_MISMATCH: CardRemoved,
    scard.SCARD_W_RESET_CARD: CardReset,
    scard.SCARD_E_NO_SMARTCARD: NoCard,
    scard.SCARD_E_UNKNOWN_READER: NoReader,
    scard.SCARD_E_READER_UNAVAILABLE: NoReader,
    scard.SCARD_E_NO_READERS_AVAILABLE: NoReader,
}
_SERVICE_DOWN = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_F_COMM_ERROR,
    scard.SCARD_E_INVALID_HANDLE,
}


def _raise(hresult: int, what: str) -> None:
    if hresult == scard.SCARD_S_SUCCESS:
        return
    if hresult in _SERVICE_DOWN:
        raise PcscUnavailable(f"({what}: {scard.SCardGetErrorMessage(hresult)})")
    error = _MAP.get(hresult)
    if error is not None:
        raise error()
    raise PcscUnavailable(f"({what}: 0x{hresult & 0xFFFFFFFF:08X})")


PNP_READER = "\\\\?PnP?\\Notification"  # pcsc-lite's pseudo-reader for readers coming and going


@dataclass(frozen=True)
class ReaderState:
    """A reader as pcsc-lite reports it. ``raw`` is handed back on the next wait."""

    name: str
    raw: int
    present: bool

    @property
    def events(self) -> int:
        # pcsc-lite counts card events in the upper 16 bits: a swap of two cards between
        # two looks still changes the count, even when the ATRs are equal.
        return self.raw >> 16


class PcscContext:
    """A PC/SC context: list readers, connect to a card, wait for changes."""

    def __init__(self) -> None:
        hresult, self._context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _raise(hresult, "establish context")

    def readers(self) -> list[str]:
        hresult, names = scard.SCardListReaders(self._context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        _raise(hresult, "list readers")
        return list(names)

    def connect(self, reader: str) -> PcscConnection:
        """Raises: NoCard, NoReader, PcscUnavailable."""
        hresult, card, protocol = scard.SCardConnect(
            self._context,
            reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        _raise(hresult, "connect")
        return PcscConnection(card, protocol)

    def wait_for_change(self, known: Mapping[str, int], timeout_ms: int) -> dict[str, ReaderState]:
        """The readers' states once something differs from ``known`` (raw states from the
        last call; a new reader or a reader gone counts), or after ``timeout_ms``.

        Raises: PcscUnavailable (pcscd stopped: make a new context).
        """
        readers = self.readers()
        wanted = [(r, known.get(r, scard.SCARD_STATE_UNAWARE)) for r in readers]
        pnp = (PNP_READER, known.get(PNP_READER, scard.SCARD_STATE_UNAWARE))
        if set(readers) != {r for r in known if r != PNP_READER}:
            timeout_ms = 0  # the reader list itself changed: report at once
        hresult, states = scard.SCardGetStatusChange(self._context, timeout_ms, [*wanted, pnp])
        if hresult == scard.SCARD_E_TIMEOUT:
            hresult, states = scard.SCardGetStatusChange(self._context, 0, [*wanted, pnp])
            if hresult == scard.SCARD_E_TIMEOUT:
                states = [*wanted, (pnp[0], pnp[1], [])]
                hresult = scard.SCARD_S_SUCCESS
        _raise(hresult, "status change")
        return {
            name: ReaderState(name, int(raw), bool(int(raw) & scard.SCARD_STATE_PRESENT))
            for name, raw, *_ in states
        }

    def cancel(self) -> None:
        """Make a wait blocked in another thread return now (SCardCancel is the one call
        PC/SC allows across threads on one context)."""
        scard.SCardCancel(self._context)

    def close(self) -> None:
        scard.SCardReleaseContext(self._context)

    def __enter__(self) -> PcscContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcscConnection:
    """One card, shared with other programs; implements the session's Connection."""

    def __init__(self, card: int, protocol: int) -> None:
        self._card, self._protocol = card, protocol

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        hresult, response = scard.SCardTransmit(self._card, self._protocol, list(command))
        if hresult:  # the hot path skips the mapping on success
            _raise(hresult, "transmit")
        if len(response) < 2:
            # No status word: the card did not answer. With vpcd this is what a card pulled
            # while answering looks like; for the person it is a card that is gone.
            raise CardRemoved()
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        _raise(scard.SCardBeginTransaction(self._card), "begin transaction")
        try:
            yield
        finally:
            scard.SCardEndTransaction(self._card, scard.SCARD_LEAVE_CARD)

    def close(self) -> None:
        scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
