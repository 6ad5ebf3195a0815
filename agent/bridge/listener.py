"""The bridge's listening socket, guarded before any request is read (BRIDGE-SECURITY 10).

Another user of the computer can reach the loopback port. Checking their user per request
(the app's middleware) came too late: ~1,100 connections that never finished their
headers held the agent's file descriptors, and the owner's own browser then timed out.
So every accepted connection is checked here, as it is accepted:

- the peer's OS user (the kernel's socket table, agent/bridge/peer.py): another user's
  connection is closed at once, before a byte is read;
- at most ``MAX_CONNECTIONS_PER_USER`` open connections per user, and
  ``MAX_CONNECTIONS`` in all; past them a new one is closed at once;
- the first request's headers must be complete within ``HEADER_DEADLINE`` seconds (a
  half-open connection is dropped), and an idle keep-alive connection ends after
  ``KEEPALIVE_SECONDS`` (aiohttp's own timer).

``ConnectionGate`` is the rule (pure: counts in, decision out); ``GuardedSite`` the
driver, an aiohttp site whose protocol factory wraps aiohttp's own request handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from agent.bridge.peer import peer_uid

__all__ = ["HEADER_DEADLINE", "KEEPALIVE_SECONDS", "ConnectionGate", "GuardedSite",
           "raise_file_limit"]  # fmt: skip

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
MAX_CONNECTIONS_PER_USER = 64  # a browser keeps ~6 per host; tabs and retries add some
HEADER_DEADLINE = 5.0  # seconds for the first request's headers
KEEPALIVE_SECONDS = 15.0
_END_OF_HEADERS = b"\r\n\r\n"


def _canned(status: str, code: str, details: str) -> bytes:
    body = f'{{"errorCode": "{code}", "details": "{details}"}}'.encode()
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


_FORBIDDEN_USER = _canned("403 Forbidden", "forbiddenUser", "agent of another user")
_BUSY = _canned("429 Too Many Requests", "rateLimited", "too many connections")


class ConnectionGate:
    """Which connections may stay open. Pure: the caller says who the peer is."""

    def __init__(self, own_uid: int, *, total: int = MAX_CONNECTIONS,
                 per_user: int = MAX_CONNECTIONS_PER_USER) -> None:  # fmt: skip
        self._own_uid, self._total, self._per_user = own_uid, total, per_user
        self._open: Counter[int | None] = Counter()

    def admit(self, uid: int | None) -> str | None:
        """Count the connection in and return None, or return why it is refused (then it
        is not counted). ``uid`` None: the kernel could not say (refused: on Linux the
        row exists for every live connection)."""
        if uid is None:
            return "peer user unknown"
        if uid != self._own_uid:
            return f"peer is user {uid}"
        if sum(self._open.values()) >= self._total:
            return "too many connections"
        if self._open[uid] >= self._per_user:
            return "too many connections from this user"
        self._open[uid] += 1
        return None

    def release(self, uid: int | None) -> None:
        if self._open[uid] > 0:
            self._open[uid] -= 1

    @property
    def open_connections(self) -> int:
        return sum(self._open.values())


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's request handler behind the gate: refused connections are aborted before
    the handler sees a byte; admitted ones are timed until their first headers end."""

    def __init__(self, inner: Any, gate: ConnectionGate, check_peer: bool,
                 header_deadline: float) -> None:  # fmt: skip
        self._inner, self._gate, self._check_peer = inner, gate, check_peer
        self._deadline = header_deadline
        self._uid: int | None = None
        self._admitted = False
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        if self._check_peer:
            self._uid = peer_uid((peer[0], peer[1]), (local[0], local[1])) if peer else None
            if self._uid is None and not os.path.exists("/proc/net/tcp"):
                self._uid = os.getuid()  # no socket table to ask here (not Linux)
        else:
            self._uid = os.getuid()
        refusal = self._gate.admit(self._uid)
        self._inner.connection_made(transport)  # its state must exist for connection_lost
        if refusal is not None:
            log.info("connection refused at accept: %s", refusal)
            # The documented answer, without reading the request: small enough for the
            # socket's buffer, so close() sends it and frees the descriptor at once.
            transport.write(_FORBIDDEN_USER if refusal.startswith("peer") else _BUSY)
            transport.close()
            return
        self._admitted = True
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._deadline, self._headers_late)

    def _headers_late(self) -> None:
        log.info("connection dropped: no complete request headers in %.0f s", self._deadline)
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return  # aborted: nothing reaches the handler
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEADERS in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return bool(self._inner.eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._admitted:
            self._gate.release(self._uid)
            self._admitted = False
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A loopback TCP site whose connections pass the gate first."""

    __slots__ = ("_check_peer", "_gate", "_header_deadline", "_host", "_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate, *,
        check_peer: bool = True, header_deadline: float = HEADER_DEADLINE,
    ) -> None:  # fmt: skip
        super().__init__(runner)
        self._host, self._port, self._gate = host, port, gate
        self._check_peer, self._header_deadline = check_peer, header_deadline

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        factory: Callable[[], asyncio.Protocol] = lambda: _GuardedProtocol(  # noqa: E731
            server(), self._gate, self._check_peer, self._header_deadline
        )
        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, backlog=self._backlog
        )


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one (what the gate's caps assume
    is there to spend); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft
