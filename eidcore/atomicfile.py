"""Crash-safe file replacement.

A crash (power loss, kill -9) at any instant must leave either the old file or the new
one, never a torn mix: write a temporary file in the same directory, fsync it, rename it
over the target (atomic within one file system on POSIX and on Windows via os.replace),
then fsync the directory so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["NotPrivate", "atomic_write_bytes", "fsync_directory", "private_dir", "private_file"]

_OPEN_TO_OTHERS = 0o077


class NotPrivate(OSError):
    """A folder or file that should be this user's alone belongs to someone else (which
    we cannot repair and must not trust), or a folder is not one."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = str(path)


def private_dir(path: Path) -> bool:
    """Make ``path`` (and only it, not its parents) a folder only its owner can enter:
    created 0700, or repaired to 0700 when it is ours and open to others. True when it
    had to be repaired.

    Raises:
        NotPrivate: it exists and belongs to another user, or is not a folder.
        OSError: it cannot be created or changed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    return _repair(path, dir_expected=True)


def private_file(path: Path) -> bool:
    """Make an existing file ``path`` owner-only (0600); True when it had to be repaired.

    Raises:
        NotPrivate: it belongs to another user.
        OSError: it cannot be changed.
    """
    return _repair(path, dir_expected=False)


def _repair(path: Path, *, dir_expected: bool) -> bool:
    info = os.lstat(path)
    if dir_expected and not stat.S_ISDIR(info.st_mode):
        raise NotPrivate(path, "not a folder")
    if info.st_uid != os.getuid():
        raise NotPrivate(path, f"belongs to user {info.st_uid}")
    if info.st_mode & _OPEN_TO_OTHERS:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~_OPEN_TO_OTHERS)
        return True
    return False


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets ``mode`` from its first byte.

    Raises:
        OSError: the directory is missing or not writable, the disk is full, ...; the
            target is then untouched and no temporary file is left behind.
    """
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates 0600 already; chmod states the intent and covers other modes.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (a no-op where unsupported)."""
    # Without this the rename may be lost on power failure even though the data was synced.
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not supported here (Windows); the rename is still atomic
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
