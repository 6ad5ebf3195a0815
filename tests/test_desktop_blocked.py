"""The seed's "another program blocks the password dialogs": the agent notices a dialog
that never became usable and says so; Settings → Advanced's two methods change how
dialogs are presented. Real programs on a virtual screen take the keyboard or the focus."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.conftest import PASSWORD
from tests.desktop_kit import Screen

pytestmark = pytest.mark.slow

ORIGIN = "https://login.secure.bank.se"


def _agent(data_dir: Path, screen: Screen, config: str = "") -> AgentProcess:
    path = data_dir.parent / "config.toml"
    path.write_text(config)
    agent = AgentProcess(
        data_dir, "--no-cards", "-v", "--ui", "desktop", "--config", str(path), env=screen.env
    )
    agent.origin = ORIGIN
    return agent


def _auth(agent: AgentProcess) -> str:
    nonce = base64.b64encode(os.urandom(32)).decode()
    status, body = agent.request("POST", "/v1/auth", {"nonce": nonce}, origin=ORIGIN)
    assert status == 201, body
    return str(body["orderRef"])


def test_a_program_holding_the_keyboard_is_detected(data_dir: Path, screen: Screen) -> None:
    with _agent(data_dir, screen) as agent:
        agent.ready()
        with screen.other_program("grab"):
            ref = _auth(agent)
            [dialog] = screen.wait_window()  # it shows, but cannot get a key press
            done = agent.wait_status(ref, "startFailed", timeout=20)
            assert done["status"] == "failed"
            [notice] = screen.wait_window("Another program blocks")
            screen.screenshot(notice, "notice-dialog-blocked")
            # also a desktop notification: the notice window cannot get the keyboard either
            shown = screen.notified("Another program blocks the password dialog (10015)")
            assert "Settings → Advanced" in shown
        assert (
            "the dialog is blocked (never reached: another program holds the keyboard)"
            in agent.stderr
        )
        screen.key(notice, "Return")
        screen.wait_gone(notice)
        ref = _auth(agent)  # once the other program is gone, dialogs work again
        [dialog] = screen.wait_window()
        screen.type_into(dialog, PASSWORD)
        screen.key(dialog, "Return")
        agent.wait_status(ref, "complete")


def test_taking_the_keyboard_beats_a_focus_thief(data_dir: Path, screen: Screen) -> None:
    """Without the method, what the person types while a program keeps taking the focus
    goes to that program; with "force to the front and take the keyboard" it reaches the
    dialog."""
    with _agent(data_dir, screen) as agent, screen.other_program("thief"):
        agent.ready()
        ref = _auth(agent)
        [dialog] = screen.wait_window()
        screen.xdotool("type", "--delay", "10", PASSWORD)  # to whatever has the focus
        screen.xdotool("key", "Return")
        assert agent.collect(ref)["hintCode"] == "userSign"  # the dialog got nothing
        agent.request("POST", "/v1/cancel", {"orderRef": ref}, origin=ORIGIN)
        screen.wait_gone(dialog)
    with (
        _agent(data_dir, screen, "[ui]\nraise_dialogs = true\n") as agent,
        screen.other_program("thief"),
    ):
        agent.ready()
        ref = _auth(agent)
        [dialog] = screen.wait_window()
        agent.wait_for_output("dialog took the keyboard", stream="stderr")
        screen.xdotool("type", "--delay", "10", PASSWORD)
        screen.xdotool("key", "Return")
        agent.wait_status(ref, "complete")


def test_dialogs_can_be_plain_windows(data_dir: Path, screen: Screen) -> None:
    with _agent(data_dir, screen) as agent:
        agent.ready()
        ref = _auth(agent)
        [dialog] = screen.wait_window()
        assert {"_NET_WM_STATE_ABOVE", "_NET_WM_WINDOW_TYPE_DIALOG"} <= screen.properties(dialog)
        agent.request("POST", "/v1/cancel", {"orderRef": ref}, origin=ORIGIN)
        screen.wait_gone(dialog)
    with _agent(data_dir, screen, "[ui]\nplain_window = true\n") as agent:
        agent.ready()
        ref = _auth(agent)
        [dialog] = screen.wait_window()
        properties = screen.properties(dialog)
        assert "_NET_WM_STATE_ABOVE" not in properties
        assert "_NET_WM_WINDOW_TYPE_NORMAL" in properties
        screen.type_into(dialog, PASSWORD)
        screen.key(dialog, "Return")
        agent.wait_status(ref, "complete")
