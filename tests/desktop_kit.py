"""A virtual screen for the desktop UI's tests: Xvfb on a free display, xdotool to type
and press keys as a person would, and screenshots of what is on the screen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.credentials import CredentialStore
from tests.conftest import ANNA, FAST_KDF, MakeToken

XDOTOOL = shutil.which("xdotool") or "/usr/bin/xdotool"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"
DBUS = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
TRAYER = shutil.which("trayer") or "/usr/bin/trayer"
# a StatusNotifier host (with its own watcher): the tray KDE, GNOME's AppIndicator
# extension, XFCE and waybar speak, drawn by a standalone GTK bar
SNI_HOST = shutil.which("gtk-sni-tray-standalone") or "/usr/bin/gtk-sni-tray-standalone"
DUNST = shutil.which("dunst") or "/usr/bin/dunst"
SCREENSHOTS = Path(__file__).parent.parent / "build" / "screenshots"

_SHOT = """
import sys, gi
gi.require_version("Gdk", "3.0")
gi.require_version("GdkX11", "3.0")
from gi.repository import Gdk, GdkX11
Gdk.init([])
root = Gdk.get_default_root_window()
win = GdkX11.X11Window.foreign_new_for_display(Gdk.Display.get_default(), int(sys.argv[2]))
_, x, y = win.get_origin()
shot = Gdk.pixbuf_get_from_window(root, x, y, win.get_width(), win.get_height())
shot.savev(sys.argv[1], "png", [], [])
"""

# Other programs on the same screen, as the seed's "another program blocks the password
# dialogs" meets them (python-xlib, which pystray brings): one takes the keyboard and
# keeps it; one takes the focus back whenever it loses it.
_GRAB = """
import sys
from Xlib import X, display
d = display.Display()
status = d.screen().root.grab_keyboard(True, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
d.sync()
print("grabbed" if status == X.GrabSuccess else f"failed {status}", flush=True)
sys.stdin.read()
"""

_THIEF = """
from Xlib import X, display
d = display.Display()
s = d.screen()
w = s.root.create_window(0, 0, 240, 80, 0, s.root_depth, background_pixel=s.white_pixel,
                         event_mask=X.FocusChangeMask)
w.set_wm_name("focus thief")
w.map()
d.sync()
w.set_input_focus(X.RevertToParent, X.CurrentTime)
d.sync()
print("ready", flush=True)
while True:
    event = d.next_event()
    if event.type == X.FocusOut and event.mode == X.NotifyNormal:
        w.set_input_focus(X.RevertToParent, X.CurrentTime)
        d.sync()
"""

_PROPS = """
import sys
from Xlib import display
d = display.Display()
w = d.create_resource_object("window", int(sys.argv[1]))
state = w.get_full_property(d.intern_atom("_NET_WM_STATE"), 0)
names = [d.get_atom_name(a) for a in (state.value if state else [])]
kind = w.get_full_property(d.intern_atom("_NET_WM_WINDOW_TYPE"), 0)
names += [d.get_atom_name(a) for a in (kind.value if kind else [])]
print(" ".join(names))
"""

_CLIPBOARD = """
import gi
gi.require_version("Gtk", "3.0")
from gi.repository import Gdk, Gtk
Gtk.init([])
text = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD).wait_for_text()
print(text or "", end="")
"""

# the order dialogs' title in English and Swedish (xdotool's --name takes a regex)
DIALOG_TITLES = "eID Agent|E-legitimation"


@dataclass
class Screen:
    display: str
    bus: str = ""  # a D-Bus session bus of its own (the tray's notifications need one)
    notifications: Path | None = None  # what the notification service (dunst) showed

    def notified(self, text: str, timeout: float = 15) -> str:
        """The notification (summary and body) that contains ``text``, once shown."""
        assert self.notifications is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.notifications.exists():
                for line in self.notifications.read_text().splitlines():
                    if text in line:
                        return line
            time.sleep(0.05)
        raise AssertionError(f"no notification with {text!r}")

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display, "DBUS_SESSION_BUS_ADDRESS": self.bus}

    def xdotool(self, *args: str, timeout: float = 15) -> str:
        result = subprocess.run(
            [XDOTOOL, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env},
            check=False,
        )
        return result.stdout.strip()

    def windows(self, name: str = DIALOG_TITLES) -> list[str]:
        """Visible windows with ``name`` in their title, big enough to be dialogs (the
        tray icon's little window carries the name too)."""
        out = self.xdotool("search", "--onlyvisible", "--name", name)
        return [w for w in out.split() if w and self.size(w)[0] >= 100]

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        out = self.xdotool("getwindowgeometry", "--shell", window)
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        try:
            return (int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"]))
        except KeyError:
            return (0, 0, 0, 0)  # gone meanwhile

    def size(self, window: str) -> tuple[int, int]:
        return self.geometry(window)[2:]

    def tray_click(self) -> None:
        """Left-click the right-most icon docked in the tray host (trayer)."""
        [panel] = self.xdotool("search", "--onlyvisible", "--class", "trayer").split()[-1:]
        x, y, width, height = self.geometry(panel)
        self.xdotool("mousemove", str(x + width - 16), str(y + height // 2), "click", "1")

    def bar_click(self) -> None:
        """Left-click the right-most icon on the StatusNotifier host's bar."""
        [bar] = self.xdotool("search", "--onlyvisible", "--class", "gtk-sni-tray").split()[-1:]
        x, y, width, height = self.geometry(bar)
        self.xdotool("mousemove", str(x + width - 16), str(y + height // 2), "click", "1")

    def tray_docked(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            panels = self.xdotool("search", "--onlyvisible", "--class", "trayer").split()
            if any(self.size(p)[0] >= 24 for p in panels):
                return
            time.sleep(0.05)
        raise AssertionError("no icon docked in the tray")

    def wait_window(
        self, name: str = DIALOG_TITLES, timeout: float = 15, count: int = 1
    ) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.windows(name)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no window {name!r} appeared")

    def wait_gone(self, window: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if window not in self.windows(""):
                return
            time.sleep(0.05)
        raise AssertionError(f"window {window} is still there")

    def type_into(self, window: str, text: str) -> None:
        self.xdotool("windowfocus", "--sync", window, "type", "--delay", "10", text)

    def key(self, window: str, *keys: str) -> None:
        self.xdotool("windowfocus", "--sync", window, "key", *keys)

    def properties(self, window: str) -> set[str]:
        """The window's _NET_WM_STATE and _NET_WM_WINDOW_TYPE atoms."""
        out = subprocess.run(
            [sys.executable, "-c", _PROPS, window],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=30,
            check=True,
        )
        return set(out.stdout.split())

    def clipboard(self) -> str:
        out = subprocess.run(
            [sys.executable, "-c", _CLIPBOARD],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=30,
            check=True,
        )
        return out.stdout

    @contextmanager
    def other_program(self, kind: str) -> Iterator[None]:
        """Another program that "grab"s the keyboard, or a focus "thief"."""
        proc = subprocess.Popen(
            [sys.executable, "-c", {"grab": _GRAB, "thief": _THIEF}[kind]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.env},
        )
        assert proc.stdout is not None and proc.stdin is not None
        try:
            line = proc.stdout.readline().strip()
            assert line in ("grabbed", "ready"), line
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def screenshot(self, window: str, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        subprocess.run(
            [sys.executable, "-c", _SHOT, str(path), window],
            check=True,
            env={**os.environ, **self.env},
            timeout=30,
        )
        return path


_DUNSTRC = """
[global]
    font = DejaVu Sans 9
[eid-agent]
    appname = eid-agent
    script = {script}
"""


@contextmanager
def virtual_screen(tray: str = "xembed") -> Iterator[Screen]:
    """Xvfb, a session bus, a notification service and a tray host: trayer (XEmbed), or
    with ``tray="sni"`` a StatusNotifier host on the session bus."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        [XVFB, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            raise AssertionError("Xvfb did not start")
        number += chunk
    os.close(read)
    display = f":{int(number)}"
    bus = subprocess.Popen(
        [DBUS, "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    host = (
        [SNI_HOST, "--watcher", "--top", "--end", "--size", "32"]
        if tray == "sni"
        else [
            TRAYER,
            "--edge",
            "top",
            "--align",
            "right",
            "--widthtype",
            "request",
            "--height",
            "32",
            "--expand",
            "false",
        ]
    )
    tray_host = subprocess.Popen(
        host,
        env={**os.environ, "DISPLAY": display, "DBUS_SESSION_BUS_ADDRESS": address},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # a real notification service on the session bus; a rule writes down what it shows
    folder = Path(tempfile.mkdtemp(prefix="eid-notify-"))
    log, script, rc = folder / "shown.txt", folder / "log.sh", folder / "dunstrc"
    script.write_text(f'#!/bin/sh\necho "$2 | $3" >> {log}\n')
    script.chmod(0o755)
    rc.write_text(_DUNSTRC.format(script=script))
    notifier = subprocess.Popen(
        [DUNST, "-config", str(rc)],
        env={**os.environ, "DISPLAY": display, "DBUS_SESSION_BUS_ADDRESS": address},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Screen(display, address, log)
    finally:
        for helper in (notifier, tray_host, bus, proc):
            helper.terminate()
            helper.wait(timeout=10)


# -- fixtures (a pytest plugin: tests/conftest.py loads it) -------------------------------


@pytest.fixture(scope="module")
def screen() -> Iterator[Screen]:
    """A virtual screen per test module: Xvfb, a session bus, a tray host and a
    notification service."""
    with virtual_screen() as s:
        yield s


@pytest.fixture
def data_dir(tmp_path: Path, make_token: MakeToken) -> Path:
    """A data folder holding Anna's BankID on file (the password is conftest.PASSWORD)."""
    CredentialStore(tmp_path / "data", kdf=FAST_KDF).add(make_token(ANNA))
    return tmp_path / "data"


def recorded(path: Path, count: int = 1, timeout: float = 10.0) -> list[str]:
    """The lines a stand-in program (a browser that writes down where it was sent) has
    written, once there are ``count`` whole ones. Its file exists a moment before its
    line does (the shell opens it, then writes): reading at the first sight of the file
    found it empty, now and then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)
