"""The tray served on the session bus (a StatusNotifierItem with a dbusmenu menu, ADR 0024)
under a real StatusNotifier host (gtk-sni-tray, which draws the icon and its menu from what
the agent says over D-Bus): the agent keeps no GTK while idle, the dialog helper comes for
a question and goes again, and the menu works as it does in an XEmbed tray."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ui.desktop.trayicon import pixmap
from tests.agent_process import AgentProcess
from tests.conftest import PASSWORD
from tests.desktop_kit import Screen, virtual_screen

pytestmark = pytest.mark.slow

ORIGIN = "https://login.secure.bank.se"
DBUS_SEND = shutil.which("dbus-send") or "/usr/bin/dbus-send"


@pytest.fixture(scope="module")
def bar() -> Iterator[Screen]:
    with virtual_screen(tray="sni") as screen:
        yield screen


def _agent(data_dir: Path, screen: Screen) -> AgentProcess:
    env = {**screen.env, "EID_AGENT_DIALOG_IDLE": "1"}
    agent = AgentProcess(data_dir, "--no-cards", "-v", "--ui", "desktop", env=env)
    agent.origin = ORIGIN
    return agent


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _helpers(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_the_tray_on_the_bus_and_a_helper_that_comes_and_goes(data_dir: Path, bar: Screen) -> None:
    with _agent(data_dir, bar) as agent:
        agent.ready()
        agent.wait_for_output("tray: a StatusNotifierItem", stream="stderr")
        agent.wait_for_output("dialog helper ended after", stream="stderr")
        assert "libgtk-3" not in _maps(agent.proc.pid)  # the agent itself never loads GTK
        assert _helpers(agent.proc.pid) == []
        [panel] = bar.xdotool("search", "--onlyvisible", "--class", "gtk-sni-tray").split()
        bar.screenshot(panel, "tray-sni")
        # an order: its dialog comes with a new helper, which goes again afterwards
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request("POST", "/v1/auth", {"nonce": nonce}, origin=ORIGIN)
        assert status == 201, body
        [window] = bar.wait_window()
        assert len(_helpers(agent.proc.pid)) == 1
        bar.type_into(window, PASSWORD)
        bar.key(window, "Return")
        assert agent.wait_status(body["orderRef"], "complete")["status"] == "complete"
        agent.wait_for_output("dialog helper ended after", stream="stderr", count=2)
        # the host's menu, drawn from the agent's dbusmenu: About, then Quit
        bar.bar_click()
        time.sleep(0.5)  # the menu opens under the pointer
        bar.xdotool("key", "Down", "Down", "Down", "Down", "Down", "Return")
        [about] = bar.wait_window("About eid-agent")
        bar.key(about, "Return")
        bar.wait_gone(about)
        bar.bar_click()
        time.sleep(0.5)
        bar.xdotool("key", "Up", "Return")
        assert agent.proc.wait(timeout=15) == 0
    assert "tray: about" in agent.stderr and "tray: quit" in agent.stderr
    assert PASSWORD not in agent.stderr


def test_the_icon_is_the_helpers_badge() -> None:
    """The bus tray's picture, drawn without a toolkit, looks like the helper's (Pillow)
    for every state: seen at 16 × 16 (each pixel the mean of a 4 × 4 block), almost every
    pixel within a small distance, edges drawn a little differently aside."""
    from PIL import Image

    from agent.ui.desktop import helper

    size, seen = 64, 16
    for state in ("ready", "busy", "update", "problem"):
        argb = pixmap(state, size)
        rgba = bytes(argb[n + k] for n in range(0, len(argb), 4) for k in (1, 2, 3, 0))
        ours = Image.frombytes("RGBA", (size, size), rgba).resize(
            (seen, seen), Image.Resampling.BOX
        )
        theirs = (
            helper._tray_image(state).convert("RGBA").resize((seen, seen), Image.Resampling.BOX)
        )
        channels = [abs(x - y) for x, y in zip(ours.tobytes(), theirs.tobytes(), strict=True)]
        far = sum(max(channels[n : n + 4]) > 48 for n in range(0, len(channels), 4))
        assert far <= seen * seen // 20, (state, far)


def _dbus_send(screen: Screen, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DBUS_SEND, "--session", "--print-reply", *args],
        env={**os.environ, **screen.env},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_the_tray_answers_any_peer_on_the_bus_and_survives_odd_calls(
    data_dir: Path, bar: Screen
) -> None:
    """What the host asks, asked by D-Bus's own client (dbus-send): the menu's layout in
    the catalogue's words, the icon; a click on an item does what the menu does. Calls
    with the wrong arguments, unknown methods and a burst of them get D-Bus errors, and
    the tray goes on (one log line each at most, no traceback)."""
    with _agent(data_dir, bar) as agent:
        agent.ready()
        agent.wait_for_output("tray: a StatusNotifierItem", stream="stderr")
        item = f"--dest=org.kde.StatusNotifierItem-{agent.proc.pid}-1"
        layout = _dbus_send(
            bar,
            item,
            "/MenuBar",
            "com.canonical.dbusmenu.GetLayout",
            "int32:0",
            "int32:-1",
            "array:string:",
        )
        assert layout.returncode == 0, layout.stderr
        assert "About" in layout.stdout and "Quit" in layout.stdout
        icon = _dbus_send(
            bar,
            item,
            "/StatusNotifierItem",
            "org.freedesktop.DBus.Properties.Get",
            "string:org.kde.StatusNotifierItem",
            "string:IconPixmap",
        )
        assert icon.returncode == 0 and "int32 32" in icon.stdout, icon.stderr
        for odd in (
            ("/MenuBar", "com.canonical.dbusmenu.Event", "string:x", "int32:1"),
            ("/MenuBar", "com.canonical.dbusmenu.GetProperty", "int32:99999", "string:label"),
            ("/MenuBar", "com.canonical.dbusmenu.Nothing"),
            ("/StatusNotifierItem", "org.freedesktop.DBus.Properties.Get", "string:x"),
            ("/Elsewhere", "org.kde.StatusNotifierItem.Activate", "int32:0", "int32:0"),
        ):
            answer = _dbus_send(bar, item, *odd)
            assert answer.returncode != 0 and "Error" in answer.stderr, (odd, answer)
        for _ in range(20):  # a burst of clicks on no item at all
            _dbus_send(
                bar,
                item,
                "/MenuBar",
                "com.canonical.dbusmenu.Event",
                "int32:-7",
                "string:clicked",
                "variant:int32:0",
                "uint32:0",
            )
        about = _id_of(layout.stdout, "About")
        clicked = _dbus_send(
            bar,
            item,
            "/MenuBar",
            "com.canonical.dbusmenu.Event",
            f"int32:{about}",
            "string:clicked",
            "variant:int32:0",
            "uint32:0",
        )
        assert clicked.returncode == 0, clicked.stderr
        [window] = bar.wait_window("About eid-agent")
        bar.key(window, "Return")
        assert agent.proc.poll() is None
    assert "Traceback" not in agent.stderr
    assert agent.stderr.count("tray: a D-Bus call was not answered") == 0


def _id_of(layout: str, label: str) -> int:
    """The dbusmenu id of the item labelled ``label`` in dbus-send's print of a layout:
    each item is a struct whose first field is its int32 id."""
    current = None
    for line in layout.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "int32":
            current = int(words[1])
        if f'string "{label}' in line and current is not None:
            return current
    raise AssertionError(f"no item {label!r} in {layout}")
