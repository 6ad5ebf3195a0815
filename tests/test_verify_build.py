"""``eid-release verify-build TAG``: a release rebuilt from its git tag is the published
archive byte for byte; one built from anything else is caught, file by file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import agent
import eidcore
from tests.agent_process import BIN
from tests.update_kit import repository

pytestmark = pytest.mark.slow

GIT = shutil.which("git") or "/usr/bin/git"


def _git(checkout: Path, *args: str) -> None:
    subprocess.run(
        [
            GIT,
            "-C",
            str(checkout),
            "-c",
            "user.name=Release",
            "-c",
            "user.email=release@bank.example",
            *args,
        ],
        check=True,
        capture_output=True,
    )


def _release(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eid-release"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def test_a_release_is_what_its_tag_builds_and_a_forged_one_is_caught(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"  # the project's code as a repository with tags
    for package in (agent, eidcore):
        assert package.__file__ is not None
        shutil.copytree(
            Path(package.__file__).parent,
            checkout / package.__name__,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    _git(checkout, "init", "-q")
    _git(checkout, "add", ".")
    _git(checkout, "commit", "-qm", "1.0.0")
    _git(checkout, "tag", "v1.0.0")
    with repository(tmp_path) as repo:
        folder = str(repo.folder)
        built = _release("bundle", "1.0.0", str(tmp_path / "b1"), "--source", str(checkout))
        assert built.returncode == 0, built.stderr
        assert _release("publish", "1.0.0", str(tmp_path / "b1"), "--dir", folder).returncode == 0
        same = _release("verify-build", "v1.0.0", "--source", str(checkout), "--dir", folder)
        assert same.returncode == 0, same.stderr
        assert "the rebuild from v1.0.0 is the published archive, byte for byte" in same.stdout
        # 1.1.0 is tagged, but what was published was built from a changed working tree
        _git(checkout, "tag", "v1.1.0")
        with (checkout / "agent/notices.py").open("a") as changed:
            changed.write("\nBACKDOOR = True\n")
        built = _release("bundle", "1.1.0", str(tmp_path / "b2"), "--source", str(checkout))
        assert built.returncode == 0, built.stderr
        published = _release(
            "publish", "1.1.0", str(tmp_path / "b2"), "--dir", folder, "--no-patch"
        )  # a patch of the real bundle takes a minute
        assert published.returncode == 0, published.stderr
        forged = _release("verify-build", "v1.1.0", "--source", str(checkout), "--dir", folder)
        assert forged.returncode == 1, forged.stdout
        assert "1.1.0 is NOT what v1.1.0 builds" in forged.stderr
        assert "differs: lib/agent/notices.py" in forged.stderr
        assert forged.stderr.count("differs:") == 1, forged.stderr
        # no such tag, no such release: said, not a traceback
        for tag in ("v9.9.9", "v1.2.0"):
            missing = _release("verify-build", tag, "--source", str(checkout), "--dir", folder)
            assert missing.returncode == 1 and "Traceback" not in missing.stderr
