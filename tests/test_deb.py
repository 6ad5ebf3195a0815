"""The Debian package, as an administrator and a person meet it: apt-get installs it, the
person's login hook makes their own install (and starts their agent on its real port),
and purging the package leaves no agent, listener or entry behind for anybody."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import BIN
from tests.test_installer import PORT, SS, VALIDATE, _listening
from tests.update_kit import Repo, repository

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="installing a package needs root"),
]

APT = shutil.which("apt-get") or "/usr/bin/apt-get"
DPKG_QUERY = shutil.which("dpkg-query") or "/usr/bin/dpkg-query"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
USERADD = shutil.which("useradd") or "/usr/sbin/useradd"
USERDEL = shutil.which("userdel") or "/usr/sbin/userdel"
PKILL = shutil.which("pkill") or "/usr/bin/pkill"


def _run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        list(argv), capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _installed() -> bool:
    out = _run(DPKG_QUERY, "-W", "-f=${Status}", "eid-agent").stdout
    return "install ok installed" in out


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        yield r


@pytest.fixture
def person() -> Iterator[str]:
    if _installed():
        pytest.fail("eid-agent is installed on this machine already; the test needs it absent")
    if _listening(PORT):
        pytest.fail(f"port {PORT} is taken on this machine; the person's agent needs it")
    name = f"eid{secrets.token_hex(4)}"
    created = _run(
        USERADD, "--create-home", "--home-dir", f"/home/{name}", "--shell", "/bin/sh", name
    )
    assert created.returncode == 0, created.stderr
    try:
        yield name
    finally:
        if _installed():
            _run(APT, "purge", "-y", "eid-agent")
        _run(PKILL, "-u", name)
        _run(USERDEL, "--remove", name)


def test_the_package_installs_per_person_and_purges_cleanly(
    repo: Repo, person: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"  # the real form, on the Python the package depends on
    built = _run(
        str(BIN / "eid-release"), "bundle", "1.0.0", str(bundle), "--python", "/usr/bin/python3.11"
    )
    assert built.returncode == 0, built.stderr
    published = _run(
        str(BIN / "eid-release"),
        "publish",
        "1.0.0",
        str(bundle),
        "--dir",
        str(repo.folder),
        "--url",
        repo.server.url.rstrip("/"),
        "--deb",
        "Test Administrators <it@bank.example>",
    )
    assert published.returncode == 0, published.stderr
    [deb] = (repo.folder / "repository/install").glob("eid-agent_1.0.0_*.deb")
    assert deb.name in (repo.folder / "repository/install/index.html").read_text()
    installed = _run(APT, "install", "-y", str(deb))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    hook = Path("/etc/xdg/autostart/eid-agent-setup.desktop")
    checked = _run(VALIDATE, str(hook))
    assert checked.returncode == 0 and not checked.stdout, checked.stdout
    home = Path(f"/home/{person}")
    login = [
        RUNUSER,
        "-u",
        person,
        "--",
        "env",
        "-i",
        f"HOME={home}",
        "PATH=/usr/bin:/bin",
        "/usr/lib/eid-agent/first-run",
    ]
    first = _run(*login)  # what the person's session runs at login
    assert first.returncode == 0, first.stdout + first.stderr
    assert "eid-agent is running" in first.stdout
    assert _listening(PORT)
    owner = _run(SS, "-ltnpH", f"sport = :{PORT}").stdout
    assert "python" in owner
    for entry in (
        home / ".local/share/applications/eid-agent.desktop",
        home / ".config/autostart/eid-agent.desktop",
        home / ".local/share/applications/eid-agent-link.desktop",
    ):
        assert entry.exists() and entry.stat().st_uid != 0  # the person's own
    # the person's eid-agent:// handler, made their default at their first login
    assert "x-scheme-handler/eid-agent=" in (home / ".config/mimeapps.list").read_text()
    again = _run(*login)  # the next login: their own copy is there, nothing to do
    assert again.returncode == 0 and again.stdout == ""
    purged = _run(APT, "purge", "-y", "eid-agent")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not _installed() and not _listening(PORT)
    assert not Path("/usr/lib/eid-agent").exists() and not hook.exists()
    left = {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() or p.is_symlink()}
    assert not any("eid-agent" in p for p in left), left
