"""``eid-agent update check|apply|status``.

A thin driver over the updater (agent/updater). ``update apply`` asks a running agent to
update (SIGUSR1: only the same user may send it) and waits for the outcome; with no agent
running it installs in this process and health-checks the new version by running its
self-test. Exit status: 0 done, 1 a failure the person was told about, 2 not possible here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import TextIO

from packaging.version import Version

from agent import __version__
from agent.cli.io import Io, sayer
from agent.notices import Notice, format_notice
from agent.updater import (
    OUTCOME_MESSAGES,
    ApplyOutcome,
    Layout,
    Phase,
    StateName,
    UpdaterService,
    UpdaterState,
    apply_outcome,
    load_state,
    remote,
    rollout_draw,
    running_layout,
    state_file,
    state_name,
)
from eidcore.messages import Language, MessageCode, Term

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)

APPLY_WAIT = 300.0  # seconds ``update apply`` waits for a running agent to finish
SETTLE = 1.0  # seconds an "available" state must stand before it is the outcome


# What a notice offers and ``update apply`` is already doing: not said again there.
_OFFERS = frozenset(
    {
        MessageCode.UPDATE_REQUIRED,
        MessageCode.UPDATE_RECOMMENDED,
        MessageCode.NEWER_VERSION_AVAILABLE,
        MessageCode.AUTOMATIC_UPDATE,
    }
)


def _service(
    data_dir: Path,
    layout: Layout,
    source: remote.Source,
    out: TextIO,
    language: Language,
    *,
    applying: bool = False,
) -> UpdaterService:
    async def notify(notice: Notice) -> None:
        if not (applying and notice.code in _OFFERS):
            out.write(format_notice(notice, language))

    async def offline_hand_over(version: Version) -> bool:
        return await asyncio.to_thread(_offline_hand_over, layout, data_dir, version)

    return UpdaterService(
        layout=layout,
        source=source,
        state_file=state_file(data_dir),
        current=Version(__version__),
        clock=lambda: dt.datetime.now(dt.UTC),
        jitter=random.random,
        notify=notify,
        order_active=lambda: False,
        hand_over=offline_hand_over,
        draw=rollout_draw(data_dir, random.random),
    )


def _offline_hand_over(layout: Layout, data_dir: Path, version: Version) -> bool:
    """No agent runs: the new version's self-test is its health check."""
    result = subprocess.run(
        [str(layout.launcher(version)), "self-test", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        return False
    layout.switch(version)
    layout.prune(layout.source())
    return True


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    for name, text in (
        ("check", "look for an update now"),
        ("apply", "update now, if there is one"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument(
            "--deadline",
            type=float,
            metavar="SECONDS",
            help="give up on the repository after this long, in this process (default: 300)",
        )
    status = actions.add_parser("status", parents=[common], help="versions and update state")
    status.add_argument("--json", action="store_true", help="machine-readable output")


def run(io: Io, args: argparse.Namespace) -> int:
    from eidcore.paths import default_data_dir

    return update_command(
        args.data_dir or default_data_dir(),
        args.action,
        as_json=getattr(args, "json", False),
        out=io.stdout,
        err=io.stderr,
        language=io.language,
        deadline=getattr(args, "deadline", None),
    )


def update_command(
    data_dir: Path,
    action: str,
    *,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    language: Language,
    deadline: float | None = None,
) -> int:
    """``deadline``: seconds for the repository in this process (an agent that is running
    and asked to apply keeps its own)."""
    layout = running_layout(data_dir)
    source = layout.source() if layout is not None else None
    if source is not None and deadline is not None:
        source = dataclasses.replace(source, deadline=deadline)
    if action == "status":
        return _status(data_dir, layout, out, as_json=as_json, language=language)
    if layout is None or source is None:
        err.write(
            "eid-agent: this copy was not installed with 'eid-agent install' and has no "
            "update repository; update it the way it was installed\n"
        )
        return 2
    if action == "check":
        service = _service(data_dir, layout, source, out, language)
        asyncio.run(service.check(by_person=True, tick=False))
        return 1 if load_state(state_file(data_dir)).check_failures else 0
    return _apply(data_dir, layout, source, out, err, language)


def _apply(
    data_dir: Path,
    layout: Layout,
    source: remote.Source,
    out: TextIO,
    err: TextIO,
    language: Language,
) -> int:
    from agent.app import pid_file

    pid = _running_agent(pid_file(data_dir))
    say = sayer(language)
    if pid is None:
        service = _service(data_dir, layout, source, out, language, applying=True)
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
            out.write(say(Term.UPDATE_APPLIED, before=before, after=after) + "\n")
            return 0
        outcome = apply_outcome(earlier, load_state(state_file(data_dir)), installed=False)
        if outcome is ApplyOutcome.UP_TO_DATE:  # the service told the person already
            return 0
        words = say(Term(f"update_state_{service.state_name()}"))
        err.write(say(Term.UPDATE_NOT_APPLIED, state=words) + "\n")
        return 1
    before, earlier = layout.current_version(), load_state(state_file(data_dir))
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + APPLY_WAIT
    seen, since = earlier, time.monotonic()
    while time.monotonic() < deadline:  # every check rewrites the state (its time, at least)
        state = load_state(state_file(data_dir))
        if state != seen:
            seen, since = state, time.monotonic()
        settled = state != earlier and state_name(state) is not StateName.UPDATING
        # Right after its check the agent writes "available" and only then starts the
        # update (or, with an order in progress, leaves it waiting): an "available" state
        # is the outcome only once it has stood for a while.
        if settled and state.phase is Phase.AVAILABLE and time.monotonic() - since < SETTLE:
            settled = False
        if settled and _running_agent(pid_file(data_dir)) is not None:
            break
        time.sleep(0.1)
    after = layout.current_version()
    state = load_state(state_file(data_dir))
    outcome = apply_outcome(earlier, state, installed=after != before)
    if outcome is ApplyOutcome.INSTALLED:
        out.write(say(Term.UPDATE_APPLIED, before=before, after=after) + "\n")
        return 0
    code = OUTCOME_MESSAGES.get(outcome)
    if code is not None:
        out.write(format_notice(Notice(code, link=state.manual_url or None), language))
        return 0 if outcome is ApplyOutcome.UP_TO_DATE else 1
    err.write(say(Term.UPDATE_WAITS_FOR_ORDER) + "\n")
    return 1


def _running_agent(path: Path) -> int | None:
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _status(
    data_dir: Path, layout: Layout | None, out: TextIO, *, as_json: bool, language: Language
) -> int:
    state = load_state(state_file(data_dir))
    name = state_name(state, dt.datetime.now(dt.UTC)) if layout is not None else StateName.UNMANAGED
    info: dict[str, object] = {
        "version": __version__,
        "installed": layout is not None,
        "state": str(name),
    }
    if layout is not None:
        source = layout.source()
        previous = layout.previous_version()
        info |= {
            "current": str(layout.current_version()),
            "previous": str(previous) if previous else None,
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
        return 0
    out.write(_status_text(info, state, language))
    return 0


def _status_text(info: dict[str, object], state: UpdaterState, language: Language) -> str:
    """``update status`` for a person: words and local times, never Python values."""
    say = sayer(language)
    lines = [
        say(Term.STATUS_VERSION, version=info["version"]),
        say(Term.STATUS_STATE, state=say(Term(f"update_state_{info['state']}"))),
    ]
    if not info["installed"]:
        lines.append(say(Term.NO_UPDATES_HERE))
        return "\n".join(lines) + "\n"
    none = say(Term.STATUS_NONE)

    def when(moment: dt.datetime | None) -> str:
        return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else none

    versions = info["versions"]
    assert isinstance(versions, list)
    lines += [
        say(Term.STATUS_REPOSITORY, repository=info["repository"] or none),
        say(
            Term.STATUS_INSTALLED,
            versions=", ".join(versions) or none,
            previous=info["previous"] or none,
        ),
        say(Term.STATUS_LAST_CHECK, when=when(state.last_success)),
        say(Term.STATUS_NEXT_CHECK, when=when(state.next_check)),
    ]
    if state.target:
        lines.append(say(Term.STATUS_TARGET, version=state.target))
    if state.check_failures or state.apply_failures:
        lines.append(
            say(Term.STATUS_FAILURES, checks=state.check_failures, updates=state.apply_failures)
        )
    return "\n".join(lines) + "\n"
