"""The relay's order machine, row by row: every transition its table allows, every one it
does not, and time, which ends an order without any event."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from eidcore.signeddata import OrderKind
from eidcore.status import Hint, Status
from relay.rules import (
    KEEP_FINISHED,
    ORDER_TTL,
    START_WITHIN,
    TRANSITIONS,
    Event,
    IllegalTransition,
    Phase,
    RelayOrder,
    advance,
    current,
    token_hash,
    tokens_match,
)

T0 = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
SOON = T0 + dt.timedelta(seconds=5)  # before any deadline

# The table as a reader should understand it, written out by hand: the test fails when a
# row is added to or dropped from the machine without this list changing too.
PENDING = [Phase.OUTSTANDING, Phase.STARTED, Phase.USER_SIGN]
WITH_AGENT = [Phase.STARTED, Phase.USER_SIGN]
EXPECTED: dict[tuple[Phase, Event], Phase] = {
    (Phase.OUTSTANDING, Event.FETCHED): Phase.STARTED,
    (Phase.OUTSTANDING, Event.NOT_STARTED): Phase.START_FAILED,
    (Phase.OUTSTANDING, Event.NOT_SUPPORTED): Phase.NOT_SUPPORTED,
    **{(p, Event.USER_SIGN): Phase.USER_SIGN for p in WITH_AGENT},
    **{(p, Event.COMPLETED): Phase.COMPLETE for p in WITH_AGENT},
    **{(p, Event.USER_CANCEL): Phase.USER_CANCELLED for p in WITH_AGENT},
    **{(p, Event.NO_CREDENTIAL): Phase.CERTIFICATE_ERR for p in WITH_AGENT},
    **{(p, Event.AGENT_FAILED): Phase.START_FAILED for p in WITH_AGENT},
    **{(p, Event.AGENT_OUTDATED): Phase.UPDATE_REQUIRED for p in WITH_AGENT},
    **{(p, Event.RP_CANCEL): Phase.CANCELLED for p in PENDING},
    **{(p, Event.EXPIRE): Phase.EXPIRED for p in PENDING},
}


def _order(phase: Phase = Phase.OUTSTANDING) -> RelayOrder:
    return RelayOrder(
        ref="order-1",
        party="shop",
        kind=OrderKind.AUTH,
        nonce=b"\x01" * 32,
        token_hash=token_hash("autostart"),
        created=T0,
        end_user_ip="203.0.113.5",
        phase=phase,
    )


def test_the_table_is_the_one_written_here() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("start", "event"), sorted(EXPECTED, key=str))
def test_each_allowed_transition(start: Phase, event: Event) -> None:
    after = advance(_order(start), event, SOON)
    assert after.phase is EXPECTED[start, event]
    # an order that ends says when; one that goes on has not finished
    assert after.finished == (None if after.phase.pending else SOON)
    assert (after.ref, after.nonce, after.created) == ("order-1", b"\x01" * 32, T0)


@pytest.mark.parametrize(
    ("start", "event"),
    [pair for pair in itertools.product(Phase, Event) if pair not in EXPECTED],
    ids=str,
)
def test_each_other_pair_is_refused(start: Phase, event: Event) -> None:
    with pytest.raises(IllegalTransition) as raised:
        advance(_order(start), event, SOON)
    assert (raised.value.phase, raised.value.event) == (start, event)
    assert event.value in str(raised.value) and start.name in str(raised.value)


def test_a_finished_order_takes_no_event_at_all() -> None:
    for phase in Phase:
        if phase.pending:
            continue
        for event in Event:
            with pytest.raises(IllegalTransition):
                advance(_order(phase), event, SOON)


def test_phases_are_the_wire_words() -> None:
    assert (Phase.OUTSTANDING.status, Phase.OUTSTANDING.hint) == (
        Status.PENDING,
        Hint.OUTSTANDING_TRANSACTION,
    )
    assert (Phase.COMPLETE.status, Phase.COMPLETE.hint) == (Status.COMPLETE, None)
    assert all(
        p.status is Status.FAILED for p in Phase if not p.pending and p is not Phase.COMPLETE
    )
    assert {p for p in Phase if p.pending} == set(PENDING)


def test_a_token_not_fetched_in_time_fails_the_start() -> None:
    order = _order()
    just_before = T0 + START_WITHIN - dt.timedelta(microseconds=1)
    assert current(order, just_before) is order
    late = current(order, T0 + START_WITHIN)
    assert (late.phase, late.finished) == (Phase.START_FAILED, T0 + START_WITHIN)
    # and the fetch that comes too late is refused: the order has ended
    with pytest.raises(IllegalTransition):
        advance(order, Event.FETCHED, T0 + START_WITHIN)


def test_an_order_with_the_agent_expires_at_its_deadline() -> None:
    order = advance(_order(), Event.FETCHED, SOON)
    assert current(order, T0 + ORDER_TTL - dt.timedelta(microseconds=1)).phase is Phase.STARTED
    expired = current(order, T0 + ORDER_TTL)
    assert (expired.phase, expired.finished) == (Phase.EXPIRED, T0 + ORDER_TTL)
    # the agent's late result does not complete it
    with pytest.raises(IllegalTransition):
        advance(order, Event.COMPLETED, T0 + ORDER_TTL + dt.timedelta(seconds=1))


def test_time_does_not_change_a_finished_order() -> None:
    done = advance(advance(_order(), Event.FETCHED, SOON), Event.COMPLETED, SOON)
    assert current(done, T0 + KEEP_FINISHED * 10) is done
    assert KEEP_FINISHED > ORDER_TTL > START_WITHIN


def test_tokens_are_compared_by_hash() -> None:
    stored = token_hash("autostart")
    assert tokens_match("autostart", stored)
    assert not tokens_match("autostarT", stored)
    assert not tokens_match("autostart", None)  # used or ended: nothing matches
    # hostile text hashes like any other (no exception, no match)
    assert not tokens_match("\ud800" + "x" * 10_000, stored)
    assert len(token_hash("å")) == 64
