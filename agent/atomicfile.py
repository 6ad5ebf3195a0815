"""Crash-safe file replacement.

A crash (power loss, kill -9) at any instant must leave either the old file or the new
one, never a torn mix: write a temporary file in the same directory, fsync it, rename it
over the target (atomic within one file system on POSIX and on Windows via os.replace),
then fsync the directory so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "fsync_directory"]


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
