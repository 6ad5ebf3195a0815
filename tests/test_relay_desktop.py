"""A relay order in the desktop dialog: the agent runs with ``--ui desktop --no-bridge`` on
a virtual screen, a link reaches it through the real ``xdg-open`` and the registered
handler, the person types the password in the real GTK dialog with xdotool, the website's
server collects the result, and the agent sends the person's browser to the return URL the
relay holds (xdg-open again; ``BROWSER`` records where it went)."""

from __future__ import annotations

import base64
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from issuer import CertificateAuthority
from tests import door_kit
from tests.agent_process import BIN, AgentProcess
from tests.conftest import PASSWORD
from tests.desktop_kit import Screen, recorded
from tests.parallel import NO_PCSC
from tests.relay_kit import RETURN
from tests.relay_process_kit import RelayProcess
from tests.softhsm_kit import MODULE, USER_PIN, SoftHsm

pytestmark = pytest.mark.slow

IP = "203.0.113.77"


def _session(
    tmp_path: Path, screen: Screen, data: Path, *, browser_fails: bool = False
) -> tuple[dict[str, str], Path]:
    """A throw-away desktop session: its default browser for https records where it was
    sent (and fails, if asked), and the agent is the eid-agent:// handler."""
    home = tmp_path / "home"
    opened = tmp_path / "browser-opened"
    browser = tmp_path / "browser"
    browser.write_text(
        f'#!/bin/sh\necho "$1" >> {opened}\n' + ("exit 1\n" if browser_fails else "")
    )
    browser.chmod(0o755)
    skip = ("XDG_CURRENT_DESKTOP", "WAYLAND_DISPLAY")  # keep xdg-open generic
    env = {k: v for k, v in os.environ.items() if k not in skip} | screen.env
    env |= {
        "XDG_DATA_HOME": str(home / "share"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "BROWSER": str(browser),
    }
    # the person's browser: whatever is the default for https in this throw-away home
    applications = home / "share" / "applications"
    applications.mkdir(parents=True)
    (applications / "recorder.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName=recorder\nExec={browser} %u\n"
        "MimeType=x-scheme-handler/https;\nNoDisplay=true\n"
    )
    xdg_mime = shutil.which("xdg-mime") or "/usr/bin/xdg-mime"
    assert (
        subprocess_run(
            [xdg_mime, "default", "recorder.desktop", "x-scheme-handler/https"], env
        ).returncode
        == 0
    )
    installed = subprocess_run(
        [str(BIN / "eid-agent"), "desktop", "install", "--data-dir", str(data)], env
    )
    assert installed.returncode == 0, installed.stderr
    return env, opened


def test_a_relay_order_in_the_desktop_dialog(
    relay: RelayProcess,
    person: Path,
    tls: tuple[Path, Path],
    screen: Screen,
    tmp_path: Path,
) -> None:
    env, opened = _session(tmp_path, screen, person)
    config = person.parent / "config.toml"
    with _desktop_agent(person, tls, config, env) as agent:
        agent.ready()
        status, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP, "returnUrl": RETURN})
        assert status == 200
        link = door_kit.link(started["autoStartToken"], f"https://127.0.0.1:{relay.port}")
        xdg_open = shutil.which("xdg-open") or "/usr/bin/xdg-open"
        began = time.monotonic()
        handed = subprocess_run([xdg_open, link], env)
        assert handed.returncode == 0, handed.stdout + handed.stderr
        [window] = screen.wait_window()
        shown = time.monotonic() - began
        screen.screenshot(window, "relay-dialog")
        ref = {"orderRef": started["orderRef"]}
        # one BankID: the dialog asks for its password at once, and the site sees it
        assert relay.call("/rp/v6.0/collect", ref)[1]["hintCode"] == "userSign"
        screen.type_into(window, PASSWORD)
        screen.key(window, "Return")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            collected = relay.call("/rp/v6.0/collect", ref)[1]
            if collected["status"] != "pending":
                break
            time.sleep(0.1)
        assert collected["status"] == "complete", (collected, agent.stderr)
        assert recorded(opened, timeout=20) == [RETURN], agent.stderr[-3000:]  # the relay's
        screen.wait_gone(window)
        # the site cancels while the dialog is open: the agent learns it and closes it
        _, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP})
        link = door_kit.link(started["autoStartToken"], f"https://127.0.0.1:{relay.port}")
        assert (
            subprocess_run(
                [str(BIN / "eid-agent"), "open", link, "--data-dir", str(person)], env
            ).returncode
            == 0
        )
        [window] = screen.wait_window()
        assert relay.call("/rp/v6.0/cancel", {"orderRef": started["orderRef"]})[0] == 200
        screen.wait_gone(window, timeout=5)
        collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
        assert collected["hintCode"] == "cancelled"
    assert PASSWORD not in agent.stderr
    assert shown < 10, shown


