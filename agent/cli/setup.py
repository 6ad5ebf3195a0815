"""The person's side of installing: after ``eid-agent install`` has put a version in place,
``--desktop`` adds the menu and autostart entries and a command on the PATH, and
``--start`` (re)starts the agent from the installed version and waits until it listens.
``eid-agent uninstall`` undoes all of it and stops the agent; the person's BankIDs and
settings stay unless they ask to delete them, and they are told where they are.

Everything is per user (ADR 0011): nothing here needs root, so the agent can later
update itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TextIO

from agent.app import pid_file, stop_running
from agent.cli.desktopentry import install_entries, uninstall_entries
from agent.cli.io import Io, Say, sayer
from agent.updater import Layout
from eidcore.atomicfile import private_dir, private_file
from eidcore.messages import Language, Term, catalogue
from eidcore.paths import default_config_file, default_data_dir, tokens_dir, user_bin_dir

__all__ = ["START_TIMEOUT", "add_arguments", "finish_install", "run", "uninstall_command"]

START_TIMEOUT = 30.0  # seconds for the installed agent to listen
_OWN_FILES = (
    "updater.json",
    "rollout.json",
    "installation.key",  # agent/autostart/device.py
    "agent.pid",
    "agent.lock",
    "agent.log",
    "agent.log.1",
    "agent.log.2",
    "agent.log.3",
    "agent-start.log",
    "opensc.conf",  # agent/credentials/pkcs11/opensc.py
    "pkcs11-probes.json",  # agent/credentials/pkcs11/probe.py
)


def _sayer(language: Language) -> Say:
    return sayer(language, end="\n")


def _data_args(data_dir: Path) -> list[str]:
    """How the installed commands name this data folder (nothing for the default)."""
    return [] if data_dir == default_data_dir() else ["--data-dir", str(data_dir)]


def finish_install(
    data_dir: Path, *, desktop: bool, start: bool, out: TextIO, err: TextIO, language: Language
) -> int:
    say = _sayer(language)
    layout = Layout.in_data_dir(data_dir)
    launcher = layout.current / "eid-agent"  # through current: updates switch it
    if desktop:
        for path in install_entries(data_dir, _data_args(data_dir), launcher=launcher):
            out.write(f"{path}\n")
        link = user_bin_dir() / "eid-agent"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or not link.exists():
            temporary = link.with_name(".eid-agent.new")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(launcher)
            temporary.replace(link)  # atomically, over an older link
            out.write(f"{link}\n")
            if not _on_path(link.parent):
                out.write(say(Term.SETUP_NOT_ON_PATH, dir=link.parent, command=link))
        else:
            err.write(say(Term.SETUP_NOT_OURS, path=link))
    if start:
        return _start(data_dir, launcher, out, err, say)
    return 0


def _on_path(folder: Path) -> bool:
    """Whether a command in ``folder`` is found by name: a fresh account's ~/.local/bin
    is on PATH only from the next login, if the shell's profile adds it at all."""
    entries = os.environ.get("PATH", "").split(os.pathsep)
    return any(entry and Path(entry).resolve() == folder.resolve() for entry in entries)


def _stopped(data_dir: Path, out: TextIO, err: TextIO, say: Say) -> bool:
    """This person's agent is not running (any more); False: it would not stop."""
    try:
        stopped = stop_running(data_dir)
    except TimeoutError:
        err.write(say(Term.CLI_WOULD_NOT_STOP))
        return False
    if stopped is not None:
        out.write(say(Term.CLI_STOPPED_AGENT, pid=stopped))
    return True


def _start(data_dir: Path, launcher: Path, out: TextIO, err: TextIO, say: Say) -> int:
    """Stop a running agent (an older version, or this one being repaired), start the
    installed one in a session of its own, and wait until it listens."""
    if not _stopped(data_dir, out, err, say):
        return 1
    # The agent logs to agent.log itself (owner-only, rotated: agent/cli/logfile.py); what it
    # prints before its logging is set up — a crash at start — goes to agent-start.log,
    # which each start begins afresh, so neither can grow without bound.
    private_dir(data_dir)
    start_log = data_dir / "agent-start.log"
    fd = os.open(start_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    private_file(start_log)
    with os.fdopen(fd, "wb") as log:
        child = subprocess.Popen(
            [
                str(launcher),
                *_data_args(data_dir),
                "run",
                "--log-file",
                str(data_dir / "agent.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            err.write(say(Term.SETUP_ENDED_AT_ONCE, status=child.returncode, log=start_log))
            return 1
        with contextlib.suppress(OSError, ValueError):
            if int(pid_file(data_dir).read_text()) == child.pid:  # written once listening
                out.write(say(Term.SETUP_RUNNING, pid=child.pid))
                return 0
        time.sleep(0.05)
    err.write(say(Term.SETUP_NOT_LISTENING, log=data_dir / "agent.log"))
    return 1


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """``eid-agent uninstall``'s options."""
    parser.add_argument(
        "--delete-credentials",
        action="store_true",
        help="also delete your BankIDs on file and your settings",
    )
    parser.add_argument("--config", type=Path, help="the settings file (default: per-user)")


def run(io: Io, args: argparse.Namespace) -> int:
    return uninstall_command(
        args.data_dir or default_data_dir(),
        delete_credentials=args.delete_credentials,
        config=args.config,
        out=io.stdout,
        err=io.stderr,
        language=io.language,
    )


def uninstall_command(
    data_dir: Path,
    *,
    delete_credentials: bool,
    config: Path | None,
    out: TextIO,
    err: TextIO,
    language: Language,
) -> int:
    say = _sayer(language)
    # Every text is read before anything is deleted: run from the installed copy, this
    # command removes the very folder its catalogue and modules live in (it crashed with
    # a double traceback, reading the catalogue after the folder had gone).
    catalogue()
    if not _stopped(data_dir, out, err, say):
        return 1  # nothing was removed
    removed = uninstall_entries()
    link = user_bin_dir() / "eid-agent"
    install_root = Layout.in_data_dir(data_dir).root
    if link.is_symlink() and str(os.readlink(link)).startswith(str(install_root)):
        link.unlink()
        removed.append(link)
    if install_root.exists():
        shutil.rmtree(install_root)
        removed.append(install_root)
    for name in _OWN_FILES:
        path = data_dir / name
        if path.exists():
            path.unlink()
            removed.append(path)
    config = config or default_config_file()
    if delete_credentials:
        for path in (data_dir, config):
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(path)
            elif path.exists():
                path.unlink()
                removed.append(path)
    for path in removed:
        out.write(say(Term.SETUP_REMOVED, path=path))
    if not delete_credentials:
        kept = [p for p in (tokens_dir(data_dir), config) if p.exists()]
        if kept:
            out.write(say(Term.SETUP_KEPT, paths=", ".join(map(str, kept))))
    return 0
