"""First install, update, repair and uninstall as a person does them, on a clean HOME:
the release tools publish to a repository served on loopback with its install page; the
installer from that page installs per user and starts the agent on its real port."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent_process import BIN
from tests.conftest import ANNA, FAST_KDF, MakeToken
from tests.update_kit import Repo, repository, wait_for

pytestmark = pytest.mark.slow

PORT = 24721  # the installed agent runs as a person's would: on the documented port
SS = shutil.which("ss") or "/usr/bin/ss"
VALIDATE = shutil.which("desktop-file-validate") or "/usr/bin/desktop-file-validate"


@dataclass
class Home:
    """A person's clean home folder, and what they run there."""

    path: Path

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("XDG_", "PYTHON", "VIRTUAL_ENV", "DISPLAY", "WAYLAND"))
        }
        return env | {
            "HOME": str(self.path),
            "PATH": f"{self.path}/.local/bin:/usr/bin:/bin",
            "XDG_DATA_HOME": str(self.path / ".local/share"),
            "XDG_CONFIG_HOME": str(self.path / ".config"),
        }

    @property
    def data(self) -> Path:
        return self.path / ".local/share/eid-agent"

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            cwd=self.path,
        )

    def install(self, installer: Path, *options: str) -> subprocess.CompletedProcess[str]:
        """Run the installer as the person would. These tests run as root (CI does), where
        the installer stops unless told that root itself is meant."""
        as_root = ("--as-root",) if os.geteuid() == 0 else ()
        return self.run("sh", str(installer), *options, *as_root)

    def files(self) -> set[str]:
        return {
            str(p.relative_to(self.path))
            for p in self.path.rglob("*")
            if p.is_file() or p.is_symlink()
        }


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    (tmp_path / "home").mkdir()
    person = Home(tmp_path / "home")
    if _listening(PORT):
        pytest.fail(f"port {PORT} is taken on this machine; the installed agent needs it")
    yield person
    command = person.path / ".local/bin/eid-agent"
    if command.exists():
        person.run(str(command), "uninstall")  # never leave an agent running


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        yield r


def _listening(port: int) -> bool:
    out = subprocess.run([SS, "-ltnH"], capture_output=True, text=True, check=True).stdout
    return any(line.split()[3].endswith(f":{port}") for line in out.splitlines())


