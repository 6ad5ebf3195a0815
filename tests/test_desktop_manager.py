"""Settings, My BankIDs and Diagnostics from the tray, as a person uses them: keyboard
only, on a virtual screen with a tray host, against a real agent (and a real issuer)."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from agent.config import load_config
from agent.credentials import CredentialStore
from tests.agent_process import AgentProcess
from tests.conftest import PASSWORD
from tests.desktop_kit import Screen

pytestmark = pytest.mark.slow

ORIGIN = "https://login.secure.bank.se"
PROXY_PASSWORD = "proxy-secret-42"


def _menu(screen: Screen, *keys: str) -> None:
    screen.tray_click()
    time.sleep(0.3)  # the menu opens under the pointer
    screen.xdotool("key", *keys, "Return")


def test_settings_apply_at_once_and_are_saved(data_dir: Path, screen: Screen) -> None:
    config = data_dir.parent / "config.toml"
    config.write_text("# the organisation's comment\n")
    with AgentProcess(
        data_dir, "--no-cards", "-v", "--ui", "desktop", "--config", str(config), env=screen.env
    ) as agent:
        agent.ready()
        screen.tray_docked()
        _menu(screen, "Down", "Down", "Down")  # My BankIDs, Check for updates, Settings
        [window] = screen.wait_window("Settings")
        screen.screenshot(window, "settings")
        screen.key(window, "Down")  # the language: Svenska
        screen.key(window, "ctrl+Page_Down")  # Network
        screen.key(window, "alt+m")  # Manual proxy
        screen.key(window, "alt+a")
        screen.type_into(window, "proxy.example:3128")
        screen.key(window, "alt+u")
        screen.type_into(window, "anna")
        screen.key(window, "alt+w")
        screen.type_into(window, PROXY_PASSWORD)
        screen.key(window, "ctrl+Page_Down")  # Websites
        screen.key(window, "alt+n")  # "may never use the agent"
        screen.type_into(window, "login.secure.bank.se")
        screen.key(window, "Return")
        screen.type_into(window, "not a site")
        screen.key(window, "alt+s")  # Save
        screen.wait_gone(window)
        [again] = screen.wait_window("Settings")  # shown again, the wrong line named
        screen.screenshot(again, "settings-wrong-site")
        screen.key(again, "ctrl+a", "Delete")
        screen.type_into(again, "login.secure.bank.se")
        screen.key(again, "alt+s")
        [saved] = screen.wait_window("Inställningarna är sparade")  # Swedish from now on
        screen.key(saved, "Return")
        # the blocked site is refused at once, with no restart
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request("POST", "/v1/auth", {"nonce": nonce}, origin=ORIGIN)
        assert (status, body["errorCode"]) == (403, "forbiddenOrigin")
    stored = load_config(config)
    assert stored.settings.language == "sv"
    assert stored.settings.block == ("login.secure.bank.se",)
    assert stored.settings.proxy == f"http://anna:{PROXY_PASSWORD}@proxy.example:3128"
    assert "# the organisation's comment" in config.read_text()
    assert PROXY_PASSWORD not in agent.stderr


def test_details_and_removal_with_revocation(tmp_path: Path, screen: Screen) -> None:
    from tests.issuer_kit import IssuerProcess, agent_order

    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'i.db'}") as issuer:
        config = tmp_path / "config.toml"
        config.write_text(f'[issuer]\nurl = "{issuer.url}"\nca = "{issuer.tls_cert}"\n')
        data = tmp_path / "data"
        _, code = issuer.order("198112189876")
        ordered = agent_order(data, issuer.url, issuer.tls_cert, "198112189876", code, PASSWORD)
        assert ordered.returncode == 0, ordered.stderr
        with AgentProcess(
            data, "--no-cards", "-v", "--ui", "desktop", "--config", str(config), env=screen.env
        ) as agent:
            agent.ready()
            screen.tray_docked()
            _menu(screen, "Down")  # My BankIDs
            [mine] = screen.wait_window("My BankIDs")
            screen.key(mine, "Tab", "Return")  # the second button: Details
            [details] = screen.wait_window("Anna Andersson")
            screen.screenshot(details, "bankid-details")
            screen.key(details, "Return")
            screen.wait_gone(details)
            screen.key(mine, "Tab", "Return")  # the third: Remove
            [question] = screen.wait_window("eID Agent")
            screen.screenshot(question, "remove-question")
            screen.key(question, "Return")  # Enter alone is Cancel: nothing removed
            screen.wait_gone(question)
            assert len(CredentialStore(data).credentials()) == 1
            screen.key(mine, "Return")  # Remove still has the focus
            [question] = screen.wait_window("eID Agent")
            screen.key(question, "alt+a")  # also ask the bank to revoke it
            screen.key(question, "alt+r")  # Remove
            screen.wait_gone(question)
            [password] = screen.wait_window("eID Agent")
            screen.type_into(password, "not-the-right-one")
            screen.key(password, "Return")
            screen.wait_gone(password)
            [again] = screen.wait_window("eID Agent")  # asked again: tries left shown
            screen.type_into(again, PASSWORD)
            screen.key(again, "Return")
            [removed] = screen.wait_window("The BankID is removed", timeout=30)
            screen.key(removed, "Return")
        assert CredentialStore(data).credentials() == []
        _, body = issuer.call("GET", "/backoffice/v1/persons/198112189876/certificates")
        assert {c["reason"] for c in body["certificates"]} == {"holderRequest"}
        assert PASSWORD not in agent.stderr and "not-the-right-one" not in agent.stderr


def test_diagnostics_copy_a_report_without_secrets(data_dir: Path, screen: Screen) -> None:
    config = data_dir.parent / "config.toml"
    proxy = f"http://anna:{PROXY_PASSWORD}@127.0.0.1:9"
    config.write_text(f'[issuer]\nurl = "https://issuer.invalid"\n[network]\nproxy = "{proxy}"\n')
    with AgentProcess(
        data_dir, "--no-cards", "-v", "--ui", "desktop", "--config", str(config), env=screen.env
    ) as agent:
        agent.ready()
        screen.tray_docked()
        # My BankIDs, Order, Check for updates, Settings, Diagnostics
        _menu(screen, "Down", "Down", "Down", "Down", "Down")
        [report] = screen.wait_window("Diagnostics", timeout=30)
        screen.screenshot(report, "diagnostics")
        screen.key(report, "Return")  # "Copy report" has the focus
        agent.wait_for_output("dialog helper: copied", stream="stderr")
        text = screen.clipboard()
        screen.key(report, "Escape")
    assert "bridge" in text and "issuer" in text and "127.0.0.1:9" in text
    for secret in (PROXY_PASSWORD, "198112189876", "Anna"):
        assert secret not in text
