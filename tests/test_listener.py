"""The kernel's guarded listener in process: its gate as a rule, and a real aiohttp server
behind it over real TLS on loopback — connections that never say hello, never finish
their headers, or come too many from one address are dropped, and every one that ends is
counted out again."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from eidcore import listener
from eidcore.listener import ConnectionGate, caps_for, peer_key
from issuer.servecli import dev_tls


def test_the_gate_caps_in_all_and_per_peer() -> None:
    gate = ConnectionGate(total=4, per_peer=2)
    assert gate.admit("a") is None and gate.admit("a") is None
    assert gate.admit("a") == "too many connections from this peer"
    assert gate.admit("b") is None and gate.admit("c") is None
    assert gate.admit("d") == "too many connections"
    assert gate.open_connections == 4
    gate.release("a")
    gate.release("zzz")  # never admitted: nothing to release
    assert gate.open_connections == 3 and gate.admit("a") is None
    with pytest.raises(ValueError):
        ConnectionGate(total=2, per_peer=3)


def test_caps_leave_room_for_everything_else() -> None:
    assert caps_for(1024) == (896, 112)
    assert caps_for(1_048_576) == (16384, 256)
    assert caps_for(100) == (16, 8)


def test_a_peer_is_an_ipv4_address_or_an_ipv6_slash_64() -> None:
    assert peer_key("192.0.2.7") == "192.0.2.7"
    assert peer_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert peer_key("2001:db8:1:2:aaaa::1") == peer_key("2001:db8:1:2:bbbb::9")
    assert peer_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert peer_key("2001:db8:1:3::1") != peer_key("2001:db8:1:2::1")
    assert peer_key("fe80::1%eth0") == "fe80::/64"


def test_failed_accepts_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    clock = [100.0]
    try:
        listener.quiet_accept_errors(loop, interval=10.0, monotonic=lambda: clock[0])
        handler = loop.get_exception_handler()
        assert handler is not None
        context = {
            "message": "socket.accept() out of system resource",
            "exception": OSError(24, "Too many open files"),
        }
        with caplog.at_level(logging.ERROR, "eidcore.listener"):
            for _ in range(500):
                handler(loop, context)
            clock[0] += 11
            handler(loop, context)
        lines = [r.getMessage() for r in caplog.records if r.name == "eidcore.listener"]
        assert lines == [
            "accepting connections failed 1 times in the last 10 s: Too many open files",
            "accepting connections failed 500 times in the last 10 s: Too many open files",
        ]
    finally:
        loop.close()


@dataclass
class Served:
    port: int
    gate: ConnectionGate
    client_tls: ssl.SSLContext


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    cert, key = dev_tls(tmp_path, dt.datetime.now(dt.UTC))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"hello": True})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=2.0)
    await runner.setup()
    assert runner.server is not None
    gate = ConnectionGate(total=8, per_peer=3)
    server = await listener.serve(
        runner.server,
        "127.0.0.1",
        0,
        gate,
        tls=tls,
        handshake_deadline=0.5,
        header_deadline=0.5,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield Served(port, gate, ssl.create_default_context(cafile=str(cert)))
    finally:
        server.close()
        await runner.cleanup()


async def _get(served: Served) -> dict[str, bool]:
    connector = aiohttp.TCPConnector(ssl=served.client_tls)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"https://localhost:{served.port}/") as response,
    ):
        assert response.status == 200
        return dict(await response.json())


def _connect(served: Served, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", served.port))
    sock.settimeout(5)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def _settled(served: Served, expected: int) -> None:
    for _ in range(100):
        if served.gate.open_connections == expected:
            return
        await asyncio.sleep(0.02)
    assert served.gate.open_connections == expected


async def test_a_request_over_tls_is_served(served: Served) -> None:
    assert await _get(served) == {"hello": True}
    await _settled(served, 0)  # the client closed: counted out


async def test_no_hello_is_dropped_at_the_handshake_deadline(served: Served) -> None:
    sock = _connect(served)
    await _settled(served, 1)
    assert not await asyncio.to_thread(_closed_within, sock, 0.2)  # not at once
    assert await asyncio.to_thread(_closed_within, sock, 2.0)
    sock.close()
    await _settled(served, 0)


async def test_headers_never_finished_are_dropped_at_the_header_deadline(
    served: Served,
) -> None:
    def half_request() -> bool:
        raw = _connect(served)
        with served.client_tls.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # no blank line
            return _closed_within(sock, 2.0)

    assert await asyncio.to_thread(half_request)
    await _settled(served, 0)


async def test_too_many_from_one_address_are_closed_at_once(served: Served) -> None:
    held = [_connect(served) for _ in range(3)]
    await _settled(served, 3)
    extra = _connect(served)
    assert await asyncio.to_thread(_closed_within, extra, 0.3)  # over the share: at once
    other = _connect(served, source="127.0.0.2")  # another address has its own share
    await _settled(served, 4)
    for sock in (*held, extra, other):
        sock.close()
    await _settled(served, 0)
    assert await _get(served) == {"hello": True}
