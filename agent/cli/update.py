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
from agent.cli.io import Say, sayer
from agent.notices import Notice, format_notice
from agent.updater import remote
from agent.updater.errors import InstallError, UpdateError
from agent.updater.install import Layout, archive_name, bundle_version, running_layout
from agent.updater.policy import (
    OUTCOME_MESSAGES,
    ApplyOutcome,
    Phase,
    StateName,
    UpdaterState,
    apply_outcome,
    state_name,
)
from agent.updater.service import UpdaterService, load_state, rollout_draw, state_file
from eidcore.messages import Language, MessageCode, Term

__all__ = ["install_command", "self_test_command", "update_command"]

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
    from agent.app.instance import pid_file

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


VERIFY_DEADLINE = 20.0  # seconds to check an installer against its repository


def install_command(
    data_dir: Path,
    *,
    repository: str,
    trust: Path,
    bundle: Path | None,
    archive: Path | None = None,
    installer: Path | None = None,
    force: bool,
    out: TextIO,
    err: TextIO,
    language: Language = Language.EN,
) -> int:
    """Install (or repair) into the per-user versions layout and pin the repository.
    ``archive``: the release archive ``bundle`` was unpacked from (an installer's), kept
    for the first update's patch and checked against the repository when it answers;
    ``installer``: the installer file itself, checked against the release's signed list
    of its installers."""
    say = sayer(language)
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
            if archive is not None:
                _checked_archive(layout, source, archive, version, installer, out, say)
            if version != layout.current_version():
                layout.add(bundle, move=False)
        else:
            _, unpacked = remote.fetch(source, Version("0"), layout.new_staging_dir())
            version = bundle_version(unpacked)
            _refuse_older(layout, version, force)
            if version != layout.current_version():
                layout.add(unpacked, move=True)
    except UpdateError as exc:
        err.write(say(Term.INSTALL_FAILED, reason=exc) + "\n")
        layout.prune(source)
        return 1
    layout.switch(version)
    layout.prune(source)
    out.write(say(Term.INSTALL_DONE, version=version, path=layout.current / "eid-agent") + "\n")
    return 0


def _checked_archive(
    layout: Layout,
    source: remote.Source,
    archive: Path,
    version: Version,
    installer: Path | None,
    out: TextIO,
    say: Say,
) -> None:
    """Keep the installer's archive; refuse it, or the installer, if the repository signed
    another.

    Raises: InstallError."""
    kept = layout.keep_archive(archive, version)
    quick = dataclasses.replace(source, deadline=VERIFY_DEADLINE)
    try:
        signed = remote.verify_target(quick, archive_name(version), kept)
        if installer is not None:
            _checked_installer(installer, signed.get("installers"), version, source, say)
    except remote.FetchError as exc:
        kept.unlink(missing_ok=True)
        raise InstallError(
            say(Term.INSTALL_NOT_SIGNED, version=version, repository=source.base_url) + f" ({exc})"
        ) from None
    except (remote.CheckError, OSError) as exc:
        out.write(say(Term.INSTALL_UNCHECKED, repository=source.base_url) + "\n")
        log.warning("installer not checked against %s: %s", source.base_url, exc)


def _checked_installer(
    installer: Path, signed: object, version: Version, source: remote.Source, say: Say
) -> None:
    """The installer file against the release's signed list of its installers (a release
    published before installers were signed has none: nothing to compare).

    Raises: remote.FetchError (another installer), OSError."""
    import hashlib

    if not isinstance(signed, dict) or installer.name not in signed:
        return
    data = installer.read_bytes()
    entry = signed[installer.name]
    if (
        not isinstance(entry, dict)
        or entry.get("length") != len(data)
        or entry.get("sha256") != hashlib.sha256(data).hexdigest()
    ):
        raise remote.FetchError(f"{installer.name} is not the installer the repository signed")


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