def test_a_browser_that_cannot_be_opened_gets_the_address_in_a_notice(
    relay: RelayProcess,
    person: Path,
    tls: tuple[Path, Path],
    screen: Screen,
    tmp_path: Path,
) -> None:
    """xdg-open fails (the browser exits 1): the way back is shown, not dropped in silence
    with the page left pending. OK tries to open it once more."""
    env, opened = _session(tmp_path, screen, person, browser_fails=True)
    config = person.parent / "config.toml"
    with _desktop_agent(person, tls, config, env) as agent:
        agent.ready()
        _, started = relay.call("/rp/v6.0/auth", {"endUserIp": IP, "returnUrl": RETURN})
        link = door_kit.link(started["autoStartToken"], f"https://127.0.0.1:{relay.port}")
        xdg_open = shutil.which("xdg-open") or "/usr/bin/xdg-open"
        assert subprocess_run([xdg_open, link], env).returncode == 0
        [window] = screen.wait_window()
        screen.type_into(window, PASSWORD)
        screen.key(window, "Return")
        [notice] = screen.wait_window("Go back to the website", timeout=30)
        screen.screenshot(notice, "notice-return-to-site")
        assert recorded(opened) == [RETURN]  # xdg-open tried, and failed
        screen.key(notice, "Return")  # OK: through GIO once more
        assert recorded(opened, 2) == [RETURN, RETURN], agent.stderr[-2000:]
        assert "xdg-open could not open the way back" in agent.stderr


def _desktop_agent(
    data: Path, tls: tuple[Path, Path], config: Path, env: dict[str, str], *, cards: bool = False
) -> AgentProcess:
    """The person's agent on the screen: the desktop dialogs and tray, no bridge, the test
    relay's certificate trusted; card readers and tokens watched only if asked."""
    extra = () if cards else ("--no-cards",)
    return AgentProcess(
        data,
        "--no-bridge",
        *extra,
        "--ui",
        "desktop",
        "--relay-ca",
        str(tls[0]),
        "--config",
        str(config),
        env=env,
    )


