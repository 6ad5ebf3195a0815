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

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display}

    def xdotool(self, *args: str, timeout: float = 15) -> str:
        result = subprocess.run(
            [XDOTOOL, *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **self.env}, check=False,
        )  # fmt: skip
        return result.stdout.strip()

    def windows(self, name: str = "eid-agent") -> list[str]:
        """Visible windows with ``name`` in their title."""
        out = self.xdotool("search", "--onlyvisible", "--name", name)
        return [w for w in out.split() if w]

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
    try:
        yield Screen(f":{int(number)}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
