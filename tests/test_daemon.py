"""``eid-agent run`` as a real process: binding, signals, and the console UI driven through
its stdin the way a person (or a script) would."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.bridge.peer import _hex_address
from agent.credentials import CredentialStore
from agent.ui.console import visible
from tests.agent_process import AgentProcess
from tests.conftest import ANNA, BERTIL, FAST_KDF, PASSWORD, MakeToken

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tmp_path: Path, make_token: MakeToken) -> Path:
    CredentialStore(tmp_path / "data", kdf=FAST_KDF).add(make_token(ANNA))
    return tmp_path / "data"


def _listeners(port: int) -> set[str]:
    """Local addresses of listening sockets on ``port`` (state 0A = LISTEN)."""
    found = set()
    for name in ("tcp", "tcp6"):
        for line in Path("/proc/net", name).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):
                found.add(fields[1])
    return found


def test_binds_loopback_only_and_stops_cleanly_on_sigterm(data_dir: Path) -> None:
    with AgentProcess(data_dir) as agent:
        agent.ready()
        assert _listeners(agent.port) == {
            _hex_address("127.0.0.1", agent.port),
            _hex_address("::1", agent.port),
        }
        assert agent.stop(signal.SIGTERM) == 0
        assert "stopping" in agent.stderr
        assert _listeners(agent.port) == set()


def test_port_taken_is_a_clear_error(data_dir: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with AgentProcess(data_dir, port=port) as agent:
            assert agent.proc.wait(timeout=15) == 1
            assert f"port {port} is already in use" in agent.stderr
            assert "Traceback" not in agent.stderr


def test_one_agent_per_person(data_dir: Path) -> None:
    """A second agent on the same data folder stops at once, naming the first (a
    different port does not get around it); when the first stops, the lock is free."""
    with AgentProcess(data_dir) as first:
        first.ready()
        second = AgentProcess(data_dir)  # no context: its exit would take "successors" down
        assert second.proc.wait(timeout=15) == 1
        second.wait_for_output("already running", stream="stderr")
        assert f"already running for this person (pid {first.proc.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.stop(signal.SIGTERM) == 0
    with AgentProcess(data_dir) as again:
        again.ready()


def test_console_identification_as_a_person(data_dir: Path) -> None:
    with AgentProcess(data_dir, "-v") as agent:
        agent.ready()
        ref = agent.start_auth(personalNumber="198112189876")
        agent.wait_for_output("Password for Anna Andersson")
        assert "https://bank.example wants you to identify yourself." in agent.stdout
        assert agent.collect(ref)["hintCode"] == "userSign"
        agent.type("not the password")
        agent.wait_for_output("[10016] Wrong password")
        assert "Tries left before the BankID is locked: 4." in agent.stdout
        agent.type(PASSWORD)
        done = agent.wait_status(ref, "complete")
        assert done["completionData"]["user"]["personalNumber"] == "198112189876"
        agent.stop()
    # secrets never reach the log or the screen (the password line is not echoed back);
    # personal numbers and nonces are not logged at info level (BRIDGE-SECURITY 12)
    for secret in (PASSWORD, "not the password"):
        assert secret not in agent.stderr
        assert secret not in agent.stdout
    assert "INFO" in agent.stderr
    assert "198112189876" not in agent.stderr
    signed = json.loads(base64.b64decode(done["completionData"]["signedData"]))
    assert signed["nonce"] not in agent.stderr


def test_choice_between_credentials_and_sign_text(tmp_path: Path, make_token: MakeToken) -> None:
    store = CredentialStore(tmp_path / "data", kdf=FAST_KDF)
    store.add(make_token(ANNA))
    store.add(make_token(BERTIL))
    with AgentProcess(tmp_path / "data") as agent:
        agent.ready()
        import base64

        text = "Betala 100 kr\n\x1b[2J?"  # the bridge refuses control characters
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request(
            "POST",
            "/v1/sign",
            {"nonce": nonce, "userVisibleData": base64.b64encode(text.encode()).decode()},
        )
        assert status == 400
        text = "Betala 100 kr\ntill Bertil"
        status, body = agent.request(
            "POST",
            "/v1/sign",
            {"nonce": nonce, "userVisibleData": base64.b64encode(text.encode()).decode()},
        )
        assert status == 201
        agent.wait_for_output("Choose a BankID (1–2")
        assert "  │ Betala 100 kr\n  │ till Bertil" in agent.stdout
        agent.type("7")  # not a choice: asked again
        agent.wait_for_output("Choose a BankID", count=2)
        agent.type("2")
        agent.wait_for_output("Password for Bertil Berg")
        agent.type(PASSWORD)
        done = agent.wait_status(body["orderRef"], "complete")
        assert done["completionData"]["user"]["givenName"] == "Bertil"


def test_empty_line_cancels_and_eof_cancels(data_dir: Path) -> None:
    with AgentProcess(data_dir) as agent:
        agent.ready()
        ref = agent.start_auth()
        agent.wait_for_output("Password for")
        agent.type("")
        assert agent.wait_status(ref, "failed")["hintCode"] == "userCancel"
        ref = agent.start_auth()
        agent.wait_for_output("Password for", count=2)
        agent.close_stdin()
        assert agent.wait_status(ref, "failed")["hintCode"] == "userCancel"
        assert agent.proc.poll() is None  # the agent itself keeps running


def test_ctrl_c_cancels_the_question_then_stops_the_agent(data_dir: Path) -> None:
    with AgentProcess(data_dir) as agent:
        agent.ready()
        ref = agent.start_auth()
        agent.wait_for_output("Password for")
        agent.proc.send_signal(signal.SIGINT)
        assert agent.wait_status(ref, "failed")["hintCode"] == "userCancel"
        assert agent.proc.poll() is None
        assert agent.stop(signal.SIGINT) == 0


def test_page_cancel_closes_the_question_and_stale_input_is_dropped(data_dir: Path) -> None:
    with AgentProcess(data_dir) as agent:
        agent.ready()
        ref = agent.start_auth()
        agent.wait_for_output("Password for")
        status, _ = agent.request("POST", "/v1/cancel", {"orderRef": ref})
        assert status == 200
        agent.wait_for_output("(The request was closed.)")
        agent.type(PASSWORD)  # typed too late: must not serve the next order
        import time

        time.sleep(0.5)
        ref2 = agent.start_auth()
        agent.wait_for_output("Press Enter to see it")  # so soon after: seen first
        agent.type("")
        agent.wait_for_output("Password for", count=2)
        assert agent.collect(ref2)["hintCode"] == "userSign"
        agent.type(PASSWORD)
        agent.wait_status(ref2, "complete")


def test_expiry_closes_the_question(data_dir: Path) -> None:
    with AgentProcess(data_dir, "--order-ttl", "2") as agent:
        agent.ready()
        ref = agent.start_auth()
        assert agent.wait_status(ref, "failed", timeout=10)["hintCode"] == "expiredTransaction"
        agent.wait_for_output("[10035] Time ran out")


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
    reason="needs root to act as a second OS user",
)
def test_another_os_user_is_refused(data_dir: Path) -> None:
    """BRIDGE-SECURITY 10: a browser of another user on this computer reaches this agent
    (the port is per machine); it is refused before anything happens."""
    client = (
        "import http.client,sys;c=http.client.HTTPConnection('127.0.0.1',int(sys.argv[1]));"
        "c.request('GET','/v1/info');r=c.getresponse();print(r.status,r.read().decode())"
    )
    with AgentProcess(data_dir) as agent:
        agent.ready()
        other = subprocess.run(
            ["/usr/bin/python3", "-c", client, str(agent.port)],
            user=65534,
            group=65534,
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
        )
        assert other.stdout.startswith("403"), other
        assert "forbiddenUser" in other.stdout
        same = subprocess.run(
            ["/usr/bin/python3", "-c", client, str(agent.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert same.stdout.startswith("200"), same


_HOLDER = """
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET /v1/info HTTP/1.1\\r\\nHost: 127.0.0.1")  # headers never finished
    held.append(s)
