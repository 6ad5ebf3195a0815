"""``eid-agent install``, ``eid-agent update check|apply|status`` and ``eid-agent self-test``.

A thin driver over the updater (agent/updater). ``update apply`` asks a running agent to
update (SIGUSR1: only the same user may send it) and waits for the outcome; with no agent
running it installs in this process and health-checks the new version by running its
self-test. Exit status: 0 done, 1 a failure the person was told about, 2 not possible here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import TextIO

from packaging.version import Version

from agent import __version__
from agent.notices import Notice, format_notice
from agent.updater import remote
from agent.updater.errors import InstallError, UpdateError
from agent.updater.install import Layout, bundle_version, running_layout
from agent.updater.policy import (
    OUTCOME_MESSAGES,
    ApplyOutcome,
    StateName,
    apply_outcome,
    state_name,
)
from agent.updater.service import UpdaterService, load_state, state_file
from eidcore.messages import Language

__all__ = ["install_command", "self_test_command", "update_command"]

APPLY_WAIT = 300.0  # seconds ``update apply`` waits for a running agent to finish


def _service(data_dir: Path, layout: Layout, source: remote.Source, out: TextIO,
             language: Language, hand_over: object = None) -> UpdaterService:  # fmt: skip
    async def notify(notice: Notice) -> None:
        out.write(format_notice(notice, language))

    async def offline_hand_over(version: Version) -> bool:
        return await asyncio.to_thread(_offline_hand_over, layout, data_dir, version)

    return UpdaterService(
        layout=layout, source=source, state_file=state_file(data_dir),
        current=Version(__version__), clock=lambda: dt.datetime.now(dt.UTC),
        jitter=random.random, notify=notify, order_active=lambda: False,
        hand_over=offline_hand_over,
    )  # fmt: skip


def _offline_hand_over(layout: Layout, data_dir: Path, version: Version) -> bool:
    """No agent runs: the new version's self-test is its health check."""
    result = subprocess.run(
        [str(layout.launcher(version)), "self-test", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return False
    layout.switch(version)
    layout.prune(layout.source())
    return True


def update_command(data_dir: Path, action: str, *, as_json: bool, out: TextIO, err: TextIO,
                   language: Language, deadline: float | None = None) -> int:  # fmt: skip
    """``deadline``: seconds for the repository in this process (an agent that is running
    and asked to apply keeps its own)."""
    layout = running_layout(data_dir)
    source = layout.source() if layout is not None else None
    if source is not None and deadline is not None:
        source = dataclasses.replace(source, deadline=deadline)
    if action == "status":
        return _status(data_dir, layout, out, as_json=as_json)
    if layout is None or source is None:
        err.write("eid-agent: this copy was not installed with 'eid-agent install' and has no "
                  "update repository; update it the way it was installed\n")  # fmt: skip
        return 2
    if action == "check":
        service = _service(data_dir, layout, source, out, language)
        asyncio.run(service.check(by_person=True, tick=False))
        return 1 if load_state(state_file(data_dir)).check_failures else 0
    return _apply(data_dir, layout, source, out, err, language)


def _apply(data_dir: Path, layout: Layout, source: remote.Source, out: TextIO, err: TextIO,
           language: Language) -> int:  # fmt: skip
    from agent.app.instance import pid_file

    pid = _running_agent(pid_file(data_dir))
    if pid is None:
        service = _service(data_dir, layout, source, out, language)
        before = layout.current_version()

        async def update() -> None:
            # an update a killed process left half-way is recorded (as a failure) without
            # telling the person: they are asking for the update right now
            quiet = _service(data_dir, layout, source, io.StringIO(), language)
            await quiet.recover()
            await service.start()

        earlier = load_state(state_file(data_dir))
        asyncio.run(update())
        after = layout.current_version()
        if after is not None and after != before:
            asyncio.run(service.applied(after))
            out.write(f"eid-agent {after}\n")
            return 0
        outcome = apply_outcome(earlier, load_state(state_file(data_dir)), installed=False)
        if outcome is ApplyOutcome.UP_TO_DATE:  # the service told the person already
            return 0
        err.write(f"eid-agent: nothing was installed (update state: "
                  f"{service.state_name()})\n")  # fmt: skip
        return 1
    before, earlier = layout.current_version(), load_state(state_file(data_dir))
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + APPLY_WAIT
    while time.monotonic() < deadline:  # every check rewrites the state (its time, at least)
        state = load_state(state_file(data_dir))
        settled = state != earlier and state_name(state) is not StateName.UPDATING
        if settled and _running_agent(pid_file(data_dir)) is not None:
            break
        time.sleep(0.1)
    after = layout.current_version()
    state = load_state(state_file(data_dir))
    outcome = apply_outcome(earlier, state, installed=after != before)
    if outcome is ApplyOutcome.INSTALLED:
        out.write(f"eid-agent {after}\n")
        return 0
    code = OUTCOME_MESSAGES.get(outcome)
    if code is not None:
        out.write(format_notice(Notice(code, link=state.manual_url or None), language))
        return 0 if outcome is ApplyOutcome.UP_TO_DATE else 1
    err.write(f"eid-agent: nothing was installed (update state: {state_name(state)}); "
              "an update waits for an identification or signing in progress\n")  # fmt: skip
    return 1


def _running_agent(path: Path) -> int | None:
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _status(data_dir: Path, layout: Layout | None, out: TextIO, *, as_json: bool) -> int:
    state = load_state(state_file(data_dir))
    info: dict[str, object] = {
        "version": __version__,
        "installed": layout is not None,
        "state": state_name(state) if layout is not None else StateName.UNMANAGED,
    }
    if layout is not None:
        source = layout.source()
        info |= {
            "current": str(layout.current_version()),
            "previous": str(layout.previous_version()) if layout.previous_version() else None,
            "versions": [str(v) for v in layout.installed()],
            "repository": source.base_url if source else None,
            "target": state.target,
            "checkFailures": state.check_failures,
            "updateFailures": state.apply_failures,
            "lastCheck": state.last_success.isoformat() if state.last_success else None,
            "nextCheck": state.next_check.isoformat() if state.next_check else None,
        }
    if as_json:
        out.write(json.dumps(info, indent=2) + "\n")
    else:
        for key, value in info.items():
            out.write(f"{key}: {value}\n")
    return 0


def install_command(data_dir: Path, *, repository: str, trust: Path, bundle: Path | None,
                    force: bool, out: TextIO, err: TextIO) -> int:  # fmt: skip
    """Install (or repair) into the per-user versions layout and pin the repository."""
    layout = Layout.in_data_dir(data_dir)
    try:
        root = trust.read_bytes()
        json.loads(root)
    except (OSError, ValueError) as exc:
        err.write(f"eid-agent: the trusted root metadata {trust} is not readable: {exc}\n")
        return 2
    layout.configure(repository, root)
    source = layout.source()
    assert source is not None
    try:
        if bundle is not None:
            version = bundle_version(bundle)
            _refuse_older(layout, version, force)
            if version != layout.current_version():
                layout.add(bundle, move=False)
        else:
            _, unpacked = remote.fetch(source, Version("0"), layout.new_staging_dir())
            version = bundle_version(unpacked)
            _refuse_older(layout, version, force)
            if version != layout.current_version():
                layout.add(unpacked, move=True)
    except UpdateError as exc:
        err.write(f"eid-agent: install failed: {exc}\n")
        layout.prune(source)
        return 1
    layout.switch(version)
    layout.prune(source)
    out.write(f"eid-agent {version} installed; run {layout.current / 'eid-agent'} run\n")
    return 0


def _refuse_older(layout: Layout, version: Version, force: bool) -> None:
    current = layout.current_version()
    if current is not None and version < current and not force:
        raise InstallError(f"{version} is older than the installed {current} (use --force)")


def self_test_command(data_dir: Path, out: TextIO, err: TextIO) -> int:
    from agent.app.selftest import self_test

    layout = running_layout(data_dir)
    bundle = layout.versions / __version__ if layout is not None else None
    problems = self_test(data_dir, bundle)
    for problem in problems:
        err.write(f"self-test: {problem}\n")
    if not problems:
        out.write(f"eid-agent {__version__}: self-test passed\n")
    return 1 if problems else 0