def _collected(relay: RelayProcess, ref: dict[str, str], seconds: float = 20) -> dict[str, Any]:
    """``collect`` until the order is no longer pending (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while True:
        collected: dict[str, Any] = relay.call("/rp/v6.0/collect", ref)[1]
        if collected["status"] != "pending" or time.monotonic() > deadline:
            return collected
        time.sleep(0.1)


def subprocess_run(argv: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    import subprocess

    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_orders_waiting_for_me_from_the_tray(
    relay: RelayProcess,
    person: Path,
    tls: tuple[Path, Path],
    screen: Screen,
) -> None:
    """A phone order (BankID's phone/sign: the site called the person): no link is
    opened. The person picks "Orders waiting for me" in the tray, types the password to
    look, is shown who called whom and takes it; the usual dialog shows the text, and
    the site collects the signature."""
    config = person.parent / "config.toml"
    config.write_text(config.read_text() + f'ask = ["https://127.0.0.1:{relay.port}"]\n')
    text = "Jag godkänner att lånet flyttas."
    body = {
        "personalNumber": "198112189876",
        "callInitiator": "RP",
        "userVisibleData": base64.b64encode(text.encode()).decode(),
    }
    status, started = relay.call("/rp/v6.0/phone/sign", body)
    assert status == 200 and set(started) == {"orderRef"}
    with _desktop_agent(person, tls, config, screen.env) as agent:
        agent.ready()
        screen.tray_docked()
        screen.tray_click()
        time.sleep(0.3)  # the menu opens under the pointer
        screen.xdotool("key", "Down", "Down", "Return")  # My BankIDs, Orders waiting for me
        [password] = screen.wait_window("eID Agent")
        screen.screenshot(password, "waiting-password")
        screen.type_into(password, PASSWORD)
        screen.key(password, "Return")
        screen.wait_gone(password)
        [offer] = screen.wait_window("eID Agent", timeout=20)
        screen.screenshot(offer, "waiting-offer")
        screen.key(offer, "alt+t")  # Take it
        screen.wait_gone(offer)
        [dialog] = screen.wait_window(timeout=20)
        ref = {"orderRef": started["orderRef"]}
        assert relay.call("/rp/v6.0/collect", ref)[1]["hintCode"] in (
            "userCallConfirm",
            "userSign",
        )
        screen.screenshot(dialog, "waiting-dialog")
        screen.type_into(dialog, PASSWORD)
        screen.key(dialog, "Return")
        collected = _collected(relay, ref)
        assert collected["status"] == "complete", (collected, agent.stderr[-3000:])
    assert PASSWORD not in agent.stderr and "Traceback" not in agent.stderr


def test_orders_waiting_for_me_with_a_security_key(
    relay: RelayProcess,
    tmp_path: Path,
    ca: CertificateAuthority,
    tls: tuple[Path, Path],
    screen: Screen,
    softhsm: SoftHsm,
) -> None:
    """The same from the tray with a BankID on a security key and none on file: the
    window asks for the key's PIN (a wrong one first: the key's answer is shown and the
    PIN asked again), and the order is signed with the key."""
    softhsm.bankid("anna", ca)
    data = tmp_path / "anna"
    config = tmp_path / "config.toml"
    config.write_text(
        config.read_text()
        + f'ask = ["https://127.0.0.1:{relay.port}"]\n'
        + f'\n[pkcs11]\nmodules = ["{MODULE}"]\np11kit = false\n'
    )
    body = {"personalNumber": "198112189876", "callInitiator": "user"}
    status, started = relay.call("/rp/v6.0/phone/auth", body)
    assert status == 200
    env = screen.env | softhsm.env | {"PCSCLITE_CSOCK_NAME": NO_PCSC}
    with _desktop_agent(data, tls, config, env, cards=True) as agent:
        agent.ready()
        agent.wait_for_output("token BankID", stream="stderr")
        screen.tray_docked()
        screen.tray_click()
        time.sleep(0.3)
        screen.xdotool("key", "Down", "Down", "Return")  # My BankIDs, Orders waiting for me
        [pin] = screen.wait_window("eID Agent")
        screen.type_into(pin, "000000")
        screen.key(pin, "Return")
        screen.wait_gone(pin)
        [again] = screen.wait_window("eID Agent", timeout=20)
        screen.screenshot(again, "waiting-token-pin-again")
        screen.type_into(again, USER_PIN)
        screen.key(again, "Return")
        screen.wait_gone(again)
        [offer] = screen.wait_window("eID Agent", timeout=20)
        screen.key(offer, "alt+t")  # Take it
        screen.wait_gone(offer)
        [dialog] = screen.wait_window(timeout=20)
        screen.type_into(dialog, USER_PIN)
        screen.key(dialog, "Return")
        ref = {"orderRef": started["orderRef"]}
        collected = _collected(relay, ref)
        assert collected["status"] == "complete", (collected, agent.stderr[-3000:])
    assert USER_PIN not in agent.stderr and "Traceback" not in agent.stderr
