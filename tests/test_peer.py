"""Finding the OS user behind a loopback connection, on real sockets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.bridge.peer import diag_request, diag_uid, peer_uid, socket_owner


@pytest.fixture(params=[("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)])
def connection(request: pytest.FixtureRequest) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    host, family = request.param
    with socket.socket(family) as server, socket.socket(family) as client:
        server.bind((host, 0))
        server.listen()
        client.connect(server.getsockname()[:2])
        accepted, _ = server.accept()
        with accepted:
            yield accepted.getpeername()[:2], accepted.getsockname()[:2]


def test_peer_uid_is_ours(connection: tuple[tuple[str, int], tuple[str, int]]) -> None:
    peer, local = connection
    assert peer_uid(peer, local) == os.getuid()


def test_proc_table_says_the_same(connection: tuple[tuple[str, int], tuple[str, int]]) -> None:
    peer, local = connection
    name = "tcp6" if ":" in peer[0] else "tcp"
    assert socket_owner(Path("/proc/net", name).read_text(), peer, local) == os.getuid()


def test_unknown_socket_is_none(connection: tuple[tuple[str, int], tuple[str, int]]) -> None:
    _, local = connection
    gone = ("127.0.0.1" if "." in local[0] else "::1", 1)
    assert peer_uid(gone, local) is None


def test_reply_parsing_is_defensive() -> None:
    assert diag_uid(b"") is None
    assert diag_uid(b"\x00" * 16) is None  # header only
    request = diag_request(("127.0.0.1", 5000), ("127.0.0.1", 24721))
    assert len(request) == 16 + 8 + 48
