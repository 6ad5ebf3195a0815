"""The order life cycle: a pure state machine (phases × events in one table) and the
order book that holds at most one active order. No I/O, no clock: ``now`` is an input.

Each phase carries its wire pair (status, hintCode), so a collect response can never
contradict the state. An event the table does not allow raises IllegalTransition and
leaves the order untouched. Every operation first applies expiry, so an order past its
deadline is ``expiredTransaction`` whatever arrives afterwards — a signature that
finishes a moment too late is discarded, never delivered.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from agent.credentials import CredentialKind
from eidcore.personal_number import PersonalNumber
from eidcore.signeddata import OrderKind
from eidcore.status import Hint, PhaseWords, Status

__all__ = [
    "ABANDON_AFTER",
    "DEFAULT_TTL",
    "REPLACE_AFTER",
    "AlreadyInProgress",
    "Completion",
    "Event",
    "Hint",
    "IllegalTransition",
    "Order",
    "OrderBook",
    "OrderError",
    "OrderKind",
    "OrderRequest",
    "Phase",
    "Status",
    "UnknownOrder",
    "advance",
]

DEFAULT_TTL = dt.timedelta(seconds=180)
KEEP_FINISHED = dt.timedelta(seconds=180)  # a finished order stays collectable this long
MAX_FINISHED = 32  # and at most this many are kept: no unbounded growth under floods


# A reload takes longer than this; a page restarting faster is flooding (BRIDGE-SECURITY 6).
REPLACE_AFTER = dt.timedelta(seconds=5)
# A page collects every 2 s (docs/bridge-api.md); ten missed polls mean its tab is gone.
# Its order is then cancelled: else it blocked every other site's order (10054) until it
# expired, three minutes after the tab was closed.
ABANDON_AFTER = dt.timedelta(seconds=20)


class Phase(PhaseWords):
    """(status, hintCode) on the wire."""

    OUTSTANDING = (Status.PENDING, Hint.OUTSTANDING_TRANSACTION)
    NO_CLIENT = (Status.PENDING, Hint.NO_CLIENT)  # waiting for a card to be inserted
    STARTED = (Status.PENDING, Hint.STARTED)  # the dialog is open, nothing chosen yet
    USER_SIGN = (Status.PENDING, Hint.USER_SIGN)  # the person is typing a password/PIN
    COMPLETE = (Status.COMPLETE, None)
    EXPIRED = (Status.FAILED, Hint.EXPIRED_TRANSACTION)
    USER_CANCELLED = (Status.FAILED, Hint.USER_CANCEL)
    CANCELLED = (Status.FAILED, Hint.CANCELLED)
    CERTIFICATE_ERR = (Status.FAILED, Hint.CERTIFICATE_ERR)
    START_FAILED = (Status.FAILED, Hint.START_FAILED)


class Event(enum.Enum):
    WAIT_FOR_CARD = "waitForCard"  # nothing usable yet, but a card may come
    UI_OPENED = "uiOpened"
    CREDENTIAL_CHOSEN = "credentialChosen"
    WRONG_SECRET = "wrongSecret"  # noqa: S105 - an event name
    SIGNED = "signed"
    USER_CANCEL = "userCancel"
    RP_CANCEL = "rpCancel"
    EXPIRE = "expire"
    NO_CREDENTIAL = "noCredential"  # nothing usable: none, expired, locked, filtered out
    CREDENTIAL_BLOCKED = "credentialBlocked"  # locked by this very attempt
    START_FAILED = "startFailed"  # no UI, damaged credential, internal fault
    CARD_GONE = "cardGone"  # the card left before any PIN reached it: wait for it again
    PAGE_GONE = "pageGone"  # a bridge order's page stopped collecting (ABANDON_AFTER)


_PENDING = [p for p in Phase if p.pending]

TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (Phase.OUTSTANDING, Event.UI_OPENED): Phase.STARTED,
    (Phase.OUTSTANDING, Event.WAIT_FOR_CARD): Phase.NO_CLIENT,
    (Phase.NO_CLIENT, Event.UI_OPENED): Phase.STARTED,
    (Phase.OUTSTANDING, Event.NO_CREDENTIAL): Phase.CERTIFICATE_ERR,
    (Phase.STARTED, Event.CREDENTIAL_CHOSEN): Phase.USER_SIGN,
    (Phase.USER_SIGN, Event.WRONG_SECRET): Phase.USER_SIGN,
    (Phase.USER_SIGN, Event.SIGNED): Phase.COMPLETE,
    (Phase.USER_SIGN, Event.CREDENTIAL_BLOCKED): Phase.CERTIFICATE_ERR,
    (Phase.USER_SIGN, Event.CARD_GONE): Phase.NO_CLIENT,
    (Phase.STARTED, Event.CARD_GONE): Phase.NO_CLIENT,
    **{(p, Event.RP_CANCEL): Phase.CANCELLED for p in _PENDING},
    **{(p, Event.PAGE_GONE): Phase.CANCELLED for p in _PENDING},
    **{(p, Event.EXPIRE): Phase.EXPIRED for p in _PENDING},
    **{(p, Event.START_FAILED): Phase.START_FAILED for p in _PENDING},
    (Phase.STARTED, Event.USER_CANCEL): Phase.USER_CANCELLED,
    (Phase.USER_SIGN, Event.USER_CANCEL): Phase.USER_CANCELLED,
}


class OrderError(Exception):
    """Base of the order machine's errors."""


