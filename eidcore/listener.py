"""A listening socket guarded before any request is read: the bridge's, the relay's and the
issuer's. asyncio only (the servers above it are aiohttp; the kernel speaks no HTTP).

Connections cost a file descriptor from the moment they are accepted, long before an HTTP
server sees a request. Measured at the relay with the 1,024 open files a service gets by
default: 1,100 TCP connections that never sent a TLS hello starved every site's
``/rp/v1/auth`` (no answer within 8 s), and asyncio's accept loop logged 16,762
tracebacks (7 MB) meanwhile. So every accepted connection passes here first:

- **a cap**: at most ``total`` open connections, at most ``per_peer`` per peer (an IPv4
  address, an IPv6 /64: one host's share); past them a new one is closed at once, which
  frees its descriptor — the gate's caps are sized to the file limit, which is raised to
  the hard one at start (``raise_file_limit``), so accept itself never runs out;
- **a TLS-handshake deadline** (the handshake is done here, with ``start_tls``, so a
  connection that never says hello is counted and dropped like any other);
- **a header deadline**: the first request's headers must be complete within
  ``header_deadline`` seconds of the connection (or of its handshake); later requests on a
  kept-alive connection are the server's keep-alive timer's;
- accept failures (``EMFILE`` and the like) logged once per interval, with a count
  (``quiet_accept_errors``), not one traceback per failure.

``ConnectionGate`` is the rule (pure: keys in, decision out); ``GuardedProtocol`` the
driver, wrapping the server's own protocol.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import ssl
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

__all__ = [
    "HANDSHAKE_DEADLINE",
    "HEADER_DEADLINE",
    "MAX_CONNECTIONS",
    "ConnectionGate",
    "GuardedProtocol",
    "Peer",
    "by_address",
    "caps_for",
    "peer_key",
    "quiet_accept_errors",
    "raise_file_limit",
    "serve",
    "serve_public",
]

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16384  # at most; fewer when the file limit is lower (caps_for)
MAX_PER_PEER = 256  # a site's server keeps a pool of connections; an agent one or two
RESERVED_FILES = 128  # descriptors kept for the database, logs and outbound connections
HANDSHAKE_DEADLINE = 10.0  # seconds for a TLS handshake
HEADER_DEADLINE = 10.0  # seconds for the first request's headers
ACCEPT_ERROR_INTERVAL = 10.0  # seconds between two log lines about failed accepts
_END_OF_HEADERS = b"\r\n\r\n"

# Who a connection is from, and a refusal the gate does not decide (the bridge refuses
# another OS user): (key, None) or (None, why).
Peer = tuple[Hashable | None, str | None]


class ConnectionGate:
    """Which connections may stay open. Pure: the caller says who the peer is."""

    def __init__(self, *, total: int, per_peer: int) -> None:
        if not 0 < per_peer <= total:
            raise ValueError("caps must be positive, a peer's share at most the total")
        self._total, self._per_peer = total, per_peer
        self._open: Counter[Hashable] = Counter()
        self._count = 0

    def admit(self, key: Hashable) -> str | None:
        """Count the connection in and return None, or return why it is refused (then it
        is not counted)."""
        if self._count >= self._total:
            return "too many connections"
        if self._open[key] >= self._per_peer:
            return "too many connections from this peer"
        self._open[key] += 1
        self._count += 1
        return None

    def release(self, key: Hashable) -> None:
        if self._open[key] > 0:
            self._open[key] -= 1
            self._count -= 1
            if not self._open[key]:
                del self._open[key]

    @property
    def open_connections(self) -> int:
        return self._count


def caps_for(file_limit: int) -> tuple[int, int]:
    """(total, per peer) for a process allowed ``file_limit`` open files: the total leaves
    ``RESERVED_FILES`` for everything else; one peer gets an eighth of it, at most
    ``MAX_PER_PEER``."""
    total = max(16, min(MAX_CONNECTIONS, file_limit - RESERVED_FILES))
    return total, max(8, min(MAX_PER_PEER, total // 8))


def peer_key(host: str) -> str:
    """The share a peer address counts against: an IPv4 address (also when it comes as an
    IPv4-mapped IPv6 address), or an IPv6 /64 (one host's usual prefix: a host can use a
    fresh address in its /64 for every connection)."""
    if ":" not in host:
        return host  # an IPv4 address as the kernel writes it: already its own key
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a UNIX socket's name, say: counted as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def by_address(transport: asyncio.BaseTransport) -> Peer:
    """The usual classification: the peer's address share, no other refusal."""
    peer = transport.get_extra_info("peername")
    return (peer_key(str(peer[0])) if peer else "?"), None


