"""The second door end to end, as far as it goes today: a website's server starts an order
at a real relay process over HTTPS, ``eid-agent open LINK`` fetches it, the person types the
password in the console, the agent signs for the relay's origin and the party and posts
the result, and the website's server collects a result its rp kit verifies. Hostile links
and relays get their catalogue message; nothing is signed."""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.autostart.handoff import socket_path
from issuer import CertificateAuthority
from tests import door_kit
from tests.agent_process import AgentProcess
from tests.conftest import ANNA, PASSWORD
from tests.relay_kit import RETURN
from tests.relay_process_kit import RelayProcess
from tests.xml_kit import verified_everywhere

pytestmark = pytest.mark.slow

IP = "203.0.113.5"


def test_an_identification_by_link_completes_at_the_website(
    relay: RelayProcess,
    person: Path,
    tls: tuple[Path, Path],
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    status, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP, "returnUrl": RETURN})
    assert status == 200
    server = f"https://127.0.0.1:{relay.port}"
    link = door_kit.link(started["autoStartToken"], server, redirect="https://evil.example/")
    done = door_kit.open_link(link, person, tls)
    assert done.returncode == 0, done.stderr
    assert f"{server}, for «Exempelbutiken AB», wants you to identify yourself." in done.stderr
    # back to the return URL the relay holds for the party, never the link's redirect
    assert f"Go back to the website: {RETURN}" in done.stderr and "evil" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout and "Traceback" not in done.stderr
    collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
    assert collected["status"] == "complete", collected
    # the website's server checks the XML signature: with xmlsec1 and with the rp kit,
    # for its relay, its party and its order
    verified = verified_everywhere(
        collected["completionData"],
        ca=ca,
        folder=tmp_path / "xml",
        order_type="auth",
        origin=server,
        order_ref=started["orderRef"],
    )
    assert verified.person.personal_number == str(ANNA.personal_number)
    assert collected["completionData"]["user"]["personalNumber"] == str(ANNA.personal_number)
    # the same link again: the order was fetched once; nothing more happens
    second = door_kit.open_link(door_kit.link(started["autoStartToken"], server), person, tls)
    assert second.returncode == 1 and "[10080]" in second.stderr, second.stderr


def test_a_signature_by_link_and_the_persons_cancel(
    relay: RelayProcess,
    person: Path,
    tls: tuple[Path, Path],
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    import base64

    text = "Jag godkänner avtalet."
    body = {"endUserIp": IP, "userVisibleData": base64.b64encode(text.encode()).decode()}
    server = f"https://127.0.0.1:{relay.port}"
    _, started = relay.call("/rp/v6.0/sign", body | {"returnUrl": RETURN})
    done = door_kit.open_link(
        door_kit.link(started["autoStartToken"], server, redirect="null"), person, tls
    )
    assert done.returncode == 0 and text in done.stderr, done.stderr
    assert "Go back" not in done.stderr  # redirect=null: the page wants nothing opened
    collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
    assert collected["status"] == "complete"
    verified = verified_everywhere(
        collected["completionData"],
        ca=ca,
        folder=tmp_path / "xml",
        order_type="sign",
        origin=server,
        order_ref=started["orderRef"],
        text=text,
    )
    assert verified.content.visible == text
    _, started = relay.call("/rp/v6.0/sign", body)
    cancelled = door_kit.open_link(
        door_kit.link(started["autoStartToken"], server), person, tls, typed=""
    )
    assert cancelled.returncode == 1, cancelled.stderr
    collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
    assert (collected["status"], collected["hintCode"]) == ("failed", "userCancel")


def test_links_a_page_may_not_send(
    relay: RelayProcess, person: Path, tls: tuple[Path, Path], tmp_path: Path
) -> None:
    _, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP})
    token, server = started["autoStartToken"], f"https://127.0.0.1:{relay.port}"
    unconfigured = tmp_path / "none.toml"
    # a relay on this computer that the settings do not name: refused before any request
    said = door_kit.open_link(door_kit.link(token, server), person, tls, config=unconfigured)
    assert said.returncode == 1 and "[10082]" in said.stderr, said.stderr
    plain = door_kit.open_link(door_kit.link(token, f"http://127.0.0.1:{relay.port}"), person, tls)
    assert plain.returncode == 1 and "[10082]" in plain.stderr, plain.stderr
    for bad in (
        "eid-agent:///?autostarttoken=short&server=" + server,
        door_kit.link(token, server + "/path"),
        door_kit.link(token, "https://user@127.0.0.1"),
        door_kit.link(token, "https://[127.0.0.1"),
        "eid-agent://[x/?autostarttoken=" + token,
        "eid-agent:///?autostarttoken=" + token + "&autostarttoken=" + token,
        "https://evil.example/?autostarttoken=" + token,
    ):
        refused = door_kit.open_link(bad, person, tls)
        assert refused.returncode == 1 and "[10078]" in refused.stderr, (bad, refused.stderr)
    # none of that touched the order: it is still waiting for its agent
    collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
    assert collected["hintCode"] == "outstandingTransaction"


