"""`./dev demo` as a newcomer runs it: it starts, a Ctrl-C at the agent's question cancels
the question and leaves the website up, and stopping it leaves nothing behind — no folder
holding the demo credential and the demo CA's private keys, no listener."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.bridge_kit import free_port, new_nonce

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parent.parent
BASH = shutil.which("bash") or "/bin/bash"


def _wait(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start_order(agent_port: int, site_port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{agent_port}/v1/auth", data=json.dumps({"nonce": new_nonce()}).encode(),
        headers={"Content-Type": "application/json", "X-Eid-Agent": "1",
                 "Origin": f"http://localhost:{site_port}"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return str(json.loads(response.read())["orderRef"])


def test_the_demo_runs_cancels_a_question_and_cleans_up(tmp_path: Path) -> None:
    agent_port, site_port = free_port(), free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "EID_DEMO_AGENT_PORT": str(agent_port),
           "EID_DEMO_SITE_PORT": str(site_port)}  # fmt: skip
    env.pop("CI", None)
    # a process group of its own, as a terminal's foreground job: Ctrl-C reaches all of it
    demo = subprocess.Popen([BASH, str(ROOT / "dev"), "demo"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, text=True)  # fmt: skip
    try:
        _wait(lambda: _listening(agent_port) and _listening(site_port), "the demo starts")
        [folder] = list(tmp_path.glob("eid-demo.*"))
        assert (folder / "issuer-ca").is_dir()
        _start_order(agent_port, site_port)
        time.sleep(1.0)  # the question is on the console
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C at the question
        time.sleep(1.5)
        assert demo.poll() is None and _listening(agent_port), "Ctrl-C at a question stops nothing"
        with urllib.request.urlopen(f"http://127.0.0.1:{site_port}/", timeout=10) as page:
            assert page.status == 200  # the website is still up
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C with no question: the demo stops
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert "unbound variable" not in output and "Traceback" not in output, output
    assert list(tmp_path.glob("eid-demo.*")) == [], "the demo left its folder behind"
    _wait(lambda: not _listening(site_port) and not _listening(agent_port), "nothing listens")
