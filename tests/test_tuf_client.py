"""``eid-tuf-client`` speaks the TUF conformance suite's client protocol over the agent's
own update seam. The suite itself is not packaged for this machine; these tests drive the
protocol the way it does, against a repository served on loopback."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import BIN
from tests.update_kit import Repo, repository

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        r.publish("1.0.0")
        yield r


def client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eid-tuf-client"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_refresh_download_and_cache(repo: Repo, tmp_path: Path) -> None:
    meta, targets = tmp_path / "meta", tmp_path / "targets"
    meta.mkdir()
    assert client("--metadata-dir", str(meta), "init", str(repo.root_json)).returncode == 0
    assert repo.server.log == []  # init makes no request
    url = repo.server.url + "metadata"
    refreshed = client("--metadata-dir", str(meta), "--metadata-url", url, "refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    assert {p.name for p in meta.iterdir()} == {
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
    }
    download = [
        "--metadata-dir",
        str(meta),
        "--metadata-url",
        url,
        "--target-name",
        "eid-agent-1.0.0.tar.gz",
        "--target-base-url",
        repo.server.url + "targets",
        "--target-dir",
        str(targets),
        "download",
    ]
    done = client(*download)
    assert done.returncode == 0, done.stderr
    [artifact] = list(targets.iterdir())
    signed = json.loads((meta / "targets.json").read_text())["signed"]["targets"]
    digest = signed["eid-agent-1.0.0.tar.gz"]["hashes"]["sha256"]
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == digest
    assert client(*download).returncode == 0
    assert len(repo.server.served("eid-agent-1.0.0.tar.gz")) == 1  # cached, not fetched again
    missing = client(*[a if a != "eid-agent-1.0.0.tar.gz" else "nope.tar.gz" for a in download])
    assert missing.returncode == 1 and "not a signed target" in missing.stderr


def test_failures_exit_1(repo: Repo, tmp_path: Path) -> None:
    meta, targets = tmp_path / "meta", tmp_path / "targets"
    meta.mkdir()
    client("--metadata-dir", str(meta), "init", str(repo.root_json))
    url = repo.server.url + "metadata"
    repo.server.tamper["/targets/eid-agent-1.0.0.tar.gz"] = lambda b: b[:-1] + b"x"
    download = client(
        "--metadata-dir",
        str(meta),
        "--metadata-url",
        url,
        "--target-name",
        "eid-agent-1.0.0.tar.gz",
        "--target-base-url",
        repo.server.url + "targets",
        "--target-dir",
        str(targets),
        "download",
    )
    assert download.returncode == 1 and "LengthOrHashMismatch" in download.stderr
    assert not any(targets.iterdir())
    repo.server.down = True
    refreshed = client("--metadata-dir", str(meta), "--metadata-url", url, "refresh")
    assert refreshed.returncode == 1 and "unreachable" in refreshed.stderr
