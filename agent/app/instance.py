"""One agent per person: a lock file in the data folder, held while the agent runs.

The bridge port is the second guard (it also catches an agent of another user, whose
data folder is elsewhere). An update hands the lock over with the port: the running
version releases both before starting the new one, which waits a little for them, and
takes them back if the new one fails (ADR 0008).

The lock is an ``flock`` (POSIX); the kernel releases it when the process dies, so a
crashed agent never leaves a stale lock behind — the pid inside is only for messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path

from eidcore.atomicfile import atomic_write_bytes

__all__ = ["AlreadyRunning", "InstanceLock", "pid_file", "remove_pid", "stop_running", "write_pid"]


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None) -> None:
        super().__init__(f"an agent is already running (pid {pid or 'unknown'})")
        self.pid = pid


class InstanceLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "agent.lock"
        self._fd: int | None = None

    def acquire(self, *, patience: float = 0.0) -> None:
        """Raises: AlreadyRunning (after ``patience`` seconds of retrying), OSError."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid = _read_pid(fd)
                    os.close(fd)
                    raise AlreadyRunning(pid) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def stop_running(data_dir: Path, timeout: float = 15.0) -> int | None:
    """Stop this person's running agent (SIGTERM) and wait until its lock is free;
    the pid it had, or None when none ran. Raises: TimeoutError."""
    lock = InstanceLock(data_dir)
    if not lock.path.exists():
        return None
    try:
        lock.acquire()
    except AlreadyRunning as running:
        if running.pid is None:
            raise TimeoutError("an agent holds the lock but did not say its pid") from None
        os.kill(running.pid, signal.SIGTERM)
        try:
            lock.acquire(patience=timeout)
        except AlreadyRunning:
            raise TimeoutError(f"the agent (pid {running.pid}) did not stop") from None
        lock.release()
        return running.pid
    lock.release()
    return None


def pid_file(data_dir: Path) -> Path:
    """Names the running agent, for ``eid-agent update apply`` and uninstall (the lock
    file's pid is only readable while holding it)."""
    return data_dir / "agent.pid"


def write_pid(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        data_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(pid_file(data_dir), f"{os.getpid()}\n".encode(), mode=0o644)


def remove_pid(data_dir: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(pid_file(data_dir).read_text()) == os.getpid():
            pid_file(data_dir).unlink()
