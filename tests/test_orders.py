from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.credentials import CredentialKind
from agent.orders.machine import (
    ABANDON_AFTER,
    REPLACE_AFTER,
    TRANSITIONS,
    AlreadyInProgress,
    Completion,
    Event,
    Hint,
    IllegalTransition,
    Order,
    OrderBook,
    OrderKind,
    OrderRequest,
    Phase,
    Status,
    UnknownOrder,
    advance,
)

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
REQ = OrderRequest(OrderKind.AUTH, "https://bank.example", b"n" * 32)
DONE = Completion(
    "198112189876",
    "A B",
    "A",
    "B",
    CredentialKind.FILE,
    (b"cert",),
    signed_data=b"{}",
    signature=b"s" * 64,
    algorithm="ES256",
)


def _order(phase: Phase) -> Order:
    return Order("ref", REQ, phase, T0, T0 + dt.timedelta(seconds=180))


def _data(event: Event) -> dict[str, object]:
    return {"completion": DONE} if event is Event.SIGNED else {"tries_left": 3}


@pytest.mark.parametrize(("phase", "event"), sorted(TRANSITIONS, key=str))
def test_every_allowed_transition(phase: Phase, event: Event) -> None:
    after = advance(_order(phase), event, T0, **_data(event))
    assert after.phase is TRANSITIONS[(phase, event)]
    assert (after.finished is None) == after.phase.pending


@pytest.mark.parametrize(
    ("phase", "event"),
    [(p, e) for p in Phase for e in Event if (p, e) not in TRANSITIONS and e is not Event.EXPIRE]
    + [(p, Event.EXPIRE) for p in Phase if not p.pending and p is not Phase.EXPIRED],
)
def test_every_other_event_is_illegal_and_changes_nothing(phase: Phase, event: Event) -> None:
    order = _order(phase)
    with pytest.raises(IllegalTransition):
        advance(order, event, T0, **_data(event))
    assert order.phase is phase  # frozen: the caller's order is untouched


def test_wire_pairs() -> None:
    assert Phase.USER_SIGN.value == (Status.PENDING, Hint.USER_SIGN)
    assert Phase.COMPLETE.hint is None
    failed = {p.hint for p in Phase if p.status is Status.FAILED}
    assert failed == {
        Hint.EXPIRED_TRANSACTION,
        Hint.USER_CANCEL,
        Hint.CANCELLED,
        Hint.CERTIFICATE_ERR,
        Hint.START_FAILED,
    }


def test_expiry_wins_over_a_late_signature() -> None:
    order = _order(Phase.USER_SIGN)
    late = T0 + dt.timedelta(seconds=180)
    with pytest.raises(IllegalTransition):
        advance(order, Event.SIGNED, late, completion=DONE)
    assert advance(order, Event.EXPIRE, late).phase is Phase.EXPIRED


def test_signed_needs_a_completion() -> None:
    with pytest.raises(TypeError):
        advance(_order(Phase.USER_SIGN), Event.SIGNED, T0)


def test_wrong_secret_keeps_user_sign_and_records_tries() -> None:
    after = advance(_order(Phase.USER_SIGN), Event.WRONG_SECRET, T0, tries_left=2)
    assert after.phase is Phase.USER_SIGN and after.tries_left == 2


def test_book_allows_one_active_order() -> None:
    book = OrderBook()
    book.start(REQ, "a", T0)
    with pytest.raises(AlreadyInProgress):
        book.start(REQ, "b", T0)
    book.apply("a", Event.RP_CANCEL, T0)
    assert book.start(REQ, "b", T0).phase is Phase.OUTSTANDING
    assert book.get("a", T0).phase is Phase.CANCELLED


def test_book_expires_and_frees_the_slot() -> None:
    book = OrderBook(dt.timedelta(seconds=10))
    book.start(REQ, "a", T0)
    assert book.get("a", T0 + dt.timedelta(seconds=10)).phase is Phase.EXPIRED
    book.start(REQ, "b", T0 + dt.timedelta(seconds=10))


def test_book_forgets_finished_orders_and_stays_bounded() -> None:
    book = OrderBook()
    for i in range(100):
        book.start(REQ, f"r{i}", T0)
        book.apply(f"r{i}", Event.RP_CANCEL, T0)
    assert len(book) <= 33
    with pytest.raises(UnknownOrder):
        book.get("r0", T0)
    assert book.get("r99", T0).phase is Phase.CANCELLED
    with pytest.raises(UnknownOrder):
        book.get("r99", T0 + dt.timedelta(minutes=10))


