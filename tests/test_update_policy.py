"""The update policy machine: each path of UPDATE-POLICY.md, and invariants under random
event sequences."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from agent.updater.policy import (
    OUTCOME_MESSAGES,
    Applied,
    ApplyFailed,
    ApplyOutcome,
    Checked,
    CheckFailed,
    IllegalEvent,
    Notify,
    Phase,
    Policy,
    PolicyError,
    Standing,
    StartApply,
    StartRequested,
    Tick,
    UpdaterState,
    apply_outcome,
    due,
    refusal,
    standing,
    step,
)
from eidcore.messages import MessageCode

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
V1, V11, V2 = Version("1.0.0"), Version("1.1.0"), Version("2.0.0")
URL = "https://install.example/eid-agent"


def _policy(**kw: object) -> Policy:
    return Policy.from_custom({"manualUrl": URL, **kw})


def _codes(effects: list) -> list[MessageCode]:  # type: ignore[type-arg]
    return [e.code for e in effects if isinstance(e, Notify)]


def test_standing() -> None:
    p = _policy(requiredMinimum="1.1.0", recommended="2.0.0")
    assert standing(V1, V2, p) is Standing.REQUIRED
    assert standing(V11, V2, p) is Standing.RECOMMENDED
    assert standing(V2, V2, p) is Standing.UP_TO_DATE
    assert standing(V11, V2, _policy()) is Standing.NEWER_AVAILABLE


def test_required_refuses_orders_until_updated() -> None:
    s, fx = step(UpdaterState(), Checked(T0, V1, V11, _policy(requiredMinimum="1.1.0"), 0.5))
    assert _codes(fx) == [MessageCode.UPDATE_REQUIRED]
    assert refusal(s, T0) is not None and s.phase is Phase.AVAILABLE
    s, fx = step(s, StartRequested(T0, order_active=False))
    assert fx == [StartApply("1.1.0")]
    s, fx = step(s, Applied(T0, V11, 0.5))
    assert fx == [] and refusal(s, T0) is None and s.phase is Phase.IDLE


def test_recommended_may_be_postponed_and_is_not_repeated() -> None:
    s, fx = step(UpdaterState(), Checked(T0, V1, V11, _policy(recommended="1.1.0"), 0.5))
    assert _codes(fx) == [MessageCode.UPDATE_RECOMMENDED] and refusal(s, T0) is None
    s, fx = step(s, Checked(T0 + dt.timedelta(hours=7), V1, V11, _policy(recommended="1.1.0"), 0.5))
    assert fx == []  # told once; the person postponed
    s, fx = step(s, Checked(T0, V1, V11, _policy(recommended="1.1.0"), 0.5, by_person=True))
    assert _codes(fx) == [MessageCode.UPDATE_RECOMMENDED]


def test_newer_available_is_a_quiet_hint_and_up_to_date_answers_a_person() -> None:
    _, fx = step(UpdaterState(), Checked(T0, V1, V11, _policy(), 0.5))
    assert _codes(fx) == [MessageCode.NEWER_VERSION_AVAILABLE]
    _, fx = step(UpdaterState(), Checked(T0, V11, None, _policy(), 0.5))
    assert fx == []
    _, fx = step(UpdaterState(), Checked(T0, V11, None, _policy(), 0.5, by_person=True))
    assert _codes(fx) == [MessageCode.NO_UPDATE_NEEDED]


def test_automatic_waits_for_no_active_order() -> None:
    s, fx = step(UpdaterState(), Checked(T0, V1, V11, _policy(automatic=True), 0.5))
    assert _codes(fx) == [MessageCode.AUTOMATIC_UPDATE]
    s, fx = step(s, Tick(T0, order_active=True))
    assert fx == [] and s.phase is Phase.AVAILABLE  # never during an order
    s, fx = step(s, Tick(T0, order_active=False))
    assert fx == [StartApply("1.1.0")] and s.phase is Phase.APPLYING


def test_failures_retry_with_back_off_then_fall_back_to_manual() -> None:
    s, _ = step(
        UpdaterState(), Checked(T0, V1, V11, _policy(automatic=True, failureThreshold=3), 0.5)
    )
    now = T0
    for attempt in (1, 2):
        s, fx = step(s, Tick(now, order_active=False))
        assert fx == [StartApply("1.1.0")]
        s, fx = step(s, ApplyFailed(now, automatic=True))
        assert _codes(fx) == [MessageCode.UPDATE_FAILED_WILL_RETRY]
        assert s.retry_apply_at == now + dt.timedelta(minutes=30) * 2 ** (attempt - 1)
        assert step(s, Tick(now, order_active=False))[1] == []  # not before the back-off
        now = s.retry_apply_at
    s, _ = step(s, Tick(now, order_active=False))
    s, fx = step(s, ApplyFailed(now, automatic=True))
    assert fx == [Notify(MessageCode.UPDATE_FAILED_REPEATEDLY, URL)] and s.phase is Phase.MANUAL
    # the counter survives a restart
    assert UpdaterState.from_json(s.to_json()) == s


def test_a_person_started_update_that_fails_advises_manual() -> None:
    s, _ = step(UpdaterState(), Checked(T0, V1, V11, _policy(recommended="1.1.0"), 0.5))
    s, _ = step(s, StartRequested(T0, order_active=False))
    _, fx = step(s, ApplyFailed(T0, automatic=False))
    assert fx == [Notify(MessageCode.SELF_UPDATE_FAILED_MANUAL, URL)]


def test_failed_checks_back_off_and_say_so_once_at_the_threshold() -> None:
    s = UpdaterState()
    told = []
    for _ in range(5):
        s, fx = step(s, CheckFailed(T0, 0.5))
        told += _codes(fx)
    assert told == [MessageCode.UPDATE_UNREACHABLE_REPEATEDLY]
    assert s.next_check == T0 + dt.timedelta(minutes=80)  # 5 min doubled four times
    assert _codes(step(UpdaterState(), CheckFailed(T0, 0.5, by_person=True))[1]) == [
        MessageCode.COMMUNICATION_ERROR
    ]


def test_checks_are_spread_by_jitter() -> None:
    early = step(UpdaterState(), Checked(T0, V1, None, _policy(), 0.0))[0].next_check
    late = step(UpdaterState(), Checked(T0, V1, None, _policy(), 0.999))[0].next_check
    assert early is not None and late is not None
    # 6 h ± 20 %: from 4.8 h to 7.2 h after the check
    assert dt.timedelta(hours=2.35) < late - early < dt.timedelta(hours=2.45)
    assert due(UpdaterState(), T0)


BAD_POLICIES = [
    {"requiredMinimum": "not a version"},
    {"manualUrl": "javascript:alert(1)"},
    {"failureThreshold": 0},
    {"checkIntervalMinutes": 0},
    {"checkIntervalMinutes": 60.0},  # canonical JSON has no floats
    {"failureThreshold": True},
    {"automatic": "false"},
    {"requiredMinimum": 2},
]


@pytest.mark.parametrize("custom", BAD_POLICIES)
def test_bad_policies_are_refused(custom: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(PolicyError):
        Policy.from_custom(custom)


def test_damaged_state_starts_afresh() -> None:
    assert UpdaterState.from_json("{not json") == UpdaterState()


versions = st.sampled_from([Version("0.9"), V1, V11, V2])
policies = st.builds(
    lambda m, r, a, n: Policy(
        minimum=m, recommended=r, automatic=a, manual_url=URL, failure_threshold=n
    ),
    st.none() | versions,
    st.none() | versions,
    st.booleans(),
    st.integers(1, 5),
)
minutes = st.integers(0, 600).map(lambda m: dt.timedelta(minutes=m))
events = st.one_of(
    st.builds(
        lambda d, c, latest, p, j, b: Checked(T0 + d, c, latest, p, j, b),
        minutes,
        versions,
        st.none() | versions,
        policies,
        st.floats(0, 0.999),
        st.booleans(),
    ),
    st.builds(lambda d, j: CheckFailed(T0 + d, j), minutes, st.floats(0, 0.999)),
    st.builds(lambda d, a: Tick(T0 + d, a), minutes, st.booleans()),
    st.builds(lambda d, a: StartRequested(T0 + d, a), minutes, st.booleans()),
    st.builds(lambda d, v: Applied(T0 + d, v, 0.5), minutes, versions),
    st.builds(lambda d, a: ApplyFailed(T0 + d, a), minutes, st.booleans()),
)


@settings(max_examples=400)  # the default; 5000 were run once by hand
@given(st.lists(events, max_size=30))
def test_invariants_under_any_sequence(sequence: list) -> None:  # type: ignore[type-arg]
    s = UpdaterState()
    for event in sequence:
        try:
            s, effects = step(s, event)
        except IllegalEvent:
            assert isinstance(event, (Applied, ApplyFailed)) and s.phase is not Phase.APPLYING
            continue
        for effect in effects:
            if isinstance(effect, StartApply):
                assert not getattr(event, "order_active", False)  # never during an order
                assert s.phase is Phase.APPLYING and effect.version == s.target
        assert s.phase is not Phase.MANUAL or s.apply_failures >= s.threshold
        assert UpdaterState.from_json(s.to_json()) == s


def test_an_outcome_without_an_update_running_is_refused() -> None:
    idle, _ = step(UpdaterState(), Checked(T0, V1, None, _policy(automatic=True), 0.5))
    with pytest.raises(IllegalEvent):
        step(idle, ApplyFailed(T0, automatic=False))
    with pytest.raises(IllegalEvent):
        step(idle, Applied(T0, V11, 0.5))


def test_a_raised_threshold_lets_the_agent_try_again() -> None:
    s, _ = step(
        UpdaterState(), Checked(T0, V1, V11, _policy(automatic=True, failureThreshold=1), 0.5)
    )
    s, _ = step(s, Tick(T0, order_active=False))
    s, _ = step(s, ApplyFailed(T0, automatic=True))
    assert s.phase is Phase.MANUAL
    s, _ = step(s, Checked(T0, V1, V11, _policy(automatic=True, failureThreshold=3), 0.5))
    assert s.phase is Phase.AVAILABLE and s.apply_failures == 1


def test_the_outcome_of_update_now_is_read_from_the_state_before_and_after() -> None:
    s, _ = step(UpdaterState(), Checked(T0, V1, V11, _policy(), 0.5))
    s, _ = step(s, StartRequested(T0, order_active=False))
    failed, _ = step(s, ApplyFailed(T0, automatic=False))
    assert apply_outcome(s, failed, installed=False) is ApplyOutcome.FAILED
    assert apply_outcome(s, failed, installed=True) is ApplyOutcome.INSTALLED
    manual = replace(failed, phase=Phase.MANUAL)
    assert apply_outcome(failed, manual, installed=False) is ApplyOutcome.FAILED_REPEATEDLY
    assert apply_outcome(s, s, installed=False) is ApplyOutcome.NOT_YET
    current, _ = step(UpdaterState(), Checked(T0, V11, V11, _policy(), 0.5))
    assert apply_outcome(current, current, installed=False) is ApplyOutcome.UP_TO_DATE
    assert OUTCOME_MESSAGES[ApplyOutcome.FAILED_REPEATEDLY] is MessageCode.UPDATE_FAILED_REPEATEDLY
