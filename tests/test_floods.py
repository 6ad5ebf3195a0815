"""Floods against a real agent process, reduced (./dev bench runs them for 10 s): order
starts from many origins open one dialog at most and are answered 409/429 without the
agent's memory growing; collect polls are all answered."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.credentials import CredentialStore
from tests.agent_process import AgentProcess
from tests.conftest import ANNA, FAST_KDF, MakeToken
from tests.flood_kit import collect_flood, rss_mib, start_flood

pytestmark = pytest.mark.slow


def test_start_and_collect_floods(tmp_path: Path, make_token: MakeToken) -> None:
    CredentialStore(tmp_path / "data", kdf=FAST_KDF).add(make_token(ANNA))
    with AgentProcess(tmp_path / "data", "--no-cards") as agent:
        agent.ready()
        before = rss_mib(agent.proc.pid)
        starts = asyncio.run(start_flood(agent.port, 100, 2.0, origins=20))
        assert starts.statuses[201] == 1 and set(starts.statuses) <= {201, 409, 429}
        assert starts.statuses[429] > 0  # the per-site limits answered
        assert agent.stdout.count("Password for") == 1  # one dialog, whatever the flood
        [(origin, ref)] = starts.refs
        collects = asyncio.run(collect_flood(agent.port, origin, ref, 300, 2.0))
        assert set(collects.statuses) <= {200, 429} and collects.statuses[200] > 0
        assert agent.proc.poll() is None
        assert rss_mib(agent.proc.pid) - before < 10
        agent.origin = origin
        time.sleep(0.5)  # the flood emptied the site's poll budget; it refills at 10/s
        assert agent.collect(ref)["status"] == "pending"  # the one order is unharmed
