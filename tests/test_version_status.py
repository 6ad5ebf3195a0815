"""Version status (accepted / phase-out / blocked) and stale metadata: the pure machine
with a clock, the updater's driver against a real repository on loopback that goes away
(time still a clock, never a sleep), and an installed agent whose version is blocked."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from agent.notices import Notice
from agent.updater.install import Layout
from agent.updater.policy import (
    Applied,
    Checked,
    CheckFailed,
    Notify,
    Policy,
    PolicyError,
    StateName,
    UpdaterState,
    refusal,
    state_name,
    step,
)
from agent.updater.service import UpdaterService, state_file
from eidcore.messages import MessageCode
from tests.conftest import ANNA, FAST_KDF, MakeToken
from tests.update_kit import Repo, info, install, installed_agent, repository, wait_for

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
V1, V11, V12 = Version("1.0.0"), Version("1.1.0"), Version("1.2.0")
DAY = dt.timedelta(days=1)


def _policy(*rules: dict[str, str], **kw: object) -> Policy:
    return Policy.from_custom({"versionStatus": list(rules), **kw})


def _codes(effects: list) -> list[MessageCode]:  # type: ignore[type-arg]
    return [e.code for e in effects if isinstance(e, Notify)]


def test_a_blocked_version_refuses_orders_says_so_at_every_check_until_updated() -> None:
    policy = _policy({"versions": "<1.1.0", "status": "blocked"})
    s, fx = step(UpdaterState(), Checked(T0, V1, V11, policy, 0.5))
    assert _codes(fx) == [MessageCode.VERSION_BLOCKED]
    assert refusal(s, T0) is MessageCode.VERSION_BLOCKED
    assert state_name(s, T0) is StateName.BLOCKED
    s, fx = step(s, Checked(T0 + DAY, V1, V11, policy, 0.5))
    assert _codes(fx) == [MessageCode.VERSION_BLOCKED]  # not a hint one may postpone
    s, _ = step(_applying(s), Applied(T0 + DAY, V11, 0.5))
    s, fx = step(s, Checked(T0 + DAY, V11, V11, policy, 0.5))
    assert fx == [] and refusal(s, T0 + DAY) is None


def _applying(state: UpdaterState) -> UpdaterState:
    from dataclasses import replace

    from agent.updater.policy import Phase

    return replace(state, phase=Phase.APPLYING)


def test_the_first_matching_rule_wins_and_unmatched_versions_are_accepted() -> None:
    policy = _policy(
        {"versions": "==1.0.0", "status": "accepted"}, {"versions": "<1.2.0", "status": "blocked"}
    )
    assert (
        policy.status_of(V1) is not None
        and refusal(step(UpdaterState(), Checked(T0, V1, V12, policy, 0.5))[0], T0) is None
    )
    assert refusal(step(UpdaterState(), Checked(T0, V11, V12, policy, 0.5))[0], T0) is (
        MessageCode.VERSION_BLOCKED
    )
    assert policy.status_of(V12) is None


def test_a_phase_out_says_until_when_and_blocks_from_the_day_after() -> None:
    policy = _policy({"versions": "<1.1.0", "status": "phaseOut", "until": "2026-12-15"})
    s, fx = step(UpdaterState(), Checked(T0, V1, V11, policy, 0.5))
    [notice] = fx
    assert isinstance(notice, Notify) and notice.code is MessageCode.VERSION_PHASE_OUT
    assert dict(notice.params) == {"date": "2026-12-15"}
    last_minute = dt.datetime(2026, 12, 15, 23, 59, tzinfo=dt.UTC)
    assert refusal(s, last_minute) is None and state_name(s, last_minute) is StateName.PHASE_OUT
    ended = dt.datetime(2026, 12, 16, 0, 0, tzinfo=dt.UTC)
    assert refusal(s, ended) is MessageCode.VERSION_BLOCKED  # no check needed for that
    assert state_name(s, ended) is StateName.BLOCKED
    s, fx = step(s, Checked(T0 + DAY, V1, V11, policy, 0.5))
    assert fx == []  # said once; the person may postpone until the date
    s, fx = step(s, Checked(ended, V1, V11, policy, 0.5))
    assert _codes(fx) == [MessageCode.VERSION_BLOCKED]  # now as blocked, at every check
    # the notice renders with its date in both languages
    from eidcore.messages import Language, catalogue

    for language in Language:
        assert "2026-12-15" in catalogue().render(notice.code, language, **dict(notice.params)).body


def _failed(state: UpdaterState, now: dt.datetime, reason: str = "unreachable") -> tuple:  # type: ignore[type-arg]
    return step(state, CheckFailed(now, 0.5, reason=reason))


def test_metadata_unchecked_for_too_long_blocks_and_recovers_at_the_next_good_check() -> None:
    s, _ = step(UpdaterState(), Checked(T0, V1, None, _policy(maxOfflineDays=30), 0.5))
    for days in (1, 10, 29, 30):
        s, fx = _failed(s, T0 + days * DAY)
        assert MessageCode.UPDATE_OFFLINE_TOO_LONG not in _codes(fx)
        assert refusal(s, T0 + days * DAY) is None
    past = T0 + 30 * DAY + dt.timedelta(minutes=1)
    assert refusal(s, past) is MessageCode.UPDATE_OFFLINE_TOO_LONG  # the last check failed
    assert state_name(s, past) is StateName.OFFLINE_TOO_LONG
    s, fx = _failed(s, past)
    assert _codes(fx) == [MessageCode.UPDATE_OFFLINE_TOO_LONG]  # said when it begins
    s, fx = _failed(s, past + DAY)
    assert fx == []  # once
    s, fx = step(s, Checked(past + 2 * DAY, V1, None, _policy(), 0.5))
    assert refusal(s, past + 2 * DAY) is None and fx == []


def test_a_long_shut_down_agent_is_not_refused_before_its_first_check() -> None:
    s, _ = step(UpdaterState(), Checked(T0, V1, None, _policy(), 0.5))
    assert refusal(s, T0 + 90 * DAY) is None  # it checks at once on start
    s, fx = _failed(s, T0 + 90 * DAY, reason="expired")
    assert _codes(fx) == [MessageCode.UPDATE_METADATA_TOO_OLD]  # the metadata, not the network
    assert refusal(s, T0 + 90 * DAY) is MessageCode.UPDATE_METADATA_TOO_OLD


def test_an_agent_that_never_reached_its_repository_counts_from_its_first_failure() -> None:
    s, _ = _failed(UpdaterState(), T0)
    s, _ = _failed(s, T0 + 29 * DAY)
    assert refusal(s, T0 + 29 * DAY) is None
    s, fx = _failed(s, T0 + 31 * DAY)
    assert _codes(fx) == [MessageCode.UPDATE_OFFLINE_TOO_LONG]


def test_the_state_keeps_what_refusal_needs_across_restarts() -> None:
    policy = _policy(
        {"versions": "<1.1.0", "status": "phaseOut", "until": "2026-12-15"}, maxOfflineDays=5
    )
    s, _ = step(UpdaterState(), Checked(T0, V1, V11, policy, 0.5))
    s, _ = _failed(s, T0 + DAY, reason="invalid")
    again = UpdaterState.from_json(s.to_json())
    assert again == s
    assert refusal(again, T0 + 7 * DAY) is MessageCode.UPDATE_METADATA_TOO_OLD


@pytest.mark.parametrize(
    "custom",
    [
        {"versionStatus": "blocked"},
        {"versionStatus": [{"versions": "<1.0", "status": "gone"}]},
        {"versionStatus": [{"versions": "not a range", "status": "blocked"}]},
        {"versionStatus": [{"versions": "", "status": "blocked"}]},
        {"versionStatus": [{"versions": "<1.0", "status": "phaseOut"}]},
        {"versionStatus": [{"versions": "<1.0", "status": "blocked", "until": "2027-01-01"}]},
        {"versionStatus": [{"versions": "<1.0", "status": "phaseOut", "until": "2027-02-30"}]},
        {"versionStatus": [{"versions": "<1.0", "status": "phaseOut", "until": "9" * 5000}]},
        {"versionStatus": [{"versions": "<1.0", "status": "blocked", "why": "x"}]},
        {"versionStatus": [{"versions": "<1.0", "status": "blocked"}] * 51},
        {"versionStatus": [{"versions": "<" + "9" * 5000, "status": "blocked"}]},
        {"maxOfflineDays": 0},
        {"maxOfflineDays": 366},
        {"maxOfflineDays": True},
        {"maxOfflineDays": 10**5000},
    ],
)
def test_bad_version_rules_are_refused(custom: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(PolicyError):
        Policy.from_custom(custom)


# -- the driver against a real repository, with a clock ------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        yield r


def _service(data_dir: Path, now: list[dt.datetime], told: list[Notice]) -> UpdaterService:
    layout = Layout.in_data_dir(data_dir)
    source = layout.source()
    assert source is not None

    async def notify(notice: Notice) -> None:
        told.append(notice)

    async def hand_over(version: Version) -> bool:
        raise AssertionError("nothing is installed in these tests")

    return UpdaterService(
        layout=layout,
        source=source,
        state_file=state_file(data_dir),
        current=V1,
        clock=lambda: now[0],
        jitter=lambda: 0.5,
        notify=notify,
        order_active=lambda: False,
        hand_over=hand_over,
    )


@pytest.mark.slow
def test_a_repository_that_goes_away_for_a_month_blocks_and_its_return_unblocks(
    repo: Repo, tmp_path: Path
) -> None:
    repo.publish("1.0.0", maxOfflineDays=30)
    data_dir = tmp_path / "data"
    install(repo, data_dir)
    now, told = [dt.datetime.now(dt.UTC)], list[Notice]()
    service = _service(data_dir, now, told)
    asyncio.run(service.check(by_person=False, tick=False))
    assert service.refusal() is None and service.state_name() is StateName.UP_TO_DATE
    repo.server.down = True
    now[0] += dt.timedelta(days=2)
    asyncio.run(service.check(by_person=False, tick=False))
    assert service.refusal() is None  # a failed check, but within the month
    now[0] += dt.timedelta(days=29)
    asyncio.run(service.check(by_person=False, tick=False))
    assert service.refusal() is MessageCode.UPDATE_OFFLINE_TOO_LONG
    assert service.state_name() is StateName.OFFLINE_TOO_LONG
    assert [n.code for n in told][-1] is MessageCode.UPDATE_OFFLINE_TOO_LONG
    repo.server.down = False
    now[0] += dt.timedelta(hours=1)
    asyncio.run(service.check(by_person=False, tick=False))
    assert service.refusal() is None  # recovered by itself, at the first good check


@pytest.mark.slow
def test_a_blocked_version_is_refused_at_the_bridge_and_the_person_is_told(
    repo: Repo, tmp_path: Path, make_token: MakeToken
) -> None:
    from agent.credentials import CredentialStore

    data_dir = tmp_path / "data"
    CredentialStore(data_dir, kdf=FAST_KDF).add(make_token(ANNA))
    repo.publish("1.0.0")
    install(repo, data_dir)
    repo.publish("1.1.0", versionStatus=[{"versions": "<1.1.0", "status": "blocked"}])
    with installed_agent(data_dir) as agent:
        agent.ready()
        wait_for(lambda: info(agent)["updateRequired"], what="updateRequired")
        assert info(agent)["updateState"] == "blocked"
        status, body = agent.request("POST", "/v1/auth", {"nonce": "A" * 44})
        assert (status, body["errorCode"]) == (503, "updateRequired")
        assert "Traceback" not in str(body)
        wait_for(lambda: agent.stdout.count("[10092]") >= 2, what="the refusal said")
        assert "cannot be used to identify or sign" in agent.stdout
