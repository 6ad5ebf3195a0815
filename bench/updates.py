"""Update figures: a no-op check (requests, bytes, time against a bare tufup client), patch
against full archive for a minor release, and how long the bridge is away during an
install."""

from __future__ import annotations

import functools
import os
import signal
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path

from packaging.version import Version
from tufup.client import Client  # the bare baseline; the agent goes through remote.py

from agent.updater import remote
from bench.common import Figure, median_time
from installer import release
from installer.bundle import build_bundle
from tests.update_kit import install, installed_agent, repository, update_state, wait_for


def _last_success(data: Path) -> object:
    return update_state(data).get("lastSuccess")


def run(tmp: Path, runs: int) -> list[Figure]:
    figures = []
    with repository(tmp / "noop") as repo:
        repo.publish("1.0.0")
        data = tmp / "noop-data"
        install(repo, data)
        source = remote.Source(
            repo.server.url, data / "install/tuf/metadata", data / "install/tuf/targets"
        )
        remote.check(source, Version("1.0.0"))  # warm: the agent has checked before
        repo.server.log.clear()
        remote.check(source, Version("1.0.0"))
        requests = list(repo.server.log)
        sent = sum(s.sent for s in requests)
        bare_meta = tmp / "bare-meta"
        bare_meta.mkdir()
        (bare_meta / "root.json").write_bytes(repo.root_json.read_bytes())

        def bare() -> None:
            client = Client(
                app_name="eid-agent",
                app_install_dir=tmp / "bare-install",
                current_version="1.0.0",
                metadata_dir=bare_meta,
                metadata_base_url=repo.server.url + "metadata/",
                target_dir=tmp / "bare-targets",
                target_base_url=repo.server.url + "targets/",
            )
            client.check_for_updates()

        (tmp / "bare-targets").mkdir()
        bare()
        repo.server.log.clear()
        bare()
        bare_sent = sum(s.sent for s in repo.server.log)
        ours = median_time(lambda: remote.check(source, Version("1.0.0")), runs * 2)
        base = median_time(bare, runs * 2)
        paths = ", ".join(f"{s.path} {s.status} {s.sent} B" for s in requests)
        figures.append(
            Figure(
                "no-op update check: bytes",
                "B",
                sent,
                "bare tufup Client.check_for_updates",
                bare_sent,
                "< 1 kB",
                sent < 1024,
                f"{len(requests)} requests: {paths}; TUF asks for the next root first (spec 5.3)",
            )
        )
        figures.append(
            Figure(
                "no-op update check: time",
                "ms",
                ours * 1000,
                "bare tufup Client.check_for_updates",
                base * 1000,
                "≤ 1.2×",
                ours <= 1.2 * base,
            )
        )
    figures.append(_patch_vs_full(tmp))
    figures.append(_downtime(tmp, runs=min(runs, 5)))
    return figures


def _patch_vs_full(tmp: Path) -> Figure:
    """A minor release of the real, self-contained bundle: what an update downloads."""
    folder = tmp / "real-release"
    release.init(folder)
    sizes = {}
    for version in ("1.0.0", "1.0.1"):
        bundle = build_bundle(tmp / f"real-{version}", version)
        sizes[version] = release.publish(folder, version, bundle, {})
    patch = sizes["1.0.1"].patch_bytes or 0
    full = sizes["1.0.1"].archive_bytes
    return Figure(
        "minor release: patch bytes",
        "kB",
        patch / 1000,
        "full archive",
        full / 1000,
        "patch ≪ archive",
        patch < full / 10,
        "real self-contained bundle; the patch only carries what changed",
    )


def _downtime(tmp: Path, runs: int) -> Figure:
    """The longest stretch /v1/info does not answer while an installed agent updates
    itself (agent-only bundles; the hand-over is the same for any bundle)."""
    gaps = []
    startups = []
    for n in range(runs):
        with repository(tmp / f"down{n}") as repo:
            repo.publish("1.0.0")
            data = tmp / f"down{n}-data"
            install(repo, data)
            with installed_agent(data) as agent:
                agent.ready()
                wait_for(functools.partial(_last_success, data), what="first check")
                repo.publish("1.1.0")
                url = f"http://127.0.0.1:{agent.port}/v1/info"
                os.kill(agent.proc.pid, signal.SIGUSR1)
                down_since, longest, version = None, 0.0, ""
                deadline = time.monotonic() + 60
                while version != "1.1.0" and time.monotonic() < deadline:
                    try:
                        request = urllib.request.Request(
                            url, headers={"Origin": "https://bank.example", "X-Eid-Agent": "1"}
                        )
                        with urllib.request.urlopen(request, timeout=2) as reply:  # noqa: S310
                            version = reply.read().decode().split('"version": "')[1][:5]
                        if down_since is not None:
                            longest = max(longest, time.monotonic() - down_since)
                            down_since = None
                    except (urllib.error.URLError, ConnectionError, OSError):
                        down_since = down_since or time.monotonic()
                    time.sleep(0.005)
                gaps.append(longest)
            startups.append(_interpreter_start())
    median = statistics.median(gaps)
    return Figure(
        "bridge away during an update",
        "ms",
        median * 1000,
        "bare interpreter start + aiohttp import",
        statistics.median(startups) * 1000,
        "< 2000 ms",
        median < 2.0,
        f"median of {runs} updates",
    )


def _interpreter_start() -> float:
    import subprocess
    import sys

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aiohttp.web"], check=True)
    return time.perf_counter() - start