class IllegalTransition(OrderError):
    def __init__(self, phase: Phase, event: Event) -> None:
        super().__init__(f"{event.value} is not allowed in {phase.name}")
        self.phase, self.event = phase, event


class AlreadyInProgress(OrderError):
    def __init__(self) -> None:
        super().__init__("another order is active")


class UnknownOrder(OrderError):
    def __init__(self) -> None:
        super().__init__("no such order")


@dataclass(frozen=True)
class OrderRequest:
    """A validated request from a web page. ``origin`` is the browser's Origin header."""

    kind: OrderKind
    origin: str
    nonce: bytes
    personal_number: PersonalNumber | None = None
    token_kinds: frozenset[CredentialKind] | None = None
    user_visible_data: str | None = None
    user_visible_format: str = "plaintext"
    user_non_visible_data: bytes | None = None
    # An order an order relay holds (the second door): ``origin`` is then the relay's,
    # ``party`` the requesting party's identifier there and ``party_name`` its name as
    # the relay registered it (shown beside the relay's domain, never instead of it).
    party: str | None = None
    party_name: str | None = None
    order_ref: str | None = None  # a relay order's ref there (what its website collects)
    call_initiator: str | None = None  # a phone order: "user" called the party, or "RP"
    pin_pad: bool = False  # only a credential whose PIN is typed on a reader's pad (class2)


@dataclass(frozen=True)
class Completion:
    """What a complete order hands its door. A bridge order's evidence is signedData v2
    with a detached signature (docs/signed-data.md); a relay order's is one XML signature
    document in BankID's shape (``eidcore.xmlsig``: ``xml``), which holds the chain."""

    personal_number: str
    name: str
    given_name: str
    surname: str
    token_kind: CredentialKind
    certificate_chain: tuple[bytes, ...]
    signed_data: bytes = b""
    signature: bytes = b""  # over signed_data, or the XML's signature value
    algorithm: str = ""
    xml: bytes | None = None

    def wire(self) -> dict[str, object]:
        """``completionData`` as the bridge's collect gives it; for a relay order, what
        the agent posts (the relay names the person from the certificate it verifies)."""

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode("ascii")

        if self.xml is not None:
            return {"signature": b64(self.xml)}
        return {
            "user": {
                "personalNumber": self.personal_number,
                "name": self.name,
                "givenName": self.given_name,
                "surname": self.surname,
            },
            "token": {"kind": self.token_kind.value},
            "signedData": b64(self.signed_data),
            "signature": b64(self.signature),
            "algorithm": self.algorithm,
            "certificateChain": [b64(der) for der in self.certificate_chain],
        }


@dataclass(frozen=True)
class Order:
    ref: str
    request: OrderRequest
    phase: Phase
    created: dt.datetime
    deadline: dt.datetime
    finished: dt.datetime | None = None
    tries_left: int | None = None
    completion: Completion | None = None
    detail: str = field(default="", compare=False)  # for the log only, never the wire
    # when the page last asked about it (start, collect): a bridge order only; a relay
    # order's liveness is the relay's
    seen: dt.datetime | None = None

    def page_gone(self, now: dt.datetime) -> bool:
        """A pending bridge order whose page has not collected for ABANDON_AFTER."""
        return self.phase.pending and self.seen is not None and now - self.seen > ABANDON_AFTER


