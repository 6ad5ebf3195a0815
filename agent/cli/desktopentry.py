"""``eid-agent desktop install|uninstall``: the XDG desktop entry (menus, launchers) and
the autostart entry (the agent starts with the session), for this user only.

The entries run the installed version's ``current`` launcher when the agent was
installed with ``eid-agent install`` (so an update needs no new entry), else the
command this process was started as. Texts are the catalogue's; both files are written
atomically and validate with ``desktop-file-validate`` (a test checks).
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.updater.install import running_layout
from eidcore.atomicfile import atomic_write_bytes
from eidcore.paths import xdg_applications_dir, xdg_autostart_dir

__all__ = ["ENTRY_NAME", "desktop_entry", "install_entries", "uninstall_entries"]

ENTRY_NAME = "eid-agent.desktop"


def _quote(arg: str) -> str:
    """Quoting of the Desktop Entry Specification's Exec key."""
    if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`="):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'


def desktop_entry(command: list[str], *, autostart: bool) -> str:
    """The entry's text. Pure."""
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Name=eid-agent",
        "GenericName=E-identification",
        "GenericName[sv]=E-legitimation",
        "Comment=BankID on file and on card for websites",
        "Comment[sv]=BankID på fil och på kort för webbplatser",
        "Exec=" + " ".join(_quote(a) for a in [*command, "run"]),
        "Icon=dialog-password",
        "Terminal=false",
        "Categories=System;Security;",
        "StartupNotify=false",
    ]
    if autostart:
        lines += ["X-GNOME-Autostart-enabled=true", "NoDisplay=true"]
    return "\n".join(lines) + "\n"


def _command(data_dir: Path) -> list[str]:
    layout = running_layout(data_dir)
    if layout is not None:
        return [str(layout.launcher())]
    return [str(Path(sys.argv[0]).resolve())]


def install_entries(data_dir: Path, extra: list[str] | None = None, *,
                    launcher: Path | None = None) -> list[Path]:  # fmt: skip
    """Write both entries (running ``launcher``, else this agent's own); returns their
    paths."""
    command = [*([str(launcher)] if launcher else _command(data_dir)), *(extra or [])]
    written = []
    for folder, autostart in ((xdg_applications_dir(), False), (xdg_autostart_dir(), True)):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ENTRY_NAME
        atomic_write_bytes(path, desktop_entry(command, autostart=autostart).encode(), mode=0o644)
        written.append(path)
    return written


def uninstall_entries() -> list[Path]:
    """Remove both entries; returns those that were there."""
    removed = []
    for folder in (xdg_applications_dir(), xdg_autostart_dir()):
        path = folder / ENTRY_NAME
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
