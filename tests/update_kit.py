"""A real update repository on loopback for tests: release folders made with the real
release tools, a static file server that counts what it serves (and can misbehave on
purpose), and agents installed into a temporary per-user data dir."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer import release
from installer.bundle import build_bundle
from tests.agent_process import BIN, AgentProcess

Tamper = Callable[[bytes], bytes]


@dataclass
class Served:
    path: str
    status: int
    sent: int


@dataclass
class RepoServer:
    """Serves ``root`` as plain files, like any static web server, on 127.0.0.1."""

    root: Path
    log: list[Served] = field(default_factory=list)
    tamper: dict[str, Tamper] = field(default_factory=dict)  # path -> what to serve instead
    endless: set[str] = field(default_factory=set)  # paths answered with bytes forever
    trickle: set[str] = field(default_factory=set)  # answered at 1 byte/s, headers and all
    trickle_body: set[str] = field(default_factory=set)  # headers at once, then 1 byte/s
    garbage: set[str] = field(default_factory=set)  # paths answered with random bytes
    down: bool = False  # every request 503

    def __post_init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                # a test names the role: "targets.json" means the targets metadata, fetched
                # by version ("7.targets.json") in a repository of consistent snapshots;
                role = re.sub(
                    r"^/metadata/\d+\.(targets|snapshot)\.json$", r"/metadata/\1.json", path
                )
                # likewise a target by its hash ("<sha256>.eid-agent-1.0.0.tar.gz")
                role = re.sub(r"^/targets/[0-9a-f]{64}\.", "/targets/", role)
                if server.down:
                    return self._send(503, b"down", path)
                if role in server.endless:
                    return self._endless(path)
                file = (server.root / path.lstrip("/")).resolve()
                if file.is_dir():  # as static servers do: the folder's index page
                    file = file / "index.html"
                if server.root.resolve() not in file.parents or not file.is_file():
                    return self._send(404, b"not found", path)
                data = file.read_bytes()
                if role in server.tamper:
                    data = server.tamper[role](data)
                if role in server.garbage:
                    data = os.urandom(len(data))
                if role in server.trickle | server.trickle_body:
                    return self._trickle(data, path, headers_too=role in server.trickle)
                self._send(200, data, path)

            def _send(self, status: int, data: bytes, path: str) -> None:
                server.log.append(Served(path, status, len(data)))  # before the client sees it
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _endless(self, path: str) -> None:
                self.send_response(200)
                self.end_headers()
                sent = 0
                try:
                    while sent < 1 << 30:
                        self.wfile.write(b"\0" * 65536)
                        sent += 65536
                except OSError:
                    pass
                server.log.append(Served(path, 200, sent))

            def _trickle(self, data: bytes, path: str, *, headers_too: bool) -> None:
                head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                slow = head + data if headers_too else data
                sent = 0
                try:
                    if not headers_too:
                        self.wfile.write(head)
                    for byte in slow:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        sent += 1
                        time.sleep(1.0)
                except OSError:
                    pass
                server.log.append(Served(path, 200, sent))

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # a connection gone between select and accept must not block serve_forever (and
        # with it close's shutdown) in accept for good: a non-blocking accept skips it
        self.httpd.socket.setblocking(False)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def served(self, suffix: str) -> list[Served]:
        return [s for s in self.log if s.path.endswith(suffix) and s.status == 200]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Repo:
    """A release folder (keys + repository) and its server."""

    folder: Path
    server: RepoServer
    bundles: Path

    @property
    def root_json(self) -> Path:
        return self.folder / "repository" / "metadata" / "root.json"

    @property
    def metadata(self) -> Path:
        return self.folder / "repository" / "metadata"

    def bundle(self, version: str, *, broken: Callable[[Path], None] | None = None) -> Path:
        """A small agent-only bundle of the code under test, stamped ``version``."""
        out = self.bundles / version
        if not out.exists():
            build_bundle(out, version, self_contained=False)
            if broken is not None:
                broken(out)
        return out

    def publish(self, version: str, **policy: Any) -> release.PublishResult:
        return release.publish(self.folder, version, self.bundle(version), policy)

    def policy(self, **changes: Any) -> dict[str, Any]:
        return release.set_policy(self.folder, changes)


@contextmanager
def repository(tmp: Path) -> Iterator[Repo]:
    folder = tmp / "release"
    release.init(folder)
    server = RepoServer(folder / "repository")
    bundles = tmp / "bundles"
    bundles.mkdir()
    try:
        yield Repo(folder, server, bundles)
    finally:
        server.close()


def run_agent_cli(
    *args: str, timeout: float = 120, program: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program or BIN / "eid-agent"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def install(repo: Repo, data_dir: Path, *extra: str) -> Path:
    """``eid-agent install`` from the repository; returns the install root."""
    result = run_agent_cli(
        "install",
        "--data-dir",
        str(data_dir),
        "--repository",
        repo.server.url,
        "--trust",
        str(repo.root_json),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return data_dir / "install"


def installed_agent(data_dir: Path, *extra: str) -> AgentProcess:
    """The installed agent, started the way the desktop entry starts it (``current``)."""
    return AgentProcess(
        data_dir,
        "--no-cards",
        "--update-tick",
        "0.2",
        *extra,
        program=data_dir / "install" / "current" / "eid-agent",
    )


def current_version(data_dir: Path) -> str:
    return Path(str((data_dir / "install" / "current").readlink())).name


def update_state(data_dir: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((data_dir / "updater.json").read_text())
    except FileNotFoundError:
        return {}
    return doc


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def info(agent: AgentProcess) -> dict[str, Any]:
    status, body = agent.request("GET", "/v1/info")
    assert status == 200, body
    return body


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


PYTHON = sys.executable
