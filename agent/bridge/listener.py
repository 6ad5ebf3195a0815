"""The bridge's listening socket, guarded before any request is read (BRIDGE-SECURITY 10).

Another user of the computer can reach the loopback port. Checking their user per request
(the app's middleware) came too late: ~1,100 connections that never finished their
headers held the agent's file descriptors, and the owner's own browser then timed out.
So every accepted connection passes the kernel's gate (eidcore/listener.py), keyed by the
peer's OS user (the kernel's socket table, agent/bridge/peer.py):

- another user's connection is closed at once, with a 403, before a byte is read;
- at most ``MAX_CONNECTIONS_PER_USER`` open connections per user, and
  ``MAX_CONNECTIONS`` in all; past them a new one gets a 429 and is closed;
- the first request's headers must be complete within ``HEADER_DEADLINE`` seconds (a
  half-open connection is dropped), and an idle keep-alive connection ends after
  ``KEEPALIVE_SECONDS`` (aiohttp's own timer).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from aiohttp import web

from agent.bridge.peer import peer_uid
from eidcore.listener import ConnectionGate, Peer, raise_file_limit, serve

__all__ = ["HEADER_DEADLINE", "KEEPALIVE_SECONDS", "GuardedSite", "bridge_gate", "raise_file_limit"]

MAX_CONNECTIONS = 256
MAX_CONNECTIONS_PER_USER = 64  # a browser keeps ~6 per host; tabs and retries add some
HEADER_DEADLINE = 5.0  # seconds for the first request's headers
KEEPALIVE_SECONDS = 15.0


def _canned(status: str, code: str, details: str) -> bytes:
    body = f'{{"errorCode": "{code}", "details": "{details}"}}'.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


_FORBIDDEN_USER = _canned("403 Forbidden", "forbiddenUser", "agent of another user")
_BUSY = _canned("429 Too Many Requests", "rateLimited", "too many connections")


def bridge_gate() -> ConnectionGate:
    """One gate for both loopback addresses: a user's share counts them together."""
    return ConnectionGate(total=MAX_CONNECTIONS, per_peer=MAX_CONNECTIONS_PER_USER)


def _refusal(why: str) -> bytes:
    return _FORBIDDEN_USER if why.startswith("peer") else _BUSY


def _by_user(check_peer: bool) -> Callable[[asyncio.BaseTransport], Peer]:
    own = os.getuid()

    def classify(transport: asyncio.BaseTransport) -> Peer:
        if not check_peer:
            return own, None
        peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        uid = peer_uid((peer[0], peer[1]), (local[0], local[1])) if peer else None
        if uid is None and not os.path.exists("/proc/net/tcp"):
            uid = own  # no socket table to ask here (not Linux)
        if uid is None:  # on Linux the row exists for every live connection
            return None, "peer user unknown"
        if uid != own:
            return None, f"peer is user {uid}"
        return uid, None

    return classify


class GuardedSite(web.BaseSite):
    """A loopback TCP site whose connections pass the gate first."""

    __slots__ = ("_check_peer", "_gate", "_header_deadline", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        gate: ConnectionGate,
        *,
        check_peer: bool = True,
        header_deadline: float = HEADER_DEADLINE,
    ) -> None:
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
        self._server = await serve(
            server,
            self._host,
            self._port,
            self._gate,
            backlog=self._backlog,
            classify=_by_user(self._check_peer),
            header_deadline=self._header_deadline,
            refusal=_refusal,
        )
