"""A real ``eid-agent run`` process for tests, with its console on pipes."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.bridge_kit import free_port

BIN = Path(sys.executable).parent


class AgentProcess:
    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        program: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.origin = "https://bank.example"  # what start_auth and collect send
        program = program or BIN / "eid-agent"
        if "--config" not in extra:  # never the person's own settings
            extra = (*extra, "--config", str(data_dir.parent / "agent-config.toml"))
        self.proc = subprocess.Popen(
            [
                str(program),
                "run",
                "--ui",
                "console",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
                "--lang",
                "en",
                "-vv",
                *extra,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: list[str]) -> None:
        while True:
            chunk = stream.read(1)
            if not chunk:
                return
            sink.append(chunk)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for_output(
        self, text: str, *, count: int = 1, timeout: float = 15.0, stream: str = "stdout"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if getattr(self, stream).count(text) >= count:
                return
            if self.proc.poll() is not None and getattr(self, stream).count(text) < count:
                break
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not seen; stdout={self.stdout!r} stderr={self.stderr!r}")

    def ready(self) -> AgentProcess:
        self.wait_for_output("listening on", stream="stderr")
        return self

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        origin: str | None = "https://bank.example",
        host: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "X-Eid-Agent": "1"}
        if origin:
            headers["Origin"] = origin
        if host:
            headers["Host"] = host
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def start_auth(self, **fields: Any) -> str:
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = self.request(
            "POST", "/v1/auth", {"nonce": nonce, **fields}, origin=self.origin
        )
        assert status == 201, body
        return str(body["orderRef"])

    def collect(self, ref: str) -> dict[str, Any]:
        status, body = self.request("POST", "/v1/collect", {"orderRef": ref}, origin=self.origin)
        assert status == 200, body
        return body

    def wait_status(self, ref: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.collect(ref)
            if state in (body["status"], body.get("hintCode")):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"still {body}; stdout={self.stdout!r}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def __enter__(self) -> AgentProcess:
        return self

    def successor(self) -> int | None:
        """The pid of the agent that took over after an update (not our child), if any."""
        try:
            pid = int((self.data_dir / "agent.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if pid != self.proc.pid and alive(pid) else None

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # kept for the end-of-run secrets scan (tests/secrets_kit.py)
        log = self.data_dir.parent / f"agent-{self.proc.pid}.log"
        with contextlib.suppress(OSError):
            log.write_text(f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}\n")
        pid = self.successor()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)


def alive(pid: int) -> bool:
    """Running and not a zombie (a reparented child may wait a moment to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
