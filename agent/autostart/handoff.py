"""Handing a link to the person's running agent: a UNIX socket in the per-user runtime
folder (owner-only), one per data folder. The handler a browser starts (``eid-agent open
URL``) writes the link and exits at once; the agent carries the order out in its own
dialogs. It never needs the bridge's port.

The folder is 0700 and the socket 0600, and the peer's uid is asked of the kernel
(SO_PEERCRED) as well: another user's process is refused even where the folder's mode
was changed. One line in, one line out, within a few seconds, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from eidcore.atomicfile import private_dir
from eidcore.paths import runtime_dir

__all__ = ["HANDOFF_SECONDS", "MAX_LINK", "hand_over", "serve_handoff", "socket_path"]

MAX_LINK = 4096  # characters of a link (agent.autostart.link's rule takes it from here)

log = logging.getLogger(__name__)

HANDOFF_SECONDS = 5.0
OK, REFUSED, BUSY = b"ok\n", b"refused\n", b"busy\n"


MAX_SOCKET_PATH = 107  # bytes a UNIX socket's name may have (sun_path, less its NUL)


def socket_path(data_dir: Path, folder: Path | None = None) -> Path:
    """One socket per data folder (a person may run a test agent beside their own); the
    name is a digest so that it is short. Where the runtime folder's own path is too long
    for a socket (a long ``$TMPDIR`` with no ``$XDG_RUNTIME_DIR``: seen at 116 bytes), a
    per-user folder in ``/tmp``, made owner-only like the other: else the agent could not
    listen and every link would end in the console instead."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    path = (folder or runtime_dir()) / f"agent-{digest}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        path = Path("/tmp") / f"eid-agent-{os.getuid()}" / path.name  # noqa: S108 - owner-only
    return path


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


async def serve_handoff(path: Path, accept: Callable[[str], Awaitable[bool]]) -> asyncio.Server:
    """Listen on ``path``; ``accept(url)`` is True when the agent took the link on (it
    runs the order itself, later). Raises: OSError, NotPrivate (the folder is another
    user's)."""
    private_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a socket left by an agent that died; the instance lock is held

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            if sock is None or _peer_uid(sock) != os.getuid():
                log.warning("a link from another user's process was refused")
                writer.write(REFUSED)
                return
            try:
                line = await asyncio.wait_for(reader.readline(), HANDOFF_SECONDS)
            except (TimeoutError, ValueError):  # slow, or longer than the reader's limit
                writer.write(REFUSED)
                return
            url = line.decode("ascii", "replace").strip()
            writer.write(OK if url and await accept(url) else BUSY)
        finally:
            with contextlib.suppress(OSError):
                await writer.drain()
                writer.close()

    old = os.umask(0o177)  # the socket is created 0600
    try:
        server = await asyncio.start_unix_server(handle, path, limit=MAX_LINK + 2)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return server


def hand_over(url: str, path: Path) -> bool | None:
    """Give ``url`` to the agent listening on ``path``: True taken, False refused or busy,
    None when no agent listens there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(HANDOFF_SECONDS)
            sock.connect(str(path))
            sock.sendall(url.encode("ascii", "replace")[:MAX_LINK] + b"\n")
            answer = sock.recv(64)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except OSError as exc:
        log.info("hand-over to %s failed: %s", path, exc)
        return None
    return answer == OK
