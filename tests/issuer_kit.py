"""The issuer as tests meet it: a real PostgreSQL cluster of their own on a private port,
real ``eid-issuer serve`` processes over HTTPS (the development TLS certificate, pinned),
the back-office API as the internet bank calls it, and tiny network middlemen (a CONNECT
proxy, a connection cutter)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.agent_process import BIN
from tests.bridge_kit import free_port
from tests.secrets_kit import remember

PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda p: int(p.parent.name),
    default=Path("/usr/lib/postgresql/15/bin"),
)  # the newest installed


@dataclass
class Postgres:
    port: int
    root: Path
    count: int = 0

    def new_database(self) -> str:
        """A fresh database URL (each test gets its own)."""
        self.count += 1
        name = f"issuer{self.count}_{os.getpid()}"
        subprocess.run(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "eid", name],
            check=True,
            capture_output=True,
        )
        return f"postgresql://eid@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """initdb + pg_ctl on a private port; as root, the cluster runs as ``postgres`` (initdb
    refuses root), in a folder of its own outside pytest's private temp tree."""
    root = Path(tempfile.mkdtemp(prefix="eid-pg-"))
    root.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run(
        [
            *as_user,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "eid",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_user,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(root / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield Postgres(port, root)
    finally:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


class IssuerProcess:
    """``eid-issuer serve --dev-tls`` with its own CA folder and database."""

    def __init__(
        self, ca_dir: Path, db: str, *extra: str, port: int | None = None, tls: bool = True
    ) -> None:
        self.ca_dir, self.db, self.tls = ca_dir, db, tls
        self.port = port or free_port()
        self.log = ca_dir.parent / f"issuer-{self.port}.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                str(BIN / "eid-issuer"),
                "serve",
                "--ca-dir",
                str(ca_dir),
                "--db",
                db,
                "--port",
                str(self.port),
                *(["--dev-tls"] if tls else []),
                *extra,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while "listening on" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"issuer did not start: {self.log.read_text()}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def tls_cert(self) -> Path:
        return self.ca_dir / "dev-tls.crt"

    @property
    def token(self) -> str:
        return (self.ca_dir / "backoffice.token").read_text().strip()

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls_cert))

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "default",
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        data = (
            body
            if isinstance(body, bytes)
            else (None if body is None else json.dumps(body).encode())
        )
        req = urllib.request.Request(  # noqa: S310 - our own https/http URL
            self.url + path, data=data, headers=headers, method=method
        )
        try:
            context = self._tls() if self.tls else None
            with urllib.request.urlopen(req, timeout=10, context=context) as resp:  # noqa: S310
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def order(self, personal_number: str, name: str = "Anna Andersson") -> tuple[str, str]:
        status, body = self.call(
            "POST", "/backoffice/v1/orders", {"personalNumber": personal_number, "name": name}
        )
        assert status == 201, body
        remember(str(body["activationCode"]))  # for the end-of-run secrets scan
        return str(body["orderId"]), str(body["activationCode"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log_file.close()

    def __enter__(self) -> IssuerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def agent_order(
    data_dir: Path,
    issuer_url: str,
    tls_cert: Path,
    personal_number: str,
    code: str,
    password: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``eid-agent enrol`` as a person types into it."""
    return subprocess.run(
        [
            str(BIN / "eid-agent"),
            "enrol",
            "--data-dir",
            str(data_dir),
            "--issuer",
            issuer_url,
            "--issuer-ca",
            str(tls_cert),
            "--lang",
            "en",
            "-v",
            "--config",
            str(data_dir.parent / "no-config.toml"),
            *extra,
        ],
        input=f"{personal_number}\n{code}\n{password}\n{password}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


# -- middlemen ------------------------------------------------------------------------------


@dataclass
class ConnectProxy:
    """A tiny HTTP CONNECT proxy on loopback that records what it was asked."""

    require_auth: str | None = None  # "user:password"
    seen: list[str] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = _listen(self._serve)
        self.port = self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            self.seen.append(f"{method} {target}")
            auth = headers.get("Proxy-Authorization", "")
            self.auth_headers.append(auth)
            if self.require_auth is not None:
                wanted = "Basic " + base64.b64encode(self.require_auth.encode()).decode()
                if auth != wanted:
                    client.sendall(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'Proxy-Authenticate: Basic realm="test"\r\n'
                        b"Content-Length: 0\r\n\r\n"
                    )
                    return
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pipe(client, upstream)

    def close(self) -> None:
        _stop_listening(self.sock)


def _stop_listening(sock: socket.socket) -> None:
    """Shut the listener down before closing it: close() alone does not wake the thread
    blocked in accept(), and the kernel socket goes on accepting on its port — a later
    test's connection reached such a left-over proxy and got its 407."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _listen(serve: Callable[[socket.socket], None]) -> socket.socket:
    """A loopback listener that hands each connection to ``serve`` in a thread of its own."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def accept() -> None:
        while True:
            try:
                client, _ = sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return sock


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Both ways until either side closes, resets or is silent 10 s: the tunnel ends, as
    a proxy's does (a reset once escaped here as a thread's traceback in a test run)."""
    while True:
        ready, _, _ = select.select([a, b], [], [], 10)
        if not ready:
            return
        for s in ready:
            try:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
            except OSError:
                return


class Cutter:
    """A plain-HTTP forwarder to ``port`` that passes the first request whose path contains
    ``cut_path`` on to the issuer, waits for its whole answer, and hangs up instead of
    delivering it (calling ``on_cut`` first): the issuer acted, the agent never heard."""

    def __init__(self, port: int, cut_path: str, on_cut: Callable[[], None] = lambda: None) -> None:
        self.port, self.cut_path, self.cuts, self.on_cut = port, cut_path, 0, on_cut
        self.sock = _listen(self._serve)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.port), timeout=10) as up:
            request = _read_message(client)
            if not request:
                return
            up.sendall(request)
            answer = _read_message(up)
            first_line = request.split(b"\r\n", 1)[0].decode("latin-1")
            if self.cut_path in first_line and self.cuts == 0:
                self.cuts += 1
                self.on_cut()  # e.g. the agent dies right then
                return  # the answer is dropped on the floor
            client.sendall(answer)

    def close(self) -> None:
        _stop_listening(self.sock)


def _read_message(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