def _release(repo: Repo, version: str, *policy: str) -> None:
    """``eid-release publish`` as the administrator runs it."""
    result = subprocess.run(
        [
            str(BIN / "eid-release"),
            "publish",
            version,
            str(repo.bundle(version)),
            "--dir",
            str(repo.folder),
            "--url",
            repo.server.url.rstrip("/"),
            *policy,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "install page:" in result.stdout
    assert f"signed with the release: eid-agent-{version}-linux.run" in result.stdout


def _download_installer(page_url: str, into: Path) -> Path:
    """What a person does on the install page: download, and check the SHA-256."""
    page = urllib.request.urlopen(page_url, timeout=10).read().decode()  # noqa: S310
    name = re.search(r'<a id="installer" href="([^"]+)"', page)
    digest = re.search(r'<code class="sum" id="sha256">([0-9a-f]{64})</code>', page)
    assert name and digest, page
    assert (
        'lang="sv"' in page
        and 'lang="en"' in page
        and "http" not in page.split("<body>")[1].replace(page_url, "")
    )  # no external resources
    data = urllib.request.urlopen(page_url + name.group(1), timeout=30).read()  # noqa: S310
    assert hashlib.sha256(data).hexdigest() == digest.group(1)
    into.mkdir(parents=True, exist_ok=True)
    path = into / name.group(1)
    path.write_bytes(data)
    return path


def _info() -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/v1/info", headers={"X-Eid-Agent": "1"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        doc: dict[str, object] = json.loads(response.read())
        return doc


def test_install_update_uninstall_on_a_clean_home(
    repo: Repo, home: Home, tmp_path: Path, make_token: MakeToken
) -> None:
    _release(repo, "1.0.0")
    before_files, before_ports = home.files(), _listening(PORT)
    installer = _download_installer(repo.server.url + "install/", tmp_path)
    started = time.monotonic()
    result = home.install(installer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "eid-agent is running" in result.stdout, result.stdout
    took = time.monotonic() - started
    assert _info()["version"] == "1.0.0" and took < 60
    command = home.path / ".local/bin/eid-agent"
    for entry in (
        home.path / ".local/share/applications/eid-agent.desktop",
        home.path / ".config/autostart/eid-agent.desktop",
        home.path / ".local/share/applications/eid-agent-link.desktop",
    ):
        checked = subprocess.run(
            [VALIDATE, str(entry)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0 and not checked.stdout, checked.stdout
        assert str(home.data / "install/current/eid-agent") in entry.read_text()
    # eid-agent:// links open the installed agent: its handler is the person's default
    mimeapps = (home.path / ".config/mimeapps.list").read_text()
    assert "x-scheme-handler/eid-agent=eid-agent-link.desktop" in mimeapps
    # the trust anchor was pinned from the installer, not fetched
    pinned = home.data / "install/tuf/metadata/root.json"
    assert json.loads(pinned.read_bytes())["signed"]["_type"] == "root"
    # a BankID the person has
    from agent.credentials import CredentialStore

    CredentialStore(home.data, kdf=FAST_KDF).add(make_token(ANNA))
    kept = home.files() - before_files
    # an update from the repository applies
    _release(repo, "1.1.0")
    repo.server.log.clear()
    applied = home.run(str(command), "update", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "1.0.0 → 1.1.0" in applied.stdout, applied.stdout
    # the first update after an installer install is the patch: the installer's archive
    # was kept, so the 1.1.0 archive is never downloaded
    assert repo.server.served("/targets/eid-agent-1.1.0.patch")
    assert not repo.server.served("/targets/eid-agent-1.1.0.tar.gz")
    try:
        wait_for(lambda: _info()["version"] == "1.1.0", what="1.1.0 serving")
    except AssertionError as exc:  # say what the agent did: this has to be read afterwards
        log = home.data / "agent.log"
        said = log.read_text()[-6000:] if log.exists() else "(no log)"
        raise AssertionError(f"{exc}; update apply said {applied.stdout!r}; log:\n{said}") from None
    # uninstall: nothing left but the person's BankID, and they are told where it is
    removed = home.run(str(command), "uninstall")
    assert removed.returncode == 0, removed.stderr
    assert f"kept your BankIDs and settings: {home.data / 'tokens'}" in removed.stdout
    assert _listening(PORT) == before_ports is False
    credentials = {f for f in kept if f.startswith(".local/share/eid-agent/tokens/")}
    assert credentials and home.files() == before_files | credentials
    assert not command.exists() and not (home.data / "install").exists()


def test_reinstalling_keeps_bankids_and_settings_and_refuses_older(
    repo: Repo, home: Home, tmp_path: Path, make_token: MakeToken
) -> None:
    from agent.credentials import CredentialStore

    _release(repo, "1.0.0")
    older = _download_installer(repo.server.url + "install/", tmp_path)
    _release(repo, "1.1.0")
    newer = _download_installer(repo.server.url + "install/", tmp_path)
    assert home.install(newer).returncode == 0
    CredentialStore(home.data, kdf=FAST_KDF).add(make_token(ANNA))
    settings = home.path / ".config/eid-agent/config.toml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('[ui]\nlanguage = "sv"\n')
    refused = home.install(older)
    assert refused.returncode == 1
    assert "1.0.0 is older than the installed 1.1.0 (use --force)" in refused.stderr
    assert _info()["version"] == "1.1.0"  # untouched, still running
    repaired = home.install(newer)  # the same version again: a repair
    assert repaired.returncode == 0, repaired.stderr
    forced = home.install(older, "--force")
    assert forced.returncode == 0, forced.stderr
    wait_for(lambda: _info()["version"] == "1.0.0", what="1.0.0 serving")
    assert [c.owner.name for c in CredentialStore(home.data).credentials()] == [ANNA.name]
    assert settings.read_text() == '[ui]\nlanguage = "sv"\n'


def test_the_update_fall_back_leads_to_an_installer_that_repairs(
    repo: Repo, home: Home, tmp_path: Path
) -> None:
    """Repeated failed updates → notice 10023 → its OK opens the install page in the
    person's browser (a registered stand-in that writes the address down) → the installer
    from that page repairs the install. (The failures are asked for with "update now":
    automatic retries are hours apart by design.)"""
    from tests.agent_process import AgentProcess
    from tests.desktop_kit import recorded, virtual_screen

    _release(repo, "1.0.0")
    first = _download_installer(repo.server.url + "install/", tmp_path)
    assert home.install(first, "--no-start").returncode == 0
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    apps = home.path / ".local/share/applications"
    (apps / "test-browser.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Test browser\n"
        f"Exec={browser} %u\nMimeType=x-scheme-handler/http;x-scheme-handler/https;\n"
    )
    (home.path / ".config/mimeapps.list").write_text(
        "[Default Applications]\nx-scheme-handler/http=test-browser.desktop\n"
    )
    _release(repo, "1.1.0", "--failure-threshold", "2")  # and no --manual-url
    for name in ("eid-agent-1.1.0.patch", "eid-agent-1.1.0.tar.gz"):  # a broken mirror
        repo.server.tamper[f"/targets/{name}"] = lambda b: b[:-1] + bytes([b[-1] ^ 1])
    with virtual_screen() as screen:
        agent = AgentProcess(
            home.data,
            "--no-cards",
            "--update-tick",
            "0.2",
            "--ui",
            "desktop",
            env=home.env | screen.env,
            program=home.data / "install/current/eid-agent",
        )
        with agent:
            agent.ready()
            for _ in range(2):
                asked = home.run(str(home.data / "install/current/eid-agent"), "update", "apply")
                assert asked.returncode == 1, asked.stdout + asked.stderr
            [notice] = screen.wait_window("failed several times", timeout=30)
            screen.screenshot(notice, "notice-update-failed-repeatedly")
            screen.key(notice, "Return")  # OK: open the install page
            [page] = recorded(opened)
    assert page == repo.server.url + "install/"  # the default: next to the repository
    repo.server.tamper.clear()
    installer = _download_installer(page, tmp_path / "from-page")
    repaired = home.install(installer)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert _info()["version"] == "1.1.0"


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal is for root")
@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("sv_SE.UTF-8", "kör inte installationen som root"),
        ("C.UTF-8", "do not run the installer as root"),
    ],
)
def test_the_installer_run_as_root_stops_and_says_why(
    repo: Repo, home: Home, tmp_path: Path, lang: str, said: str
) -> None:
    _release(repo, "1.0.0")
    installer = _download_installer(repo.server.url + "install/", tmp_path)
    before = home.files()
    env = home.env | {"LANG": lang}
    refused = subprocess.run(
        [shutil.which("sh") or "/bin/sh", str(installer)],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 77, refused.stderr
    assert said in refused.stderr and "eid-agent_1.0.0_*.deb" in refused.stderr
    assert "--as-root" in refused.stderr and "Traceback" not in refused.stderr
    assert home.files() == before and not _listening(PORT)


def test_an_installer_whose_archive_the_repository_did_not_sign_installs_nothing(
    repo: Repo, home: Home, tmp_path: Path
) -> None:
    """Someone rebuilds the installer around another 1.0.0 (a line added to the agent):
    the pinned root is the real one, the version is the real one, but the repository's
    targets key signed other bytes."""
    from installer.archive import archive_bytes
    from installer.runfile import build_installer

    _release(repo, "1.0.0")
    forged = tmp_path / "forged"
    shutil.copytree(repo.bundle("1.0.0"), forged)
    with (forged / "lib/agent/__init__.py").open("a") as init:
        init.write("SOMETHING_ELSE = 1\n")
    (tmp_path / "forged.tar.gz").write_bytes(archive_bytes(forged, epoch=0))
    installer = build_installer(
        tmp_path / "out",
        tmp_path / "forged.tar.gz",
        "1.0.0",
        repo.root_json.read_bytes(),
        repo.server.url.rstrip("/"),
        epoch=0,
    )
    refused = home.install(installer, "--no-start")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "does not hold the version 1.0.0 that the update server" in refused.stderr
    assert not (home.data / "install/current").exists()
    assert not list((home.data / "install/tuf/targets").glob("*.tar.gz"))
    # the real installer, from the page, is checked and installs
    real = _download_installer(repo.server.url + "install/", tmp_path)
    installed = home.install(real, "--no-start")
    assert installed.returncode == 0, installed.stderr
    assert "could not be reached" not in installed.stdout
    kept = home.data / "install/tuf/targets/eid-agent-1.0.0.tar.gz"
    signed = repo.folder / "repository/targets/eid-agent-1.0.0.tar.gz"
    assert kept.read_bytes() == signed.read_bytes()  # what the first update patches


def test_an_installer_away_from_its_repository_installs_unchecked_and_says_so(
    repo: Repo, home: Home, tmp_path: Path
) -> None:
    _release(repo, "1.0.0")
    real = _download_installer(repo.server.url + "install/", tmp_path)
    repo.server.down = True
    installed = home.install(real, "--no-start")
    assert installed.returncode == 0, installed.stderr
    assert "could not be reached to check the installer; installed as it came" in installed.stdout


def test_an_installer_changed_after_signing_installs_nothing(
    repo: Repo, home: Home, tmp_path: Path
) -> None:
    """The installer file itself is in the release's signed metadata: one changed after
    publishing (here a line of its script, its payload intact) is refused by the install
    it starts. (A script changed to skip the check is stopped by nothing it runs: that is
    what the page's checksum and the person's care are for.)"""
    _release(repo, "1.0.0")
    real = _download_installer(repo.server.url + "install/", tmp_path)
    data = real.read_bytes()
    changed = data.replace(b"installs for this user only", b"installs for this user ONLY", 1)
    assert changed != data and len(changed) == len(data)
    real.write_bytes(changed)
    refused = home.install(real, "--no-start")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "is not the installer the repository signed" in refused.stderr
    assert not (home.data / "install/current").exists()


def test_uninstall_from_the_installed_copy_with_no_agent_running(
    repo: Repo, home: Home, tmp_path: Path
) -> None:
    """The installed command removes its own folder: every text it says afterwards must
    have been read before (it crashed with a double traceback, 3 of 3 times). And a
    person whose PATH lacks ~/.local/bin is told how to reach the command."""
    _release(repo, "1.0.0")
    installer = _download_installer(repo.server.url + "install/", tmp_path)
    no_local_bin = home.env | {"PATH": "/usr/bin:/bin"}
    installed = subprocess.run(
        [
            shutil.which("sh") or "/bin/sh",
            str(installer),
            "--no-start",
            *(["--as-root"] if os.geteuid() == 0 else []),
        ],
        capture_output=True,
        text=True,
        env=no_local_bin,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
        cwd=home.path,
    )
    assert installed.returncode == 0, installed.stderr
    said = installed.stdout + installed.stderr
    assert f"{home.path}/.local/bin is not on your PATH" in said, said
    command = home.path / ".local/bin/eid-agent"
    removed = home.run(str(command), "uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "Traceback" not in removed.stderr
    assert f"removed {home.data / 'install'}" in removed.stdout, removed.stdout
    assert not (home.data / "install").exists() and not command.exists()
