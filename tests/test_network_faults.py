"""The issuer as the network may present it: not there, answering garbage, or trickling
one byte a second. Each ends on its catalogue message, nothing is stored, and the same
order goes through once the fault clears."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.credentials import CredentialStore
from tests.bridge_kit import free_port
from tests.conftest import PASSWORD
from tests.issuer_kit import IssuerProcess, agent_order

pytestmark = pytest.mark.slow

PNR = "198112189876"


@contextmanager
def faulty_server(mode: str) -> Iterator[str]:
    """An HTTP server on loopback that answers every request with ``garbage``, or
    ``trickle``s a valid-looking answer at one byte a second."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve(client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            try:
                client.recv(65536)
                if mode == "garbage":
                    client.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n\x00\xffnot json at all"
                    )
                    return
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
                for byte in answer:
                    if stop.is_set():
                        return
                    client.sendall(bytes([byte]))
                    time.sleep(1)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def _unused_port() -> int:
    return free_port()


@pytest.mark.parametrize("fault", ["unreachable", "garbage", "trickle"])
def test_an_issuer_fault_is_told_and_the_order_goes_through_after(
    tmp_path: Path, fault: str
) -> None:
    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'i.db'}") as issuer:
        _, code = issuer.order(PNR)
        data = tmp_path / "agent"
        started = time.monotonic()
        if fault == "unreachable":
            failed = agent_order(
                data, f"http://127.0.0.1:{_unused_port()}", issuer.tls_cert, PNR, code, PASSWORD
            )
        else:
            with faulty_server(fault) as url:
                failed = agent_order(data, url, issuer.tls_cert, PNR, code, PASSWORD)
        took = time.monotonic() - started
        assert failed.returncode == 1
        assert "[10006] Communication error" in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr and PASSWORD not in failed.stderr
        assert took < 60  # a trickle is cut off by the overall deadline, not waited out
        assert CredentialStore(data).credentials() == []
        done = agent_order(data, issuer.url, issuer.tls_cert, PNR, code, PASSWORD)
        assert done.returncode == 0, done.stderr  # the fault cleared: the same code works
        [info] = CredentialStore(data).credentials()
        assert str(info.owner.personal_number) == PNR