class _Liar(http.server.BaseHTTPRequestHandler):
    """A 'relay' that takes the agent's WebSocket, then answers garbage, or trickles."""

    mode = "garbage"

    def do_GET(self) -> None:
        key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()  # noqa: S324
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        body = b'{"order": {"orderRef": "x", "relay": "https://elsewhere.example"' + b"]" * 3
        frame = bytes([0x81, len(body)]) + body  # a text frame, unmasked as a server's
        if self.mode == "trickle":
            for byte in frame[:30]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1)
            return
        self.wfile.write(frame)
        self.wfile.flush()
        time.sleep(2)

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize(("mode", "code"), [("garbage", "[10081]"), ("trickle", "[10079]")])
def test_a_relay_that_lies_or_trickles(
    person: Path, tls: tuple[Path, Path], mode: str, code: str
) -> None:
    handler = type("Handler", (_Liar,), {"mode": mode})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        began = time.monotonic()
        said = door_kit.open_link(
            door_kit.link("t" * 43, f"http://127.0.0.1:{server.server_address[1]}"),
            person,
            tls,
            "--allow-http-relay",
        )
        assert said.returncode == 1 and code in said.stderr, said.stderr
        assert time.monotonic() - began < 40 and "Traceback" not in said.stderr
        assert not list((person / "tokens").glob("*.tmp"))
    finally:
        server.shutdown()
        server.server_close()


