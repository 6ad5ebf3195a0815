"""A virtual screen for the desktop UI's tests: Xvfb on a free display, xdotool to type
and press keys as a person would, and screenshots of what is on the screen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

XDOTOOL = shutil.which("xdotool") or "/usr/bin/xdotool"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"
DBUS = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
TRAYER = shutil.which("trayer") or "/usr/bin/trayer"
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


@dataclass
class Screen:
    display: str
    bus: str = ""  # a D-Bus session bus of its own (the tray's notifications need one)

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display, "DBUS_SESSION_BUS_ADDRESS": self.bus}

    def xdotool(self, *args: str, timeout: float = 15) -> str:
        result = subprocess.run(
            [XDOTOOL, *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **self.env}, check=False,
        )  # fmt: skip
        return result.stdout.strip()

    def windows(self, name: str = "eid-agent") -> list[str]:
        """Visible windows with ``name`` in their title, big enough to be dialogs (the
        tray icon's little window carries the name too)."""
        out = self.xdotool("search", "--onlyvisible", "--name", name)
        return [w for w in out.split() if w and self.size(w)[0] >= 100]

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        out = self.xdotool("getwindowgeometry", "--shell", window)
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        try:
            return (int(values["X"]), int(values["Y"]), int(values["WIDTH"]),
                    int(values["HEIGHT"]))  # fmt: skip
        except KeyError:
            return (0, 0, 0, 0)  # gone meanwhile

    def size(self, window: str) -> tuple[int, int]:
        return self.geometry(window)[2:]

    def tray_click(self) -> None:
        """Left-click the right-most icon docked in the tray host (trayer)."""
        [panel] = self.xdotool("search", "--onlyvisible", "--class", "trayer").split()[-1:]
        x, y, width, height = self.geometry(panel)
        self.xdotool("mousemove", str(x + width - 16), str(y + height // 2), "click", "1")

    def tray_docked(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            panels = self.xdotool("search", "--onlyvisible", "--class", "trayer").split()
            if any(self.size(p)[0] >= 24 for p in panels):
                return
            time.sleep(0.05)
        raise AssertionError("no icon docked in the tray")

    def wait_window(self, name: str = "eid-agent", timeout: float = 15,
                    count: int = 1) -> list[str]:  # fmt: skip
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

    def screenshot(self, window: str, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        subprocess.run([sys.executable, "-c", _SHOT, str(path), window], check=True,
                       env={**os.environ, **self.env}, timeout=30)  # fmt: skip
        return path


@contextmanager
def virtual_screen() -> Iterator[Screen]:
    read, write = os.pipe()
    proc = subprocess.Popen([XVFB, "-displayfd", str(write), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
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
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    tray = subprocess.Popen([TRAYER, "--edge", "top", "--align", "right", "--widthtype",
                             "request", "--height", "32", "--expand", "false"],
                            env={**os.environ, "DISPLAY": display},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield Screen(display, address)
    finally:
        for helper in (tray, bus, proc):
            helper.terminate()
            helper.wait(timeout=10)