def advance(order: Order, event: Event, now: dt.datetime, **data: Any) -> Order:
    """The order after ``event`` at ``now``; expiry first.

    ``data``: ``tries_left`` with WRONG_SECRET, ``completion`` with SIGNED, ``detail``
    with any failure.

    Raises:
        IllegalTransition: the event is not allowed in the (possibly just expired) phase.
    """
    order = _expire_if_due(order, now)
    if event is Event.EXPIRE and order.phase is Phase.EXPIRED:
        return order
    target = TRANSITIONS.get((order.phase, event))
    if target is None:
        raise IllegalTransition(order.phase, event)
    if event is Event.SIGNED and not isinstance(data.get("completion"), Completion):
        raise TypeError("SIGNED needs a completion")
    return replace(
        order,
        phase=target,
        finished=None if target.pending else now,
        tries_left=data.get("tries_left", order.tries_left),
        completion=data.get("completion"),
        detail=data.get("detail", order.detail),
    )


def _expire_if_due(order: Order, now: dt.datetime) -> Order:
    if order.phase.pending and now >= order.deadline:
        return replace(order, phase=Phase.EXPIRED, finished=order.deadline)
    return order


class OrderBook:
    """At most one pending order; finished ones stay collectable for a while, bounded."""

    def __init__(self, ttl: dt.timedelta = DEFAULT_TTL) -> None:
        if ttl <= dt.timedelta(0):
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self._orders: OrderedDict[str, Order] = OrderedDict()
        self._last_try: dt.datetime | None = None  # the active order's site's latest start

    def __len__(self) -> int:
        return len(self._orders)

    def active(self, now: dt.datetime) -> Order | None:
        self._sweep(now)
        return next((o for o in self._orders.values() if o.phase.pending), None)

    def replaced_by(self, request: OrderRequest, now: dt.datetime) -> Order | None:
        """The pending order ``request`` replaces: one from the same origin (its tab was
        closed or reloaded mid-order; making it wait out the order's life would block
        the site for minutes). Another origin's order is never replaced. Nor is one whose
        site has not been quiet for REPLACE_AFTER — since the order began and since the
        site's last try: a page that keeps starting is flooding, and gets one dialog, not
        one every few seconds. Records this try."""
        active = self.active(now)
        if active is None or active.request.origin != request.origin:
            return None
        tried = self._last_try
        quiet_since = tried if tried is not None and tried >= active.created else active.created
        self._last_try = now
        return active if now - quiet_since >= REPLACE_AFTER else None

    def tried(self, origin: str, now: dt.datetime) -> None:
        """A start from ``origin`` was refused before it reached the book (rate-limited):
        it still counts as a try, so a site whose flood the limiter thins out does not
        look quiet and replace its own order (it did, now and then, in the 10 s flood)."""
        active = self.active(now)
        if active is not None and active.request.origin == origin:
            self._last_try = now

    def start(self, request: OrderRequest, ref: str, now: dt.datetime) -> Order:
        """Raises: AlreadyInProgress (end a replaced order first: ``replaced_by``)."""
        if self.active(now) is not None:
            raise AlreadyInProgress()
        if ref in self._orders:
            raise RuntimeError("order reference reused")  # the generator is broken
        seen = now if request.party is None else None  # a page polls only at the bridge
        order = Order(ref, request, Phase.OUTSTANDING, now, now + self.ttl, seen=seen)
        self._orders[ref] = order
        return order

    def seen(self, ref: str, now: dt.datetime) -> Order:
        """The page asked about the order (just read with ``get``: no second sweep).
        Raises: UnknownOrder."""
        order = self._orders.get(ref)
        if order is None:
            raise UnknownOrder()
        if order.seen is not None and order.phase.pending:
            order = replace(order, seen=now)
            self._orders[ref] = order
        return order

    def abandoned(self, now: dt.datetime) -> Order | None:
        """The active order, if its page has gone (``Order.page_gone``)."""
        active = self.active(now)
        return active if active is not None and active.page_gone(now) else None

    def get(self, ref: str, now: dt.datetime) -> Order:
        """Raises: UnknownOrder."""
        self._sweep(now)
        try:
            return self._orders[ref]
        except KeyError:
            raise UnknownOrder() from None

    def apply(self, ref: str, event: Event, now: dt.datetime, **data: Any) -> Order:
        """Raises: UnknownOrder, IllegalTransition (the order is then unchanged)."""
        order = advance(self.get(ref, now), event, now, **data)
        self._orders[ref] = order
        return order

    def _sweep(self, now: dt.datetime) -> None:
        for ref, order in list(self._orders.items()):
            current = _expire_if_due(order, now)
            if current is not order:
                self._orders[ref] = current
            if current.finished is not None and now - current.finished > KEEP_FINISHED:
                del self._orders[ref]
        finished = [r for r, o in self._orders.items() if not o.phase.pending]
        for ref in finished[: max(0, len(finished) - MAX_FINISHED)]:
            del self._orders[ref]
