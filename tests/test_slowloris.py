"""Half-open connections against the real servers, as the issue measured them: a relay (and
an issuer) started with the 1,024 open files a service gets, and 1,100 TCP connections
that never send a TLS hello. Sites must still be answered at once, and the log must not
fill with tracebacks."""

from __future__ import annotations

import datetime as dt
import os
import resource
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import rp
from issuer import CertificateAuthority
from issuer.servecli import dev_tls
from tests.agent_process import BIN
from tests.bridge_kit import free_port
from tests.relay_process_kit import CA, party_certificate, write_config

pytestmark = pytest.mark.slow

# Opens N connections from each source address and sends nothing; prints how many the
# kernel let it open, then holds them.
_HOLDER = """
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, per_source, sources = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
held = []
for source in sources:
    for _ in range(per_source):
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        held.append(s)
print(len(held), flush=True)
time.sleep(60)
"""


def _limited(soft: int, hard: int | None) -> Callable[[], None]:
    def apply() -> None:
        current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, current_hard if hard is None else hard))

    return apply


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "tls").mkdir()
    return dev_tls(tmp_path / "tls", dt.datetime.now(dt.UTC))


def _start(command: list[str], log: Path, soft: int, hard: int | None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_limited(soft, hard),
        )
    deadline = time.monotonic() + 30
    while "listening on" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(log.read_text(errors="replace"))
        time.sleep(0.05)
    return proc


def _relay(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path], hard: int | None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``eid-relay serve`` over TLS with 1,024 open files (``hard``: its hard limit too,
    else the machine's); the process, its port and its log."""
    config = write_config(tmp_path / "relay", ca)
    port = free_port()
    log = tmp_path / "relay.log"
    argv = [
        str(BIN / "eid-relay"),
        "--lang",
        "en",
        "serve",
        "--config",
        str(config),
        "--db",
        f"sqlite:///{tmp_path / 'relay.db'}",
        "--port",
        str(port),
        "--tls-cert",
        str(tls[0]),
        "--tls-key",
        str(tls[1]),
        "--client-ca",
        str(config.parent / CA),
    ]
    return _start(argv, log, 1024, hard), port, log


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _hold(
    holders: list[subprocess.Popen[str]], port: int, per_source: int, sources: list[str]
) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(port), str(per_source), ",".join(sources)],
        stdout=subprocess.PIPE,
        text=True,
    )
    holders.append(proc)
    assert proc.stdout is not None
    return int(proc.stdout.readline())


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize(
    ("hard", "sources"),
    [
        (None, ["127.0.0.2"]),  # the hard limit is the machine's: raised to at start
        (1024, ["127.0.0.2"]),  # soft = hard = 1,024: the caps keep accept from failing
        (None, [f"127.0.0.{n}" for n in range(2, 13)]),  # 100 each from 11 addresses
    ],
    ids=["one-address", "hard-1024", "eleven-addresses"],
)
def test_silent_connections_starve_no_site(
    tmp_path: Path,
    ca: CertificateAuthority,
    tls: tuple[Path, Path],
    holders: list[subprocess.Popen[str]],
    hard: int | None,
    sources: list[str],
) -> None:
    relay, port, log = _relay(tmp_path, ca, tls, hard)
    try:
        per_source = 1100 // len(sources)
        assert _hold(holders, port, per_source, sources) == per_source * len(sources)
        certificate = party_certificate(tmp_path / "relay" / "relay.toml")
        api = rp.RelayApi(f"https://127.0.0.1:{port}", certificate, ca_file=tls[0], timeout=8)
        started = time.monotonic()
        answer = api.auth("192.0.2.1")
        assert time.monotonic() - started < 2, "the site waited"
        assert api.collect(answer["orderRef"])["status"] == "pending"
        if hard == 1024:
            assert _open_files(relay.pid) < 1024  # the caps: 896 in all, 112 per address
        elif len(sources) == 1:
            assert _open_files(relay.pid) < 300  # one address's share: 256
    finally:
        relay.terminate()
        relay.wait(timeout=20)
    said = log.read_text(errors="replace")
    assert "Traceback" not in said and "accepting connections failed" not in said, said[-3000:]
    assert len(said) < 20_000, len(said)


def test_the_issuer_is_guarded_the_same_way(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    log = tmp_path / "issuer.log"
    issuer = _start(
        [
            str(BIN / "eid-issuer"),
            "serve",
            "--ca-dir",
            str(tmp_path / "ca"),
            "--db",
            f"sqlite:///{tmp_path / 'issuer.db'}",
            "--port",
            str(port),
            "--dev-tls",
        ],
        log,
        1024,
        1024,
    )
    try:
        assert _hold(holders, port, 1100, ["127.0.0.2"]) == 1100
        tls = ssl.create_default_context(cafile=str(tmp_path / "ca" / "dev-tls.crt"))
        started = time.monotonic()
        with urllib.request.urlopen(
            f"https://localhost:{port}/health", timeout=8, context=tls
        ) as response:
            assert response.status == 200
        assert time.monotonic() - started < 2
    finally:
        issuer.terminate()
        issuer.wait(timeout=20)
    said = log.read_text(errors="replace")
    assert "Traceback" not in said, said[-3000:]


def test_malformed_http_is_one_log_line(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path]
) -> None:
    """What aiohttp refuses before the relay's code sees a request (a bad request line, a
    header over 8 kB, a chunk size that overflows) it logged with the parser's traceback,
    ~600 bytes a request anyone can send; now one line each."""
    relay, port, log = _relay(tmp_path, ca, tls, None)
    client = ssl.create_default_context(cafile=str(tls[0]))
    bad = [
        b"POST /rp/v6.0/auth\n HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /rp/v6.0/auth HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n",
        b"POST /rp/v6.0/auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"F" * 20
        + b"\r\n",
        b"POST /rp/v6.0/auth HTTP/9.9\r\nHost: x\r\n\r\n",
    ]
    try:
        for data in bad:
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                client.wrap_socket(raw, server_hostname="localhost") as sock,
            ):
                sock.sendall(data)
                sock.settimeout(5)
                assert sock.recv(100).startswith(b"HTTP/1.")  # answered 400, not dropped
    finally:
        relay.terminate()
        relay.wait(timeout=20)
    said = log.read_text(errors="replace")
    errors = [line for line in said.splitlines() if "aiohttp.server" in line]
    assert len(errors) == len(bad) and "Traceback" not in said, said[-3000:]