print(len(held), flush=True)
time.sleep(float(sys.argv[3]))
"""


def _info_status(port: int) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/v1/info")
    return connection.getresponse().status


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
    reason="needs root to act as a second OS user",
)
def test_another_user_holding_1100_half_open_connections_stops_nothing(data_dir: Path) -> None:
    with AgentProcess(data_dir) as agent:
        agent.ready()
        holder = subprocess.Popen(
            ["/usr/bin/python3", "-c", _HOLDER, str(agent.port), "1100", "20"],
            user=65534,
            group=65534,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "1100"  # every one was accepted...
            started = time.monotonic()
            assert _info_status(agent.port) == 200  # ...and closed: the owner is served
            assert time.monotonic() - started < 2
            fds = len(os.listdir(f"/proc/{agent.proc.pid}/fd"))
            assert fds < 100, fds
        finally:
            holder.kill()
            holder.wait()


def test_the_owners_half_open_connections_are_capped_and_dropped(data_dir: Path) -> None:
    with AgentProcess(data_dir) as agent:
        agent.ready()
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(agent.port), "70", "30"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "70"
            time.sleep(0.5)
            assert _info_status(agent.port) == 429  # 64 held: the cap answers at once
            time.sleep(6)  # the header deadline (5 s) drops the half-open ones
            assert _info_status(agent.port) == 200
        finally:
            holder.kill()
            holder.wait()


def test_host_and_origin_refusals_over_a_real_socket(data_dir: Path) -> None:
    with AgentProcess(data_dir) as agent:
        agent.ready()
        status, body = agent.request("GET", "/v1/info", host=f"evil.example:{agent.port}")
        assert (status, body["errorCode"]) == (421, "forbiddenHost")
        status, body = agent.request("POST", "/v1/auth", {"nonce": "x"}, origin="null")
        assert (status, body["errorCode"]) == (403, "forbiddenOrigin")
        assert "wants you to" not in agent.stdout


def test_visible_makes_controls_and_bidi_overrides_harmless() -> None:
    assert visible("a\x1b[2Jb") == "a<U+001B>[2Jb"
    assert visible("pay \u202eevil\u202c") == "pay <U+202E>evil<U+202C>"
    assert visible("line\r\nnext\rover") == "line\nnext<U+000D>over"
    assert visible("tab\tand åäö") == "tab\tand åäö"


def test_the_agent_core_has_no_http_client() -> None:
    """BRIDGE-SECURITY 11: the agent never fetches a URL a page supplied. Nothing on the
    bridge or order path can: none of it imports an HTTP client."""
    import ast

    root = Path(__file__).parent.parent / "agent"
    forbidden_modules = {"urllib.request", "http.client", "requests", "httpx", "urllib3"}
    forbidden_names = {"ClientSession", "request", "urlopen"}
    for path in [
        *root.glob("bridge/*.py"),
        *root.glob("orders/*.py"),
        *root.glob("ui/*.py"),
        *root.glob("tokens/*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & forbidden_modules, path
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "") not in forbidden_modules, path
                if node.module == "aiohttp":
                    assert not {a.name for a in node.names} & forbidden_names, path
            if isinstance(node, ast.Attribute) and node.attr in {"ClientSession", "urlopen"}:
                raise AssertionError(f"{path}: {node.attr}")


def test_a_password_typed_for_an_expired_question_never_answers_the_next(data_dir: Path) -> None:
    """Issue: a password typed for an order that had just expired answered the next
    order, from another site that had been retrying. The next question now waits for a
    line of its own, and that line answers nothing."""
    with AgentProcess(data_dir, "--order-ttl", "2") as agent:
        agent.ready()
        first = agent.start_auth()
        agent.wait_for_output("Password for")
        assert agent.wait_status(first, "failed", timeout=10)["hintCode"] == "expiredTransaction"
        agent.origin = "https://other.example"  # the site that was retrying with 409s
        second = agent.start_auth()
        agent.wait_for_output("Press Enter to see it")
        agent.type(PASSWORD)  # the person finishes typing the answer to the first question
        time.sleep(1.0)
        assert agent.collect(second)["status"] == "pending"  # consent was not given
        assert "other.example" in agent.stdout  # now the question is shown...
        agent.wait_for_output("Password for", count=2)
        agent.type(PASSWORD)  # ...and answered knowingly
        assert agent.wait_status(second, "complete", timeout=10)["status"] == "complete"
