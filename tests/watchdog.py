"""The evidence of a hang, for the tests that call into pcsc-lite and OpenSC (the serial
part, ``tests/parallel.py``).

pytest-timeout raises from a signal handler, which runs only when the main thread is
back in Python: a call into a driver that never returns (pcscd waiting on a lock, say)
blocks it for good, and the run would end only at CI's limit, with nothing said. So a
watchdog process, started with the session, is told when each test starts; a test still
running HARD_STOP_SECONDS later gets its native stacks written — of pcscd's threads and
of the test process — and then SIGABRT, on which the test process's faulthandler
(pytest enables it) writes every thread's Python stack. A hang becomes a failed run
that says where each side waited.

The watchdog ends when the test process closes the pipe (it ended, however).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import IO

__all__ = ["HARD_STOP_SECONDS", "Watchdog"]

HARD_STOP_SECONDS = 360.0  # after pytest-timeout's 300 s (pyproject.toml) had its chance

_WATCH = r"""
import os, select, shutil, signal, subprocess, sys, time
target = int(sys.argv[1])
deadline = None
pending = b""
while True:
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    ready, _, _ = select.select([0], [], [], wait)
    if ready:
        # the fd itself, never a buffered readline: lines read ahead into a buffer would
        # wait there while select() waits on the pipe (a hang went unseen so)
        chunk = os.read(0, 4096)
        if not chunk:
            break  # the test process ended
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            word, _, rest = line.decode().partition(" ")
            deadline = time.monotonic() + float(rest) if word == "arm" else None
        continue
    out = sys.stderr
    out.write("\nwatchdog: a test ran past its hard stop; the stacks follow\n")
    gdb = shutil.which("gdb")
    pids = subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True, text=True).stdout.split()
    for pid in [*pids, str(target)]:
        name = open(f"/proc/{pid}/comm").read().strip() if os.path.exists(f"/proc/{pid}") else "?"
        out.write(f"--- native stacks of {name} ({pid})\n")
        out.flush()
        if gdb:
            subprocess.run([gdb, "-p", pid, "-batch", "-nx", "-ex", "thread apply all bt"],
                           stdout=out, stderr=subprocess.STDOUT, timeout=120)
        else:
            out.write("(no gdb here)\n")
    out.write("--- Python stacks of the test process (faulthandler, on SIGABRT)\n")
    out.flush()
    os.kill(target, signal.SIGABRT)
    break
"""


class Watchdog:
    def __init__(self) -> None:
        # stderr is the session's own (started while capture is suspended), so what the
        # watchdog writes reaches the run's log
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WATCH, str(os.getpid())],
            stdin=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdin is not None
        self._pipe: IO[str] = self._proc.stdin

    def arm(self, seconds: float = HARD_STOP_SECONDS) -> None:
        self._say(f"arm {seconds}")

    def disarm(self) -> None:
        self._say("disarm 0")

    def _say(self, line: str) -> None:
        # the watchdog gone: the test runs unwatched, as it would without it
        with contextlib.suppress(OSError):
            self._pipe.write(line + "\n")
            self._pipe.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.close()
        self._proc.wait(timeout=10)
