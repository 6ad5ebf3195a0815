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


def _kill_left_behind(tmp_path: Path) -> None:
    """A demo killed mid-test cannot clean up: its relay and site run in sessions of
    their own (setsid), so they are found by the folder they were started with."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(tmp_path).encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


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
        f"http://127.0.0.1:{agent_port}/v1/auth",
        data=json.dumps({"nonce": new_nonce()}).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Eid-Agent": "1",
            "Origin": f"http://localhost:{site_port}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return str(json.loads(response.read())["orderRef"])


def test_the_demo_runs_cancels_a_question_and_cleans_up(tmp_path: Path) -> None:
    agent_port, site_port = free_port(), free_port()
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "EID_DEMO_AGENT_PORT": str(agent_port),
        "EID_DEMO_SITE_PORT": str(site_port),
    }
    env.pop("CI", None)
    # a process group of its own, as a terminal's foreground job: Ctrl-C reaches all of it
    demo = subprocess.Popen(
        [BASH, str(ROOT / "dev"), "demo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        text=True,
    )
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
            _kill_left_behind(tmp_path)
    assert "unbound variable" not in output and "Traceback" not in output, output
    assert list(tmp_path.glob("eid-demo.*")) == [], "the demo left its folder behind"
    _wait(lambda: not _listening(site_port) and not _listening(agent_port), "nothing listens")


def test_the_demos_second_door(tmp_path: Path) -> None:
    """The demo's relay door as a newcomer without a desktop uses it: the site's server
    starts the order at the demo's relay, the link is opened by hand with the command the
    demo prints, the running console agent asks for the password, says where to go back,
    and the browser that goes there is logged in as Anna."""
    import http.cookiejar
    import re
    import shlex
    import threading

    agent_port, site_port, relay_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "EID_DEMO_AGENT_PORT": str(agent_port),
        "EID_DEMO_SITE_PORT": str(site_port),
        "EID_DEMO_RELAY_PORT": str(relay_port),
    }
    for name in ("CI", "DISPLAY", "WAYLAND_DISPLAY"):  # no desktop: nothing is registered
        env.pop(name, None)
    demo = subprocess.Popen(
        [BASH, str(ROOT / "dev"), "demo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        text=True,
    )
    assert demo.stdout is not None and demo.stdin is not None
    said: list[str] = []
    stream = demo.stdout
    reader = threading.Thread(target=lambda: said.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    site = f"http://localhost:{site_port}"
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )

    def post(path: str, body: object) -> dict[str, object]:
        request = urllib.request.Request(  # noqa: S310 - the demo site on loopback
            site + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with browser.open(request, timeout=20) as response:
            return dict(json.loads(response.read()))

    try:
        _wait(
            lambda: all(_listening(p) for p in (agent_port, site_port, relay_port)),
            "the demo starts",
        )
        _wait(lambda: any("open one by hand" in line for line in said), "it says how")
        [how] = [line for line in said if "open one by hand" in line]
        command = shlex.split(how.split("with", 1)[1].strip().rstrip(")"))
        browser.open(site + "/", timeout=20).close()  # the session's cookie
        link = str(post("/api/relay/start", {"type": "auth"})["link"])
        assert link.startswith("eid-agent:///?")
        handed = subprocess.run(
            [
                command[0] if command[0] != "eid-agent" else str(ROOT / ".venv/bin/eid-agent"),
                "open",
                link,
                *command[3:],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert handed.returncode == 0, handed.stderr
        _wait(
            lambda: any("wants you to identify yourself" in line for line in said), "the agent asks"
        )
        demo.stdin.write("demo-password\n")
        demo.stdin.flush()
        _wait(lambda: any("Go back to the website:" in line for line in said), "it says where")
        [back] = re.findall(r"Go back to the website: (\S+)", "".join(said))
        with browser.open(back, timeout=20) as page:  # the person's browser goes back
            assert "relay=returned" in page.url
        collected = post("/api/relay/collect", {})
        assert collected["status"] == "complete", collected
        result = collected["result"]
        assert isinstance(result, dict) and result["person"]["personalNumber"] == "198112189876"
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            _kill_left_behind(tmp_path)
    reader.join(timeout=10)
    output = "".join(said)
    assert "Traceback" not in output and "unbound variable" not in output, output
    assert list(tmp_path.glob("eid-demo.*")) == [], "the demo left its folder behind"
    _wait(
        lambda: not any(_listening(p) for p in (agent_port, site_port, relay_port)),
        "nothing listens",
    )
