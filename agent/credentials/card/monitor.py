"""The agent's own reader and card monitor: supervised, so a pcscd restart, a reader
unplugged or a card swapped in a flash all end up in the same snapshot.

``diff`` is the rule (pure); ``CardWatcher`` is the driver: one asyncio task that waits
for PC/SC changes in an executor, reads each new card's certificates, keeps a snapshot of
the usable cards and wakes whoever waits for a card. When pcscd goes away it makes a new
context with back-off (pyscard's own monitor threads die for good there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agent.credentials.card.errors import (
    CardError,
    CardRemoved,
    CardReset,
    PcscUnavailable,
    PinFormat,
    PinRef,
)
from agent.credentials.card.session import CardSession, PinStatus
from agent.credentials.certificates import describe
from agent.credentials.model import CredentialInfo, CredentialKind, KeyPurpose

if TYPE_CHECKING:  # pyscard loads only when the watcher runs
    from agent.credentials.card.pcsc import PcscContext

log = logging.getLogger(__name__)
_T = TypeVar("_T")

WAIT_MS = 500  # how long one PC/SC wait blocks an executor thread
MAX_READ_ATTEMPTS = 10  # rounds to retry reading a card that is still settling
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts to reach pcscd again


@dataclass(frozen=True)
class Changes:
    inserted: frozenset[str]  # readers with a new card (a swap is removed + inserted)
    removed: frozenset[str]  # readers whose card left, or that left themselves


def diff(old: Mapping[str, tuple[bool, int]], new: Mapping[str, tuple[bool, int]]) -> Changes:
    """Compare two looks at the readers: ``reader → (card present, event count)``."""
    inserted, removed = set(), set()
    for reader in old.keys() | new.keys():
        was_present, was_events = old.get(reader, (False, -1))
        present, events = new.get(reader, (False, -1))
        if was_present and (not present or events != was_events):
            removed.add(reader)
        if present and (not was_present or events != was_events):
            inserted.add(reader)
    return Changes(frozenset(inserted), frozenset(removed))


@dataclass(frozen=True)
class CardCredential:
    reader: str
    info: CredentialInfo
    chains: Mapping[KeyPurpose, tuple[bytes, ...]]


def read_card(reader: str, session: CardSession) -> CardCredential:
    """Raises: CardError (not our card, removed, …), ValueError (certificates unreadable)."""
    chains = session.chains()
    info = describe(
        CredentialKind.CARD, chains[KeyPurpose.IDENTIFICATION][0], chains[KeyPurpose.SIGNATURE][0]
    )
    return CardCredential(reader, info, chains)


def cards_now() -> list[CardCredential]:
    """The cards in readers at this moment, for one-shot listings; no pcscd, no cards."""
    from agent.credentials.card.pcsc import PcscContext

    found = []
    try:
        with PcscContext() as context:
            for reader in context.readers():
                try:
                    with context.connect(reader) as connection:
                        found.append(read_card(reader, CardSession(connection)))
                except (CardError, ValueError) as exc:
                    log.info("reader %s: %s", reader, type(exc).__name__)
    except CardError as exc:
        log.info("no card listing: %s", exc)
    return found


class CardWatcher:
    """The snapshot of cards in readers, kept current by ``run``."""

    def __init__(self) -> None:
        self._cards: dict[str, CardCredential] = {}
        self._looks: dict[str, tuple[bool, int]] = {}
        self._changed = asyncio.Event()
        self.generation = 0  # counts snapshot changes
        self.service_up = False
        self.restarts = 0
        # the first look taken (or pcscd found unreachable): what is listed now is what
        # is in the readers, not what has not been read yet
        self.ready = asyncio.Event()
        self._inflight: asyncio.Future[Any] | None = None
        self._retry: dict[str, int] = {}  # readers whose card could not be read yet

    def credentials(self) -> list[CredentialInfo]:
        return [c.info for c in self._cards.values()]

    def card(self, credential_id: str) -> CardCredential | None:
        return next((c for c in self._cards.values() if c.info.id == credential_id), None)

    async def wait_changed(self, since: int) -> None:
        """Until the snapshot has changed after ``generation`` was ``since``. (Taking the
        generation first and waiting after cannot miss a card inserted in between.)"""
        while self.generation <= since:
            self._changed.clear()
            await self._changed.wait()

    def _notify(self) -> None:
        self.generation += 1
        self._changed.set()

    async def run(self) -> None:
        from agent.credentials.card.pcsc import PcscContext

        attempt = 0
        lost = False  # the service was up and went away (a restart, however quick)
        while True:
            try:
                context = await asyncio.to_thread(PcscContext)
            except CardError as exc:
                self._lost(f"cannot reach pcscd: {exc}")
                await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                attempt += 1
                continue
            if attempt or lost:
                # counted even when pcscd was back before the first new try: a restart
                # faster than one PC/SC wait used to go uncounted (a flaky test found it)
                self.restarts += 1
                log.info("smart card service reachable again")
            attempt, lost = 0, False
            self.service_up = True
            try:
                await self._watch(context)
            except CardError as exc:
                self._lost(f"smart card service lost: {exc}")
                lost = True
            finally:
                await self._release(context)

    async def _in_thread(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run a PC/SC call in an executor, remembering it: a context must not be released
        while a call on it is still running (pcsc-lite deadlocks), cancelled or not."""
        future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._inflight = future
        result: _T = await asyncio.shield(future)
        return result

    async def _release(self, context: PcscContext) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None and not inflight.done():
            context.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(inflight), timeout=5)
        await asyncio.to_thread(context.close)

    def _lost(self, why: str) -> None:
        self.ready.set()
        if self.service_up or self._cards:
            log.warning("%s", why)
        self.service_up = False
        if self._cards or self._looks:
            self._cards.clear()
            self._looks.clear()
            self._notify()

    async def _watch(self, context: PcscContext) -> None:
        raw: dict[str, int] = {}
        while True:
            states = await self._in_thread(context.wait_for_change, raw, WAIT_MS)
            raw = {name: s.raw for name, s in states.items()}
            looks = {
                n: (s.present, s.events) for n, s in states.items() if not n.startswith("\\\\?")
            }
            changes = diff(self._looks, looks)
            self._looks = looks
            for reader in changes.removed:
                self._retry.pop(reader, None)
                if self._cards.pop(reader, None) is not None:
                    log.info("card removed from %s", reader)
            before = len(self._cards)
            for reader in changes.inserted | (self._retry.keys() - changes.removed):
                if looks.get(reader, (False, 0))[0]:
                    await self._read(context, reader)
            if changes.inserted or changes.removed or len(self._cards) != before:
                self._notify()
            self.ready.set()

    async def _read(self, context: PcscContext, reader: str) -> None:
        def read() -> CardCredential:
            with context.connect(reader) as connection:
                return read_card(reader, CardSession(connection))

        try:
            card = await self._in_thread(read)
        except (CardRemoved, CardReset, PcscUnavailable) as exc:
            # A card still settling (just inserted, reset by another program): look again
            # on the next round rather than never listing it.
            attempts = self._retry.get(reader, 0) + 1
            if attempts <= MAX_READ_ATTEMPTS:
                self._retry[reader] = attempts
            else:
                self._retry.pop(reader, None)
                log.warning("card in %s could not be read: %s", reader, exc)
            return
        except (CardError, ValueError) as exc:
            self._retry.pop(reader, None)
            log.info("card in %s not usable: %s", reader, exc)
            return
        self._retry.pop(reader, None)
        self._cards[reader] = card
        log.info("card %s inserted in %s", card.info.id, reader)

    # -- using a card ----------------------------------------------------------------------

    def pin_status(self, credential_id: str, pin: PinRef) -> PinStatus:
        """Raises: CardError (e.g. the card is gone)."""
        return self._with_session(credential_id, lambda s: s.pin_status(pin))

    def sign(self, credential_id: str, purpose: KeyPurpose, data: bytes, pin: str | None) -> bytes:
        """Blocking: run in an executor. Raises: CardError (WrongPin, PinBlocked, …);
        PinFormat for no PIN (the profile's cards are never behind a PIN pad here)."""
        if pin is None:
            raise PinFormat(
                PinRef.SIGNATURE if purpose is KeyPurpose.SIGNATURE else PinRef.IDENTIFICATION
            )
        return self._with_session(credential_id, lambda s: s.sign(purpose, data, pin))

    def change_pin(self, credential_id: str, pin: PinRef, old: str, new: str) -> None:
        """Blocking. Raises: CardError (WrongCurrentPin, PinBlocked, PinFormat, …)."""
        self._with_session(credential_id, lambda s: s.change_pin(pin, old, new))

    def unblock_pin(self, credential_id: str, pin: PinRef, puk: str, new: str | None) -> None:
        """Blocking. Raises: CardError (WrongPuk, PukBlocked, PinFormat, …)."""
        self._with_session(credential_id, lambda s: s.unblock_pin(pin, puk, new))

    def _with_session(self, credential_id: str, work: Callable[[CardSession], _T]) -> _T:
        from agent.credentials.card.errors import NoCard
        from agent.credentials.card.pcsc import PcscContext

        card = self.card(credential_id)
        if card is None:
            raise NoCard()
        with PcscContext() as context, context.connect(card.reader) as connection:
            return work(CardSession(connection))
