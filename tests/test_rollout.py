"""Staged roll-out: 200 agents' draws over a simulated fortnight (a clock, no sleeps),
pause, resume and halt; then the agent's own TUF seam against a real repository that the
real ``eid-release`` stages, halts, and overrides with a required update."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from agent.updater import remote
from agent.updater.errors import PolicyError
from agent.updater.rollout import Rollout, offered
from agent.updater.service import rollout_draw
from tests.agent_process import BIN
from tests.update_kit import Repo, install, repository

T0 = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
AGENTS = 200


def _shares(rollout: Rollout, draws: list[float], days: int) -> list[float]:
    return [sum(offered(d, rollout, T0 + n * DAY) for d in draws) / len(draws) for n in range(days)]


def test_a_seven_day_roll_out_over_a_fortnight_reaches_the_shares_it_promises() -> None:
    """Each day's count of 200 agents is a binomial draw with p = the promised share
    (n/7 on day n−1): the test allows 4 standard deviations, sqrt(p(1−p)/200) ≤ 3.5 %,
    which a fair draw misses about once in 16,000 days."""
    rng = random.Random(20261201)  # a fixed seed: the same draws every run
    draws = [rng.random() for _ in range(AGENTS)]
    staged = Rollout(T0, days=7)
    seen = _shares(staged, draws, 14)
    for day, share in enumerate(seen):
        p = min(1.0, (day + 1) / 7)
        sd = math.sqrt(p * (1 - p) / AGENTS)
        assert abs(share - p) <= 4 * sd + 1e-9, (day, share, p)
    assert seen[6:] == [1.0] * 8  # everyone from day 7 on
    # an agent offered the release once is offered it on every later day
    for draw in draws:
        days = [offered(draw, staged, T0 + n * DAY) for n in range(14)]
        assert days == sorted(days)
    assert not offered(0.0, staged, T0 - dt.timedelta(seconds=1))  # not before it starts


def test_pause_holds_the_share_resume_carries_on_and_halt_offers_it_to_nobody_new() -> None:
    rng = random.Random(7)
    draws = [rng.random() for _ in range(AGENTS)]
    staged = Rollout(T0, days=10)
    paused = staged.paused(T0 + 3 * DAY + dt.timedelta(hours=2))  # on day 3: 40 %
    held = _shares(paused, draws, 14)
    assert len(set(held[3:])) == 1 and held[3] == _shares(staged, draws, 4)[3]
    resumed = paused.resumed(T0 + 8 * DAY + dt.timedelta(hours=2))  # five days later
    assert resumed.share(T0 + 8 * DAY + dt.timedelta(hours=3)) == pytest.approx(0.4)
    assert resumed.share(T0 + 9 * DAY + dt.timedelta(hours=3)) == pytest.approx(0.5)
    assert _shares(staged.halt(), draws, 14) == [0.0] * 14
    assert Rollout.from_custom(resumed.to_custom()) == resumed


@pytest.mark.parametrize(
    "doc",
    [
        {"start": "2026-12-01T00:00:00Z"},
        {"start": "2026-12-01T00:00:00Z", "days": 0},
        {"start": "2026-12-01T00:00:00Z", "days": 31},
        {"start": "2026-12-01", "days": True},
        {"start": "2026-12-01T00:00:00+02:00", "days": 7},
        {"start": "x" * 5000, "days": 7},
        {"start": "2026-12-01T00:00:00Z", "days": 7, "halted": "yes"},
        {"start": "2026-12-01T00:00:00Z", "days": 7, "share": 1},
        "everyone",
        [],
        {"start": "2026-12-01T00:00:00Z", "days": 10**5000},
    ],
)
def test_a_roll_out_that_does_not_parse_is_refused(doc: object) -> None:
    with pytest.raises(PolicyError):
        Rollout.from_custom(doc)


def test_the_draw_is_kept_owner_only_and_drawn_again_only_when_damaged(tmp_path: Path) -> None:
    first = rollout_draw(tmp_path, lambda: 0.25)
    assert first == 0.25 and rollout_draw(tmp_path, lambda: 0.75) == 0.25
    path = tmp_path / "rollout.json"
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text('{"draw": 7}')
    assert rollout_draw(tmp_path, lambda: 0.5) == 0.5


# -- a real repository, staged by the real release tool ------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        yield r


def _release(repo: Repo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eid-release"), *args, "--dir", str(repo.folder)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_a_staged_release_reaches_early_agents_first_and_a_halt_stops_it(
    repo: Repo, tmp_path: Path
) -> None:
    repo.publish("1.0.0")
    repo.publish("1.1.0")  # to everyone
    published = _release(repo, "publish", "1.2.0", str(repo.bundle("1.2.0")), "--rollout-days", "7")
    assert published.returncode == 0, published.stderr
    data_dir = tmp_path / "data"
    install(repo, data_dir)
    source = _source(data_dir)
    now = dt.datetime.now(dt.UTC)
    early = remote.check(source, Version("1.0.0"), remote.Staging(0.05, now))
    late = remote.check(source, Version("1.0.0"), remote.Staging(0.95, now))
    assert early.update == Version("1.2.0") and early.latest == Version("1.2.0")
    assert late.update == Version("1.1.0") and late.latest == Version("1.1.0")  # not 1.2.0
    later = remote.check(source, Version("1.0.0"), remote.Staging(0.95, now + 7 * DAY))
    assert later.update == Version("1.2.0")  # a week on, everyone
    # the administrator halts it: offered to nobody new, at once
    halted = _release(repo, "rollout", "halt")
    assert halted.returncode == 0 and "offered now to 0%" in halted.stdout, halted.stderr
    early = remote.check(source, Version("1.0.0"), remote.Staging(0.05, now))
    assert early.update == Version("1.1.0")
    text = _release(repo, "status").stdout
    assert "1.2.0" in text and "roll-out: halted, offered to 0% of agents" in text, text
    assert "1.1.0      archive" in text and "roll-out: offered to every agent" in text
    info = json.loads(_release(repo, "status", "--json").stdout)
    assert info["releases"][0]["rollout"]["state"] == "halted"
    # a required update is never staged: the late agent must have 1.2.0 now
    resumed = _release(repo, "rollout", "resume")
    assert resumed.returncode == 0, resumed.stderr
    required = _release(repo, "policy", "--required-minimum", "1.2.0")
    assert required.returncode == 0, required.stderr
    late = remote.check(source, Version("1.0.0"), remote.Staging(0.95, now))
    assert late.update == Version("1.2.0")
    # the next release is offered to everyone unless staged again
    repo.publish("1.3.0")
    assert remote.check(source, Version("1.0.0"), remote.Staging(0.95, now)).update == (
        Version("1.3.0")
    )


def _source(data_dir: Path) -> remote.Source:
    from agent.updater.install import Layout

    source = Layout.in_data_dir(data_dir).source()
    assert source is not None
    return source
