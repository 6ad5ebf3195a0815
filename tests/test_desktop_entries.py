"""Menu and autostart entries: written for this user only, valid by
desktop-file-validate, runnable as written, and gone after uninstall."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from agent.cli.desktopentry import desktop_entry
from tests.agent_process import BIN

pytestmark = pytest.mark.slow

VALIDATE = shutil.which("desktop-file-validate") or "/usr/bin/desktop-file-validate"


def _agent(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(home / "share"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    return subprocess.run(
        [str(BIN / "eid-agent"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_install_validate_run_uninstall(tmp_path: Path) -> None:
    data = tmp_path / "my data"  # a space, so Exec quoting is exercised
    installed = _agent("desktop", "install", "--data-dir", str(data), home=tmp_path)
    assert installed.returncode == 0, installed.stderr
    menu = tmp_path / "share/applications/eid-agent.desktop"
    autostart = tmp_path / "config/autostart/eid-agent.desktop"
    assert installed.stdout.split("\n")[:2] == [str(menu), str(autostart)]
    for entry in (menu, autostart):
        result = subprocess.run([VALIDATE, str(entry)], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    exec_line = next(line for line in menu.read_text().splitlines() if line.startswith("Exec="))
    argv = shlex.split(exec_line.removeprefix("Exec="))
    assert argv[1:] == ["--data-dir", str(data), "run"]
    help_run = subprocess.run(
        [*argv[:-1], "run", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert help_run.returncode == 0  # the command the entry runs exists and parses
    assert "NoDisplay=true" in autostart.read_text() and "NoDisplay" not in menu.read_text()
    removed = _agent("desktop", "uninstall", home=tmp_path)
    assert removed.returncode == 0 and not menu.exists() and not autostart.exists()
    again = _agent("desktop", "uninstall", home=tmp_path)
    assert again.returncode == 0 and again.stdout == ""


def test_uninstall_leaves_no_listener(tmp_path: Path) -> None:
    from tests.agent_process import AgentProcess

    data = tmp_path / "data"
    assert _agent("desktop", "install", "--data-dir", str(data), home=tmp_path).returncode == 0
    with AgentProcess(data, "--no-cards") as agent:
        agent.ready()
        removed = _agent("desktop", "uninstall", "--data-dir", str(data), home=tmp_path)
        assert removed.returncode == 0, removed.stderr
        assert f"stopped the running agent (pid {agent.proc.pid})" in removed.stderr
        assert agent.proc.wait(timeout=15) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", agent.port), timeout=2).close()
    assert not list((tmp_path / "share/applications").iterdir())
    assert not list((tmp_path / "config/autostart").iterdir())


def test_exec_quoting() -> None:
    text = desktop_entry(["/opt/a b/eid-agent", 'x"y', "$HOME"], autostart=False)
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line == 'Exec="/opt/a b/eid-agent" "x\\"y" "\\$HOME" run'


def test_links_open_in_the_running_agent_through_xdg_open(tmp_path: Path) -> None:
    """The link handler is a real desktop entry made the default with xdg-mime; the real
    xdg-open runs it with the link, and it hands the link to the running agent."""
    from tests.agent_process import AgentProcess

    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "XDG_CURRENT_DESKTOP"}
    env |= {
        "XDG_DATA_HOME": str(tmp_path / "share"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "DISPLAY": os.environ.get("DISPLAY") or ":0",
        "BROWSER": "/bin/false",
    }
    assert _agent("desktop", "install", "--data-dir", str(data), home=tmp_path).returncode == 0
    handler = tmp_path / "share/applications/eid-agent-link.desktop"
    checked = subprocess.run([VALIDATE, str(handler)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and checked.stdout == "", checked.stdout + checked.stderr
    query = [
        shutil.which("xdg-mime") or "/usr/bin/xdg-mime",
        "query",
        "default",
        "x-scheme-handler/eid-agent",
    ]
    said = subprocess.run(query, env=env, capture_output=True, text=True, check=False)
    assert said.stdout.strip() == "eid-agent-link.desktop", said
    link = "eid-agent:///?autostarttoken=" + "t" * 43 + "&server=https://relay.invalid"
    with AgentProcess(data, "--no-bridge", "--no-cards") as agent:
        agent.ready()
        opened = subprocess.run(
            [shutil.which("xdg-open") or "/usr/bin/xdg-open", link],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert opened.returncode == 0, opened.stdout + opened.stderr
        # the agent took it and says, in its own console, that the relay is not there
        agent.wait_for_output("[10079]", timeout=30)
    assert _agent("desktop", "uninstall", home=tmp_path).returncode == 0
    assert not handler.exists()
    said = subprocess.run(query, env=env, capture_output=True, text=True, check=False)
    assert said.stdout.strip() == "", said


def test_a_link_handler_alone_for_a_demo(tmp_path: Path) -> None:
    """``--link-only`` writes the handler with its options and no menu or autostart entry
    (``./dev demo`` registers it for its lifetime); uninstalling it leaves the others."""
    data = tmp_path / "data"
    ca = tmp_path / "relay-ca.pem"
    assert _agent("desktop", "install", "--data-dir", str(data), home=tmp_path).returncode == 0
    menu = tmp_path / "share/applications/eid-agent.desktop"
    menu.unlink()  # as if only a demo had run here
    (tmp_path / "config/autostart/eid-agent.desktop").unlink()
    installed = _agent(
        "desktop",
        "install",
        "--link-only",
        "--data-dir",
        str(data),
        "--no-bridge",
        "--relay-ca",
        str(ca),
        "--allow-http-relay",
        home=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    handler = tmp_path / "share/applications/eid-agent-link.desktop"
    assert installed.stdout.split() == [str(handler)] and not menu.exists()
    exec_line = next(line for line in handler.read_text().splitlines() if line.startswith("Exec="))
    assert exec_line.split()[1:] == [
        "--data-dir",
        str(data),
        "open",
        "--no-bridge",
        "--relay-ca",
        str(ca),
        "--allow-http-relay",
        "%u",
    ]
    assert _agent("desktop", "install", "--data-dir", str(data), home=tmp_path).returncode == 0
    removed = _agent("desktop", "uninstall", "--link-only", home=tmp_path)
    assert removed.returncode == 0 and removed.stdout.split() == [str(handler)]
    assert menu.exists() and not handler.exists()


def test_a_link_handler_alone_on_a_fresh_account(tmp_path: Path) -> None:
    """No ~/.local/share/applications yet (``./dev demo`` on a new account): the folder
    is made, not a FileNotFoundError."""
    installed = _agent(
        "desktop", "install", "--link-only", "--data-dir", str(tmp_path / "d"), home=tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    handler = tmp_path / "share/applications/eid-agent-link.desktop"
    assert installed.stdout.split() == [str(handler)] and handler.is_file()
    assert _agent("desktop", "uninstall", "--link-only", home=tmp_path).returncode == 0
