"""The order service: drives one order at a time through the pure order machine.

Ownership (see agent/app/daemon.py): everything here runs on the one asyncio loop. Blocking
work — reading credential files, the password KDF — runs in the default executor. The UI
is reached only through the UI port. Time and order references come from the callables
passed in, so tests fix them.

The book is the service's own: the doors ask it (``collect``, ``busy``, ``order``) and wait
on it (``next_phase``, ``outcome``) — each change of an order wakes whoever waits on that
order, so nobody polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from agent.credentials import (
    ALGORITHM,
    CredentialError,
    CredentialInfo,
    CredentialKind,
    CredentialLocked,
    CredentialStore,
    KeyPurpose,
    NoUsableCredential,
    Watcher,
    WrongPassword,
    pin_for,
    select,
    without_roots,
)
from agent.credentials.card import (
    CardError,
    CardRemoved,
    PinBlocked,
    PinFormat,
    PinRef,
    WrongPin,
)
from agent.credentials.pkcs11 import PinEntryCancelled
from agent.notices import Notice, notice_for
from agent.orders import (
    Completion,
    Event,
    IllegalTransition,
    Order,
    OrderBook,
    OrderKind,
    OrderRequest,
    Phase,
    UnknownOrder,
)
from agent.ui import DialogBlocked, Request, UiPort
from eidcore import signeddata, xmlsig
from eidcore.messages import MessageCode

log = logging.getLogger(__name__)

PURPOSE = {OrderKind.AUTH: KeyPurpose.IDENTIFICATION, OrderKind.SIGN: KeyPurpose.SIGNATURE}
_FUNC = {OrderKind.AUTH: xmlsig.FuncId.IDENTIFICATION, OrderKind.SIGN: xmlsig.FuncId.SIGNING}
PAGE_CHECK_SECONDS = 1.0  # how often a bridge order's page is looked for


class OrderService:
    def __init__(
        self,
        store: CredentialStore,
        ui: UiPort,
        book: OrderBook,
        *,
        clock: Callable[[], dt.datetime],
        new_ref: Callable[[], str],
        agent_version: str,
        hardware: Watcher | None = None,
    ) -> None:
        self._store, self._ui, self._book = store, ui, book
        self._hardware = hardware
        self._clock, self._new_ref, self._version = clock, new_ref, agent_version
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._watching: asyncio.Task[None] | None = None  # the page of the bridge order
        self._changes: dict[str, asyncio.Event] = {}  # set when that order moves on

    @property
    def agent_version(self) -> str:
        """The version a relay order's XML names (its ``clientInfo``)."""
        return self._version

    def __len__(self) -> int:
        """How many orders are kept: the active one and the finished ones still collectable."""
        return len(self._book)

    def busy(self) -> bool:
        """Whether an order is active (an update waits for it to end)."""
        return self._book.active(self._clock()) is not None

    def order(self, ref: str) -> Order:
        """The order as it stands, for the door that started it. Raises: UnknownOrder."""
        return self._book.get(ref, self._clock())

    async def next_phase(self, ref: str, phase: Phase) -> Order:
        """The order once it has left ``phase`` (at once if it already has). Raises:
        UnknownOrder (no longer kept)."""
        while True:
            order = self.order(ref)
            if order.phase is not phase:
                return order
            await self._changes.setdefault(ref, asyncio.Event()).wait()

    async def outcome(self, ref: str) -> Order:
        """The order once it has ended. Raises: UnknownOrder (no longer kept)."""
        order = self.order(ref)
        while order.phase.pending:
            order = await self.next_phase(ref, order.phase)
        return order

    def _record(self, ref: str, event: Event, **data: object) -> Order:
        """Apply ``event`` and wake whoever waits on the order. Raises: IllegalTransition,
        UnknownOrder."""
        try:
            return self._book.apply(ref, event, self._clock(), **data)
        finally:
            changed = self._changes.pop(ref, None)
            if changed is not None:
                changed.set()

    def start(self, request: OrderRequest) -> Order:
        """Raises: AlreadyInProgress (another origin's order is active)."""
        self._end_abandoned()
        old = self._book.replaced_by(request, self._clock())
        if old is not None:
            self.cancel(old.ref, old.request.origin)  # ends `cancelled`, its dialog closes
            log.info("order %s replaced by a new one from the same site", old.ref)
        order = self._book.start(request, self._new_ref(), self._clock())
        log.info("order %s started: %s from %s", order.ref, request.kind, request.origin)
        task = asyncio.get_running_loop().create_task(self._supervise(order))
        self._tasks[order.ref] = task
        task.add_done_callback(self._forget)
        if order.seen is not None:
            if self._watching is not None:
                self._watching.cancel()
            self._watching = asyncio.get_running_loop().create_task(self._watch_page(order.ref))
        return order

    def tried(self, origin: str) -> None:
        """A start from ``origin`` refused at the door (rate-limited): a try all the
        same (``OrderBook.tried``)."""
        self._book.tried(origin, self._clock())

    def collect(self, ref: str, origin: str) -> Order:
        """Raises: UnknownOrder (also when another origin asks: refs are not shared)."""
        order = self._book.get(ref, self._clock())
        if order.request.origin != origin:
            raise UnknownOrder()
        return self._book.seen(ref, self._clock())

    async def _watch_page(self, ref: str) -> None:
        """Ends a bridge order whose page stopped collecting (its tab was closed): the
        dialog closes, and the next site's order is not refused for three minutes."""
        while ref in self._tasks:
            await asyncio.sleep(PAGE_CHECK_SECONDS)
            self._end_abandoned()

    def _end_abandoned(self) -> None:
        gone = self._book.abandoned(self._clock())
        if gone is None:
            return
        with contextlib.suppress(IllegalTransition, UnknownOrder):
            self._record(gone.ref, Event.PAGE_GONE)
            log.info("order %s abandoned: its page stopped asking about it", gone.ref)
        task = self._tasks.get(gone.ref)
        if task is not None:
            task.cancel()

    def cancel(self, ref: str, origin: str) -> Order:
        """Cancel from the page. Raises: UnknownOrder, IllegalTransition (already over)."""
        self.collect(ref, origin)
        order = self._record(ref, Event.RP_CANCEL)
        log.info("order %s cancelled by the page", ref)
        task = self._tasks.get(ref)
        if task is not None:
            task.cancel()
        return order

    def _forget(self, task: asyncio.Task[None]) -> None:
        for ref, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[ref]
                changed = self._changes.pop(ref, None)  # its last word has been said
                if changed is not None:
                    changed.set()

    async def aclose(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- the flow --------------------------------------------------------------------------

    async def _supervise(self, order: Order) -> None:
        remaining = (order.deadline - self._clock()).total_seconds()
        try:
            await asyncio.wait_for(self._flow(order), timeout=max(0.0, remaining))
        except TimeoutError:
            with contextlib.suppress(IllegalTransition, UnknownOrder):
                self._record(order.ref, Event.EXPIRE)
            log.info("order %s expired", order.ref)
            await self._ui.tell(Notice(MessageCode.TIMED_OUT))
        except asyncio.CancelledError:
            pass  # cancelled by the page or at shutdown; the book already says so
        except _OrderEnded:
            pass  # it expired or was cancelled between two steps
        except DialogBlocked as exc:
            log.warning("order %s: the dialog is blocked (%s)", order.ref, exc.reason)
            with contextlib.suppress(IllegalTransition, UnknownOrder):
                self._record(order.ref, Event.START_FAILED, detail="dialogBlocked")
            await self._ui.tell(Notice(MessageCode.DIALOG_BLOCKED))
        except Exception:
            log.exception("order %s failed unexpectedly", order.ref)
            with contextlib.suppress(IllegalTransition, UnknownOrder):
                self._record(order.ref, Event.START_FAILED, detail="internal")
            await self._ui.tell(Notice(MessageCode.INTERNAL_ERROR))
        finally:
            await self._ui.close(order.ref)

    async def _credentials(self) -> list[CredentialInfo]:
        files = await asyncio.to_thread(self._store.credentials)
        return files + (self._hardware.credentials() if self._hardware is not None else [])

    async def _usable(self, order: Order) -> tuple[CredentialInfo, ...] | None:
        """The usable credentials; with card support, waits (noClient) until one comes.
        None when the order ended as certificateErr."""
        request = order.request
        # Already waiting when a card left mid-order (CARD_GONE put the order back).
        waiting = self.order(order.ref).phase is Phase.NO_CLIENT
        while True:
            generation = self._hardware.generation if self._hardware is not None else 0
            try:
                return select(
                    await self._credentials(),
                    PURPOSE[request.kind],
                    self._clock(),
                    personal_number=request.personal_number,
                    kinds=request.token_kinds,
                    pin_pad=request.pin_pad,
                    es256=request.party is None,  # the bridge's signedData v2
                )
            except NoUsableCredential as exc:
                if self._hardware is None:
                    log.info("order %s: no usable credential (%s)", order.ref, exc.reason)
                    self._apply(order.ref, Event.NO_CREDENTIAL, detail=str(exc.reason))
                    await self._ui.tell(notice_for(exc))
                    return None
                if not waiting:
                    log.info("order %s: waiting for a card (%s)", order.ref, exc.reason)
                    self._apply(order.ref, Event.WAIT_FOR_CARD, detail=str(exc.reason))
                    await self._ui.tell(Notice(MessageCode.BANKID_MISSING))
                    waiting = True
            assert self._hardware is not None
            await self._hardware.wait_changed(generation)

    async def _flow(self, order: Order) -> None:
        while not await self._attempt(order):
            pass  # the card left before anything was spent: wait for it, then go on

    async def _attempt(self, order: Order) -> bool:
        """One pass from finding credentials to a signature. True when the order has
        ended; False when the card left before a PIN reached it (back to noClient)."""
        ref, request = order.ref, order.request
        purpose = PURPOSE[request.kind]
        usable = await self._usable(order)
        if usable is None:
            return True
        ui_request = Request(
            ref,
            request.kind,
            request.origin,
            request.user_visible_data,
            request.user_visible_format,
            usable,
            party_name=request.party_name,
            call_initiator=request.call_initiator,
        )
        self._apply(ref, Event.UI_OPENED)
        chosen = await self._ui.choose(ui_request)
        if chosen is None:
            self._apply(ref, Event.USER_CANCEL)
            return True
        self._apply(ref, Event.CREDENTIAL_CHOSEN)
        hardware = chosen.kind is not CredentialKind.FILE
        sign = self._sign_with_card if hardware else self._sign_with_file
        problem: Notice | None = None
        while True:
            if hardware:
                try:
                    chosen = await self._with_pin_tries(chosen, purpose)
                except CardError as exc:
                    return await self._card_gone(ref, exc)
                if chosen.tries_left == 0:
                    self._apply(ref, Event.CREDENTIAL_BLOCKED, detail="pin blocked")
                    await self._ui.tell(notice_for(PinBlocked(_pin(chosen, purpose))))
                    return True
            secret: str | None
            if chosen.pin_pad:  # typed on the reader: the dialog asks only to go on
                secret = None
                if not await self._ui.confirm_pin_pad(ui_request, chosen, problem):
                    self._apply(ref, Event.USER_CANCEL)
                    return True
            else:
                secret = await self._ui.ask_secret(ui_request, chosen, problem)
                if secret is None:
                    self._apply(ref, Event.USER_CANCEL)
                    return True
            try:
                completion = await sign(order, chosen, purpose, secret)
            except (WrongPassword, WrongPin) as exc:
                self._apply(ref, Event.WRONG_SECRET, tries_left=exc.tries_left)
                problem = notice_for(exc)
                continue
            except PinFormat as exc:
                problem = notice_for(exc)  # nothing spent: ask again
                continue
            except PinEntryCancelled:  # Cancel on the reader's PIN pad
                self._apply(ref, Event.USER_CANCEL)
                return True
            except (CredentialLocked, PinBlocked) as exc:
                self._apply(ref, Event.CREDENTIAL_BLOCKED, detail=type(exc).__name__)
                await self._ui.tell(notice_for(exc))
                return True
            except CardRemoved as exc:
                if not exc.pin_sent:
                    return await self._card_gone(ref, exc)
                return await self._start_failed(ref, exc)
            except CredentialError as exc:
                return await self._start_failed(ref, exc)
            finally:
                del secret  # dropped as soon as used
            break
        self._apply(ref, Event.SIGNED, completion=completion)
        log.info("order %s complete", ref)
        return True

    async def _card_gone(self, ref: str, exc: CardError) -> bool:
        """The card left before any PIN reached it: nothing spent, wait for it again."""
        log.info("order %s: card gone before a PIN reached it (%s)", ref, type(exc).__name__)
        self._apply(ref, Event.CARD_GONE)
        await self._ui.close(ref)
        await self._ui.tell(notice_for(CardRemoved(pin_sent=False)))
        return False

    async def _start_failed(self, ref: str, exc: CredentialError) -> bool:
        log.warning("order %s: credential unusable: %s", ref, exc)
        self._apply(ref, Event.START_FAILED, detail=type(exc).__name__)
        await self._ui.tell(notice_for(exc))
        return True

    async def _with_pin_tries(self, card: CredentialInfo, purpose: KeyPurpose) -> CredentialInfo:
        """The card with its PIN's tries left, shown to the person before they type."""
        assert self._hardware is not None
        status = await asyncio.to_thread(self._hardware.pin_status, card.id, _pin(card, purpose))
        return replace(card, tries_left=status.tries_left)

    async def _sign_with_file(
        self, order: Order, credential: CredentialInfo, purpose: KeyPurpose, secret: str | None
    ) -> Completion:
        assert secret is not None, "a BankID on file has a password"
        unlocked = await asyncio.to_thread(self._store.unlock, credential.id, secret)

        async def sign(data: bytes) -> bytes:
            return unlocked.sign(purpose, data)

        return await self._signed(order, credential, unlocked.certificate_chain(purpose), sign)

    async def _sign_with_card(
        self, order: Order, credential: CredentialInfo, purpose: KeyPurpose, secret: str | None
    ) -> Completion:
        assert self._hardware is not None
        hardware = self._hardware
        card = hardware.card(credential.id)
        if card is None:  # gone from the snapshot before its PIN went anywhere
            raise CardRemoved(pin_sent=False)

        async def sign(data: bytes) -> bytes:
            return await asyncio.to_thread(hardware.sign, credential.id, purpose, data, secret)

        return await self._signed(order, credential, without_roots(card.chains[purpose]), sign)

    async def _signed(
        self,
        order: Order,
        credential: CredentialInfo,
        chain: tuple[bytes, ...],
        sign: Callable[[bytes], Awaitable[bytes]],
    ) -> Completion:
        """The evidence for ``order``, built here from what the person was shown: a
        bridge order's signedData v2, a relay order's XML signature (``eidcore.xmlsig``)."""
        owner = credential.owner
        person = Completion(
            personal_number=str(owner.personal_number),
            name=owner.name,
            given_name=owner.given_name,
            surname=owner.surname,
            token_kind=credential.kind,
            certificate_chain=chain,
        )
        request = order.request  # an order's request never changes
        if request.party is None:
            data = self._signed_data(order)
            signature = await sign(data)
            return replace(person, signed_data=data, signature=signature, algorithm=ALGORITHM)
        algorithm = xmlsig.Algorithm.RSA_SHA256 if credential.rsa else xmlsig.Algorithm.ECDSA_SHA256
        unsigned = xmlsig.prepare(self._content(request), chain, algorithm)
        value = await sign(unsigned.signed_info)
        return replace(person, xml=unsigned.finish(value), signature=value)

    def _content(self, request: OrderRequest) -> xmlsig.SignedContent:
        assert request.party is not None and request.order_ref is not None, "a relay order"
        return xmlsig.SignedContent(
            func=_FUNC[request.kind],
            visible=request.user_visible_data,
            visible_format=request.user_visible_format,
            non_visible=request.user_non_visible_data,
            party_id=request.party,
            party_name=request.party_name or "",
            origin=request.origin,
            nonce=request.nonce,
            order_ref=request.order_ref,
            version=self._version,
        )

    def _signed_data(self, order: Order) -> bytes:
        request = order.request
        return signeddata.build(
            type=request.kind.value,
            origin=request.origin,
            nonce=request.nonce,
            time=self._clock(),
            order_ref=order.ref,
            agent_version=self._version,
            user_visible_data=request.user_visible_data,
            user_non_visible_data=request.user_non_visible_data,
            user_visible_format=request.user_visible_format,
        )

    def _apply(self, ref: str, event: Event, **data: object) -> None:
        """Apply an event. Raises _OrderEnded when the order ended meanwhile (expired,
        cancelled): the flow stops and whatever it produced is dropped."""
        try:
            self._record(ref, event, **data)
        except (IllegalTransition, UnknownOrder) as exc:
            log.info("order %s: %s dropped (%s)", ref, event.value, exc)
            raise _OrderEnded from None


def _pin(credential: CredentialInfo, purpose: KeyPurpose) -> PinRef:
    pin = pin_for(credential.kind, purpose)
    assert pin is not None, "a credential with a PIN"
    return pin


class _OrderEnded(Exception):
    pass