class _Tally:
    """Refusals at accept, logged once per interval with their count: a flood of
    connections writes a line every ``ACCEPT_ERROR_INTERVAL`` seconds, not one each."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._since = -ACCEPT_ERROR_INTERVAL
        self._counts: Counter[str] = Counter()

    def note(self, why: str) -> None:
        self._counts[why] += 1
        now = self._monotonic()
        if now - self._since >= ACCEPT_ERROR_INTERVAL:
            said = ", ".join(f"{n} × {reason}" for reason, n in self._counts.most_common())
            log.info("connections refused at accept: %s", said)
            self._since, self._counts = now, Counter()


_REFUSALS = _Tally()


class GuardedProtocol(asyncio.Protocol):
    """The server's protocol behind the gate. A refused connection is closed before the
    server sees a byte (with ``refusal``'s answer on a plain listener); an admitted one
    does its TLS handshake here, within ``handshake_deadline``, then must complete its
    first headers within ``header_deadline``."""

    def __init__(
        self,
        inner: asyncio.Protocol,
        gate: ConnectionGate,
        *,
        classify: Callable[[asyncio.BaseTransport], Peer] = by_address,
        tls: ssl.SSLContext | None = None,
        handshake_deadline: float = HANDSHAKE_DEADLINE,
        header_deadline: float = HEADER_DEADLINE,
        refusal: Callable[[str], bytes] | None = None,
    ) -> None:
        self._inner, self._gate, self._classify = inner, gate, classify
        self._tls, self._handshake_deadline = tls, handshake_deadline
        self._header_deadline, self._refusal = header_deadline, refusal
        self._key: Hashable | None = None
        self._admitted = False
        self._connected = False  # the inner protocol has its transport
        self._lost = False
        self._early = bytearray()  # application data before the inner protocol is connected
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._handshaking: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        key, refusal = self._classify(transport)
        if refusal is None:
            refusal = self._gate.admit(key)
        if refusal is not None:
            _REFUSALS.note(refusal)
            if self._tls is None and self._refusal is not None:
                # small enough for the socket's buffer: close() sends it and frees the
                # descriptor at once
                transport.write(self._refusal(refusal))
            transport.close()
            return
        self._key, self._admitted = key, True
        if self._tls is None:
            self._connect(transport)
        else:
            transport.pause_reading()  # start_tls takes it from here, before any byte
            # held here: the loop keeps only a weak reference to a task
            self._handshaking = asyncio.get_running_loop().create_task(self._handshake(transport))

    async def _handshake(self, raw: asyncio.Transport) -> None:
        assert self._tls is not None
        loop = asyncio.get_running_loop()
        try:
            secured = await loop.start_tls(
                raw,
                self,
                self._tls,
                server_side=True,
                ssl_handshake_timeout=self._handshake_deadline,
            )
        except Exception as exc:
            # no hello, a wrong one, or too slow: start_tls has closed the connection
            log.debug("TLS handshake failed: %s", type(exc).__name__)
            self._release()
            return
        if self._lost or secured is None:
            self._release()
            return
        self._connect(secured)

    def _connect(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._connected = True
        self._inner.connection_made(transport)
        self._timer = asyncio.get_running_loop().call_later(
            self._header_deadline, self._headers_late
        )
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.data_received(early)

    def _headers_late(self) -> None:
        log.info("connection dropped: no complete request headers in %.0f s", self._header_deadline)
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return  # refused: nothing reaches the server
        if not self._connected:
            self._early += data  # the handshake finished; our continuation has not run
            return
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEADERS in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if not self._connected:
            return None
        return bool(self._inner.eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release()
        if self._connected:
            self._connected = False
            self._inner.connection_lost(exc)

    def _release(self) -> None:
        if self._admitted:
            self._admitted = False
            self._gate.release(self._key)

    def pause_writing(self) -> None:
        if self._connected:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._connected:
            self._inner.resume_writing()


async def serve(
    inner: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    gate: ConnectionGate,
    *,
    backlog: int = 512,
    **options: Any,
) -> asyncio.Server:
    """Listen on ``host``:``port``; each connection a ``GuardedProtocol`` over ``inner()``
    (``options``: its keywords). Raises: OSError (the address cannot be bound)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: GuardedProtocol(inner(), gate, **options), host, port, backlog=backlog
    )


async def serve_public(
    inner: Callable[[], asyncio.Protocol], host: str, port: int, **options: Any
) -> asyncio.Server:
    """``serve`` for a server facing the internet (the relay, the issuer): the file limit
    raised to the hard one, the caps sized to it, failed accepts logged once a while."""
    quiet_accept_errors(asyncio.get_running_loop())
    total, per_peer = caps_for(raise_file_limit())
    gate = ConnectionGate(total=total, per_peer=per_peer)
    return await serve(inner, host, port, gate, **options)


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


def quiet_accept_errors(
    loop: asyncio.AbstractEventLoop,
    *,
    interval: float = ACCEPT_ERROR_INTERVAL,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Log asyncio's failed accepts (out of descriptors, buffers, memory: it retries by
    itself a second later) once per ``interval`` with how many there were, instead of a
    traceback each; every other loop error as before."""
    previous = loop.get_exception_handler()
    state = {"since": -interval, "count": 0}

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if not message.startswith("socket.accept() out of system resource"):
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        state["count"] += 1
        now = monotonic()
        if now - state["since"] >= interval:
            exc = context.get("exception")
            log.error(
                "accepting connections failed %d times in the last %.0f s: %s",
                state["count"],
                interval,
                exc.strerror if isinstance(exc, OSError) else exc,
            )
            state["since"], state["count"] = now, 0

    loop.set_exception_handler(handle)