def test_a_link_handed_to_the_running_agent(
    relay: RelayProcess, person: Path, tls: tuple[Path, Path]
) -> None:
    """The handler hands the link to the person's agent, which runs with no bridge at all,
    and exits at once; the agent asks in its own console and posts the result."""
    config = person.parent / "config.toml"
    with AgentProcess(
        person, "--no-bridge", "--no-cards", "--relay-ca", str(tls[0]), "--config", str(config)
    ) as agent:
        agent.ready()
        assert not _listening(agent.port)  # --no-bridge: no port at all
        _, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP})
        link = door_kit.link(started["autoStartToken"], f"https://127.0.0.1:{relay.port}")
        began = time.monotonic()
        handler = door_kit.open_link(link, person, tls, typed="")
        assert handler.returncode == 0 and handler.stderr == "", handler.stderr
        assert time.monotonic() - began < 5
        agent.wait_for_output("for «Exempelbutiken AB», wants you to identify yourself.")
        agent.wait_for_output("Password for")
        agent.type(PASSWORD)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
            if collected["status"] != "pending":
                break
            time.sleep(0.1)
        assert collected["status"] == "complete", (collected, agent.stderr)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_another_users_process_is_refused(
    relay: RelayProcess, person: Path, tls: tuple[Path, Path]
) -> None:
    """Even with the folder and the socket opened up by mistake, the agent asks the kernel
    who is connecting and refuses anyone but its owner."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process as another user")
    with AgentProcess(
        person, "--no-bridge", "--no-cards", "--config", str(person.parent / "config.toml")
    ) as agent:
        agent.ready()
        path = socket_path(person)
        os.chmod(path.parent, 0o755)  # noqa: S103 - the mistake this test makes on purpose
        os.chmod(path, 0o666)  # noqa: S103
        try:
            # the agent refuses on connect, before reading: on a busy machine its answer
            # and close come before the link is sent (EPIPE), and the answer is still
            # there to read
            probe = (
                "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                "try: s.sendall(b'eid-agent:///?x\\n')\n"
                "except BrokenPipeError: pass\n"
                "print(s.recv(64).decode().strip())"
            )
            said = subprocess.run(
                ["/usr/bin/python3", "-c", probe, str(path)],
                user=65534,
                group=65534,
                capture_output=True,
                text=True,
                timeout=30,
                cwd="/",
                check=False,
            )
        finally:
            os.chmod(path.parent, 0o700)
        assert said.stdout.strip() == "refused", said
        agent.wait_for_output("another user's process was refused", stream="stderr")


def test_the_configured_proxy_carries_the_relay(
    relay: RelayProcess, person: Path, tls: tuple[Path, Path]
) -> None:
    """As for the issuer: the settings' proxy (with its password, which is never shown)
    carries every call to the relay, and the log says which proxy."""
    from tests.issuer_kit import ConnectProxy

    proxy = ConnectProxy(require_auth="anna:proxy-secret")
    try:
        config = person.parent / "proxied.toml"
        url = f"http://anna:proxy-secret@127.0.0.1:{proxy.port}"
        config.write_text(
            f'[relay]\nallow = ["127.0.0.1:{relay.port}"]\n\n[network]\nproxy = "{url}"\n'
        )
        _, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP})
        done = door_kit.open_link(
            door_kit.link(started["autoStartToken"], f"https://127.0.0.1:{relay.port}"),
            person,
            tls,
            "-v",
            config=config,
        )
        assert done.returncode == 0, done.stderr
        assert proxy.seen and set(proxy.seen) == {f"CONNECT 127.0.0.1:{relay.port}"}
        assert f"via proxy http://127.0.0.1:{proxy.port}" in done.stderr
        assert "proxy-secret" not in done.stderr
        collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
        assert collected["status"] == "complete"
    finally:
        proxy.close()


def test_a_blocked_version_refuses_a_link_and_the_website_reads_update_required(
    relay: RelayProcess, person: Path, tls: tuple[Path, Path], tmp_path: Path
) -> None:
    """The relay door refuses as the bridge does: an installed 1.0.0 that its signed
    policy blocks fetches the order, tells the relay ``updateRequired`` and the person
    why; nothing is asked or signed."""
    from tests.update_kit import install, repository, run_agent_cli

    with repository(tmp_path / "updates") as repo:
        repo.publish("1.0.0")
        install(repo, person)
        repo.publish("1.1.0", versionStatus=[{"versions": "<1.1.0", "status": "blocked"}])
        program = person / "install/current/eid-agent"
        checked = run_agent_cli(
            "update", "check", "--data-dir", str(person), "--lang", "en", program=program
        )
        assert "[10092] This version may not be used" in checked.stdout, checked.stdout
        assert "Click OK" not in checked.stdout  # a terminal has no OK
        _, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP})
        server = f"https://127.0.0.1:{relay.port}"
        argv = [
            str(program),
            "open",
            door_kit.link(started["autoStartToken"], server),
            "--data-dir",
            str(person),
            "--lang",
            "en",
            "--relay-ca",
            str(tls[0]),
            "--config",
            str(person.parent / "config.toml"),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        refused = subprocess.run(
            argv,
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
    assert refused.returncode == 1, refused.stderr
    assert "[10092]" in refused.stderr and "Traceback" not in refused.stderr
    assert "wants you to identify yourself" not in refused.stderr  # nothing was asked
    collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
    # BankID's word for an app that must be updated first
    assert (collected["status"], collected["hintCode"]) == ("failed", "notSupportedByUserApp")
