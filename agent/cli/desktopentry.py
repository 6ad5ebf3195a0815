"""``eid-agent desktop install|uninstall``: the XDG desktop entry (menus, launchers), the
autostart entry (the agent starts with the session) and the handler of ``eid-agent://``
links (made the default with ``xdg-mime``), for this user only.

The entries run the installed version's ``current`` launcher when the agent was
installed with ``eid-agent install`` (so an update needs no new entry), else the
command this process was started as. Texts are the catalogue's; both files are written
atomically and validate with ``desktop-file-validate`` (a test checks).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from agent.cli.io import Io
from agent.cli.options import add_link_options, link_options
from agent.updater import running_layout
from eidcore.atomicfile import atomic_write_bytes
from eidcore.messages import Term
from eidcore.paths import default_data_dir, xdg_applications_dir, xdg_autostart_dir, xdg_config_dir

__all__ = [
    "ENTRY_NAME",
    "LINK_ENTRY_NAME",
    "add_arguments",
    "desktop_entry",
    "install_entries",
    "link_entry",
    "run",
    "uninstall_entries",
    "without_link_default",
]

ENTRY_NAME = "eid-agent.desktop"
LINK_ENTRY_NAME = "eid-agent-link.desktop"
SCHEME = "x-scheme-handler/eid-agent"


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    install = actions.add_parser("install", parents=[common], help="add the entries")
    add_link_options(install)
    install.add_argument(
        "--link-only",
        action="store_true",
        help="only the eid-agent:// handler (no menu or autostart)",
    )
    uninstall = actions.add_parser("uninstall", parents=[common], help="remove the entries")
    uninstall.add_argument(
        "--link-only",
        action="store_true",
        help="only the eid-agent:// handler; the agent keeps running",
    )


def run(io: Io, args: argparse.Namespace) -> int:
    if args.action == "install":
        extra = ["--data-dir", str(args.data_dir.resolve())] if args.data_dir else []
        paths = install_entries(
            args.data_dir or default_data_dir(),
            extra,
            link_extra=link_options(args),
            link_only=args.link_only,
        )
    elif args.link_only:
        paths = uninstall_entries(link_only=True)
    else:
        from agent.app import stop_running

        paths = uninstall_entries()
        stopped = stop_running(args.data_dir or default_data_dir())  # no listener left
        if stopped is not None:
            io.stderr.write(io.term(Term.CLI_STOPPED_AGENT, pid=stopped) + "\n")
    for path in paths:
        io.stdout.write(f"{path}\n")
    return 0


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


def link_entry(command: list[str], options: list[str] | None = None) -> str:
    """The link handler's entry. Pure. Browsers run it through xdg-open, whose generic
    version splits Exec on blanks and does not unquote (URL-SCHEME.md), so every argument
    must be plain: the caller checks."""
    return (
        "\n".join(
            [
                "[Desktop Entry]",
                "Type=Application",
                "Name=eid-agent",
                "Comment=Opens identification and signing links from websites",
                "Comment[sv]=Öppnar legitimerings- och underskriftslänkar från webbplatser",
                "Exec=" + " ".join([*command, "open", *(options or []), "%u"]),
                "Icon=dialog-password",
                "Terminal=false",
                "NoDisplay=true",
                f"MimeType={SCHEME};",
            ]
        )
        + "\n"
    )


def without_link_default(mimeapps: str) -> str:
    """``mimeapps.list`` without our handler as anyone's default; empty when nothing but
    section headers would be left (xdg-mime made the file for us). Pure."""
    kept = [
        line
        for line in mimeapps.splitlines()
        if not (line.startswith(f"{SCHEME}=") and LINK_ENTRY_NAME in line)
    ]
    if all(not line.strip() or line.strip().startswith("[") for line in kept):
        return ""
    return "\n".join(kept) + "\n"


def _plain(arg: str) -> bool:
    return bool(arg) and _quote(arg) == arg and "%" not in arg


def _command(data_dir: Path) -> list[str]:
    layout = running_layout(data_dir)
    if layout is not None:
        return [str(layout.launcher())]
    return [str(Path(sys.argv[0]).resolve())]


def install_entries(
    data_dir: Path,
    extra: list[str] | None = None,
    *,
    launcher: Path | None = None,
    link_extra: list[str] | None = None,
    link_only: bool = False,
) -> list[Path]:
    """Write the entries (running ``launcher``, else this agent's own; ``link_extra``: the
    handler's own options); returns their paths. The handler is left out when an argument
    is not plain (xdg-open would pass it mangled). ``link_only``: the handler alone (a
    demo's, for its own lifetime)."""
    command = [*([str(launcher)] if launcher else _command(data_dir)), *(extra or [])]
    written = []
    menus = () if link_only else ((xdg_applications_dir(), False), (xdg_autostart_dir(), True))
    for folder, autostart in menus:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ENTRY_NAME
        atomic_write_bytes(path, desktop_entry(command, autostart=autostart).encode(), mode=0o644)
        written.append(path)
    if all(_plain(arg) for arg in [*command, *(link_extra or [])]):
        path = xdg_applications_dir() / LINK_ENTRY_NAME
        path.parent.mkdir(parents=True, exist_ok=True)  # a fresh account has none yet
        atomic_write_bytes(path, link_entry(command, link_extra).encode(), mode=0o644)
        written.append(path)
        xdg_mime = shutil.which("xdg-mime")
        if xdg_mime is not None:
            subprocess.run(
                [xdg_mime, "default", LINK_ENTRY_NAME, SCHEME],
                capture_output=True,
                timeout=30,
                check=False,
            )
    return written


def uninstall_entries(*, link_only: bool = False) -> list[Path]:
    """Remove the entries (``link_only``: the handler alone); returns those that were
    there."""
    removed = []
    menus = (
        () if link_only else (xdg_applications_dir() / ENTRY_NAME, xdg_autostart_dir() / ENTRY_NAME)
    )
    for path in (*menus, xdg_applications_dir() / LINK_ENTRY_NAME):
        if path.exists():
            path.unlink()
            removed.append(path)
    mimeapps = xdg_config_dir() / "mimeapps.list"
    try:
        text = mimeapps.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return removed
    left = without_link_default(text)
    if not left:
        mimeapps.unlink()
    elif left != text:
        atomic_write_bytes(mimeapps, left.encode(), mode=0o644)
    return removed