@given(st.lists(st.tuples(st.sampled_from(list(Event)), st.integers(0, 100)), max_size=25))
def test_random_event_sequences_never_break_the_invariants(
    events: list[tuple[Event, int]],
) -> None:
    """Whatever arrives in whatever order: the phase only changes along the table, a
    finished order never changes again, and COMPLETE always carries its completion."""
    order, now = _order(Phase.OUTSTANDING), T0
    for event, seconds in events:
        now = now + dt.timedelta(seconds=seconds)
        before = order
        try:
            order = advance(order, event, now, **_data(event))
        except IllegalTransition:
            order = before
            continue
        if not before.phase.pending:
            assert order == before
        if order.phase is Phase.COMPLETE:
            assert order.completion is DONE
        if now >= before.deadline and before.phase.pending:
            assert order.phase is Phase.EXPIRED


def test_only_the_same_sites_older_order_is_replaced() -> None:
    book = OrderBook(dt.timedelta(minutes=3))
    book.start(REQ, "a", T0)
    other = OrderRequest(OrderKind.AUTH, "https://other.example", b"n" * 32)
    assert book.replaced_by(other, T0 + REPLACE_AFTER) is None  # another site waits
    assert book.replaced_by(REQ, T0 + REPLACE_AFTER / 2) is None  # too soon: a flood
    assert book.replaced_by(REQ, T0 + REPLACE_AFTER) is None  # not quiet since that try
    replaced = book.replaced_by(REQ, T0 + REPLACE_AFTER * 2)
    assert replaced is not None and replaced.ref == "a"


def test_a_site_that_keeps_starting_gets_one_dialog_not_one_every_few_seconds() -> None:
    book = OrderBook(dt.timedelta(minutes=3))
    book.start(REQ, "a", T0)
    tries = [T0 + dt.timedelta(milliseconds=200 * n) for n in range(1, 51)]  # 10 s, 5/s
    assert all(book.replaced_by(REQ, t) is None for t in tries)
    assert book.replaced_by(REQ, tries[-1] + REPLACE_AFTER / 2) is None  # still not quiet
    quiet = tries[-1] + REPLACE_AFTER / 2 + REPLACE_AFTER
    replaced = book.replaced_by(REQ, quiet)  # quiet for REPLACE_AFTER: a reload
    assert replaced is not None and replaced.ref == "a"


def test_a_bridge_order_whose_page_stopped_asking_is_abandoned() -> None:
    book = OrderBook()
    book.start(REQ, "a", T0)
    assert book.abandoned(T0 + ABANDON_AFTER) is None  # exactly the limit: not yet
    book.seen("a", T0 + ABANDON_AFTER)  # a collect
    assert book.abandoned(T0 + 2 * ABANDON_AFTER) is None
    later = T0 + 2 * ABANDON_AFTER + dt.timedelta(seconds=1)
    gone = book.abandoned(later)
    assert gone is not None and gone.ref == "a"
    assert book.apply("a", Event.PAGE_GONE, later).phase is Phase.CANCELLED
    assert book.abandoned(later) is None  # over: nothing to abandon


def test_a_relay_order_has_no_page_to_lose() -> None:
    book = OrderBook()
    relay = OrderRequest(
        OrderKind.AUTH, "https://relay.example", b"n" * 32, party="shop", party_name="Shop"
    )
    book.start(relay, "r", T0)
    assert book.seen("r", T0).seen is None
    assert book.abandoned(T0 + dt.timedelta(seconds=170)) is None


def test_a_try_refused_at_the_door_keeps_a_flooding_site_from_replacing_its_order() -> None:
    """The bridge's rate limiter thins a flood out; the tries it refuses still count, or
    the site looked quiet for REPLACE_AFTER and replaced its own order (two orders, now
    and then, in the 10 s flood benchmark)."""
    book = OrderBook()
    book.start(REQ, "a", T0)
    for second in range(1, 11):  # refused at the door every second
        book.tried(REQ.origin, T0 + dt.timedelta(seconds=second))
    assert book.replaced_by(REQ, T0 + dt.timedelta(seconds=11)) is None  # 1 s since a try
    assert book.replaced_by(REQ, T0 + dt.timedelta(seconds=15)) is None  # 4 s since 11
    book.tried("https://other.example", T0 + dt.timedelta(seconds=18))  # not its order
    assert book.replaced_by(REQ, T0 + dt.timedelta(seconds=20)) is not None  # 5 s quiet
