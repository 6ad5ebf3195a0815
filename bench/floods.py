"""Floods against a real agent process, in full: 100 order starts a second from 20
origins for 10 s (one dialog at most, the rest answered 409/429, memory flat), then 1000
collect polls a second for 10 s for the one open order."""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
from pathlib import Path

from agent.credentials import CredentialStore
from bench.common import Figure, percentile
from bench.tokens import person
from issuer import CertificateAuthority, make_file_credential
from tests.agent_process import AgentProcess
from tests.flood_kit import collect_flood, rss_mib, start_flood


def run(tmp: Path, seconds: float = 10.0) -> list[Figure]:
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.create("Flood", now - dt.timedelta(days=1))
    data = tmp / "flood-data"
    CredentialStore(data).add(make_file_credential(ca, person(0), "bench password", now))
    with AgentProcess(data, "--no-cards", "--order-ttl", str(int(seconds * 3))) as agent:
        agent.ready()
        before = rss_mib(agent.proc.pid)
        starts = asyncio.run(start_flood(agent.port, 100, seconds, origins=20))
        after = rss_mib(agent.proc.pid)
        dialogs = agent.stdout.count("Password for")
        origin, ref = starts.refs[0]  # more than one 201 misses the figure below
        collects = asyncio.run(collect_flood(agent.port, origin, ref, 1000, seconds))
        alive = agent.proc.poll() is None
    answered = dict(sorted(starts.statuses.items()))
    return [
        Figure(
            "flood: order starts answered",
            "/s",
            starts.rate,
            "asked for",
            100.0,
            "one dialog, the rest 409/429",
            dialogs == 1 and starts.statuses[201] == 1 and set(starts.statuses) <= {201, 409, 429},
            f"{starts.sent} starts from 20 origins over {starts.seconds:.1f} s: {answered}; "
            f"{dialogs} dialog; p99 {percentile(starts.latencies, 99) * 1000:.1f} ms",
        ),
        Figure(
            "flood: agent RSS after the start flood",
            "MiB",
            after,
            "before it",
            before,
            "flat (< +5 MiB)",
            after - before < 5,
            f"{after - before:+.1f} MiB",
        ),
        Figure(
            "flood: collect polls answered",
            "/s",
            collects.rate,
            "asked for",
            1000.0,
            "all answered, agent up",
            alive and set(collects.statuses) <= {200, 429},
            f"{collects.sent} polls over {collects.seconds:.1f} s: "
            f"{dict(sorted(collects.statuses.items()))}; median "
            f"{statistics.median(collects.latencies) * 1000:.1f} ms, p99 "
            f"{percentile(collects.latencies, 99) * 1000:.1f} ms",
        ),
    ]
