"""Everything that holds credentials, personal data or the sites a person used is the
owner's alone: created so, repaired when it is not, refused when it is another user's,
and reported by doctor."""

# ruff: noqa: S103 - these tests open folders and files to others on purpose

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest

from agent.cli.logfile import BACKUPS, MAX_BYTES, log_to_file
from agent.credentials import CredentialStore
from eidcore.atomicfile import NotPrivate, private_dir
from issuer.db import open_database
from tests.agent_process import BIN, AgentProcess
from tests.conftest import ANNA, FAST_KDF, MakeToken


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> object:
    old = os.umask(0o022)  # what a desktop session has: new files 0644, folders 0755
    yield
    os.umask(old)


def test_the_store_makes_its_folders_owner_only_and_repairs_them(
    tmp_path: Path, make_token: MakeToken
) -> None:
    store = CredentialStore(tmp_path / "data", kdf=FAST_KDF)
    info = store.add(make_token(ANNA))
    assert _mode(tmp_path / "data") == 0o700 and _mode(store.directory) == 0o700
    os.chmod(store.directory, 0o777)
    os.chmod(tmp_path / "data", 0o755)
    store.remove(info.id)
    assert _mode(tmp_path / "data") == 0o700 and _mode(store.directory) == 0o700


def test_another_users_folder_is_refused_not_used(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("making a folder another user's needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 65534, 65534)  # nobody
    with pytest.raises(NotPrivate):
        private_dir(theirs)
    result = subprocess.run(
        [
            str(BIN / "eid-agent"),
            "credentials",
            "import",
            "/dev/null",
            "--data-dir",
            str(theirs),
            "--lang",
            "en",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    run = subprocess.run(
        [
            str(BIN / "eid-agent"),
            "run",
            "--ui",
            "console",
            "--no-cards",
            "--port",
            "1",
            "--data-dir",
            str(theirs),
            "--lang",
            "en",
            "--config",
            str(tmp_path / "n.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 1 and "[10075]" in run.stderr, run.stderr


def test_the_agent_starts_with_an_owner_only_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    with AgentProcess(data, "--no-cards") as agent:
        agent.ready()
    assert _mode(data) == 0o700


def test_the_log_file_is_owner_only_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "agent.log"
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        log_to_file(path)
        root.setLevel(logging.INFO)
        line = "x" * 1000
        for _ in range((BACKUPS + 3) * MAX_BYTES // 1000):
            logging.getLogger("agent.test").info("site https://bank.example asked %s", line)
    finally:
        for handler in list(root.handlers):
            handler.close()
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["agent.log", *(f"agent.log.{i}" for i in range(1, 4))]
    for f in files:
        assert _mode(f) == 0o600 and f.stat().st_size <= MAX_BYTES + 2000


def test_the_issuers_database_is_owner_only_wherever_it_is(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "issuer.db"
    open_database(str(db))
    assert _mode(db) == 0o600
    os.chmod(db, 0o644)
    open_database(str(db))
    assert _mode(db) == 0o600


def test_doctor_names_what_is_open_to_others(tmp_path: Path, make_token: MakeToken) -> None:
    data = tmp_path / "data"
    CredentialStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    os.chmod(data / "tokens", 0o755)
    (data / "agent.log").write_text("")
    os.chmod(data / "agent.log", 0o644)
    result = subprocess.run(
        [
            str(BIN / "eid-agent"),
            "doctor",
            "--json",
            "--data-dir",
            str(data),
            "--port",
            "1",
            "--config",
            str(tmp_path / "none.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["permissions"]["status"] == "warning"
    assert "tokens" in checks["permissions"]["detail"]
    assert "agent.log" in checks["permissions"]["detail"]
