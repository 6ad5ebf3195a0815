"""Publishing while a fleet checks: 20 checkers (the agent's own TUF seam,
``remote.check``, each with its own trusted metadata as an installed agent has) check in
a loop against the repository on loopback while the administrator publishes releases
and changes the policy. No check may fail because of a publish (ADR 0016: consistent
snapshots, files moved in by rename in the spec's order)."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path

import pytest
from packaging.version import Version

from agent.updater import remote
from installer import release
from tests.update_kit import repository

pytestmark = pytest.mark.slow

CHECKERS = 20


def test_no_check_fails_while_releases_are_published(tmp_path: Path) -> None:
    with repository(tmp_path) as repo:
        repo.publish("1.0.0")
        for version in ("1.1.0", "1.2.0", "1.3.0"):
            repo.bundle(version)  # built before the race: the race is the publish
        sources = []
        for n in range(CHECKERS):
            metadata = tmp_path / f"agent{n}/metadata"
            metadata.mkdir(parents=True)
            shutil.copy(repo.root_json, metadata / "root.json")
            sources.append(remote.Source(repo.server.url, metadata, tmp_path / f"agent{n}/t"))
        stop = threading.Event()
        failures: list[str] = []
        checks = [0] * CHECKERS
        latest: list[Version | None] = [None] * CHECKERS

        def check_in_a_loop(n: int) -> None:
            while not stop.is_set():
                try:
                    found = remote.check(sources[n], Version("1.0.0"))
                except remote.CheckError as exc:
                    failures.append(f"agent {n}: {exc}")
                else:
                    latest[n] = found.latest
                checks[n] += 1

        threads = [threading.Thread(target=check_in_a_loop, args=(n,)) for n in range(CHECKERS)]
        for thread in threads:
            thread.start()
        try:
            for version in ("1.1.0", "1.2.0", "1.3.0"):
                repo.publish(version)
                repo.policy(recommended=version)
                release.refresh(repo.folder, dt.datetime.now(dt.UTC))  # the cron job too
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        final = [remote.check(source, Version("1.0.0")).latest for source in sources]
    assert not failures, f"{len(failures)} of {sum(checks)} checks failed: {failures[:5]}"
    assert sum(checks) >= 100, checks  # the publishes really were raced
    assert final == [Version("1.3.0")] * CHECKERS
