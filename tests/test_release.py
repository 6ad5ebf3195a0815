"""The administrator's side: ``eid-release`` run as cron and CI run it (no terminal, stdin
closed), the repository it writes, and a real self-contained bundle."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

import agent
from agent.updater.install import InstallError, Layout, bundle_version, running_layout
from tests.agent_process import BIN
from tests.update_kit import Repo, RepoServer, current_version, install, repository, run_agent_cli

pytestmark = pytest.mark.slow


def release(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eid-release"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        cwd=cwd,
        check=False,
    )


def status(folder: Path) -> dict[str, Any]:
    result = release("status", "--dir", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_release_tools_run_unattended_and_refuse_mistakes(tmp_path: Path) -> None:
    folder = tmp_path / "rel"
    result = release(
        "init",
        "--dir",
        str(folder),
        "--keys",
        "root=2",
        "--threshold",
        "root=2",
        "--keys",
        "targets=2",
        "--expiry",
        "timestamp=2",
    )
    assert result.returncode == 0, result.stderr
    assert "root.json" in result.stdout
    keystore = folder / "keystore"
    assert {p.name for p in keystore.iterdir()} >= {"root", "root-2", "targets", "targets-2"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in keystore.iterdir() if p.suffix != ".pub")
    root = json.loads((folder / "repository/metadata/root.json").read_text())
    assert len(root["signatures"]) == 2 and root["signed"]["roles"]["root"]["threshold"] == 2

    built = release("bundle", "1.1.0", str(tmp_path / "1.1.0"), "--agent-only")
    assert built.returncode == 0 and not built.stderr, built.stderr
    # the order before 1.5 (OUT VERSION) still works and says what to write instead
    built = release("bundle", str(tmp_path / "1.0.0"), "1.0.0", "--agent-only")
    assert built.returncode == 0, built.stderr
    assert f"deprecated; write 'bundle 1.0.0 {tmp_path / '1.0.0'}'" in built.stderr
    assert bundle_version(tmp_path / "1.0.0") == Version("1.0.0")
    published = release(
        "publish",
        "--dir",
        str(folder),
        "1.0.0",
        str(tmp_path / "1.0.0"),
        "--manual-url",
        "https://install.example/",
        "--failure-threshold",
        "4",
    )
    assert published.returncode == 0, published.stderr
    assert status(folder)["policy"] == {
        "manualUrl": "https://install.example/",
        "failureThreshold": 4,
    }

    changed = release(
        "policy", "--dir", str(folder), "--automatic", "--check-interval-minutes", "120"
    )
    assert changed.returncode == 0, changed.stderr
    info = status(folder)
    assert info["policy"]["automatic"] is True and info["policy"]["checkIntervalMinutes"] == 120
    assert info["roles"]["timestamp"]["version"] >= 3

    refused = {
        "not newer": ("publish", "1.0.0", str(tmp_path / "1.0.0")),
        "is version 1.1.0, not 1.2.0": ("publish", "1.2.0", str(tmp_path / "1.1.0")),
        "no agent could ever satisfy": (
            "publish",
            "1.1.0",
            str(tmp_path / "1.1.0"),
            "--required-minimum",
            "2.0",
        ),
        "manualUrl must be an http(s) URL": ("policy", "--manual-url", "ftp://install.example/"),
        "whole number from 1 to 100": ("policy", "--failure-threshold", "0"),
    }
    before = status(folder)
    for message, args in refused.items():
        result = release(args[0], "--dir", str(folder), *args[1:])
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert status(folder) == before  # a refusal changes nothing

    published = release(
        "publish", "--dir", str(folder), "1.1.0", str(tmp_path / "1.1.0"), "--recommended", "1.1.0"
    )
    assert published.returncode == 0, published.stderr
    assert "patch" in published.stdout
    info = status(folder)
    assert info["latest"] == "1.1.0" and info["policy"]["automatic"] is True  # kept
    assert [t["file"] for t in info["targets"]] == [
        "eid-agent-1.0.0.tar.gz",
        "eid-agent-1.1.0.patch",
        "eid-agent-1.1.0.tar.gz",
    ]
    assert [r["version"] for r in info["releases"]] == ["1.1.0", "1.0.0"]
    assert info["releases"][1]["policy"]["failureThreshold"] == 4  # each release's own
    assert info["releases"][0]["patchBytes"] and not info["releases"][1]["patchBytes"]
    # blocking a version range; the latest release may not be blocked
    blocked = release(
        "policy",
        "--dir",
        str(folder),
        "--version-status",
        "<1.1.0=blocked",
        "--max-offline-days",
        "14",
    )
    assert blocked.returncode == 0, blocked.stderr
    too_far = release("policy", "--dir", str(folder), "--version-status", "<2=phaseOut@2027-01-31")
    assert too_far.returncode == 1 and "would be phaseOut" in too_far.stderr
    for bad in ("<1.1.0=gone", "blocked", ">=1.0=phaseOut@31/01/2027"):
        wrong = release("policy", "--dir", str(folder), "--version-status", bad)
        assert wrong.returncode in (1, 2) and "Traceback" not in wrong.stderr, wrong.stderr
    text = release("status", "--dir", str(folder)).stdout
    assert "1.1.0      archive" in text and "versions <1.1.0: blocked" in text, text
    assert "refuse orders after this many days unchecked: 14" in text
    assert "None" not in text and "{" not in text


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        yield r


def _check(data_dir: Path) -> tuple[int, str]:
    result = run_agent_cli(
        "update",
        "check",
        "--data-dir",
        str(data_dir),
        "--lang",
        "en",
        program=data_dir / "install/current/eid-agent",
    )
    return result.returncode, result.stdout + result.stderr


def test_refresh_timestamp_is_the_one_line_cron_job(repo: Repo, tmp_path: Path) -> None:
    repo.publish("1.0.0")
    data_dir = tmp_path / "data"
    install(repo, data_dir)
    before = status(repo.folder)["roles"]
    time.sleep(1.05 - time.time() % 1)  # expiry times have whole seconds: be in the next one
    result = release("refresh-timestamp", "--dir", str(repo.folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["timestamp"]  # snapshot and targets are fresh
    after = status(repo.folder)["roles"]
    assert after["timestamp"]["version"] == before["timestamp"]["version"] + 1
    assert after["timestamp"]["expires"] > before["timestamp"]["expires"]
    assert after["targets"] == before["targets"] and after["snapshot"] == before["snapshot"]
    assert _check(data_dir)[0] == 0


def test_rotated_keys_are_followed_by_installed_agents(repo: Repo, tmp_path: Path) -> None:
    repo.publish("1.0.0")
    data_dir = tmp_path / "data"
    install(repo, data_dir)
    for role in ("timestamp", "root"):
        result = release("rotate-key", role, "--dir", str(repo.folder))
        assert result.returncode == 0, result.stderr
    keystore = repo.folder / "keystore"
    assert (keystore / "retired" / "root").exists() and not (keystore / "root").exists()
    assert (keystore / "root-2").exists() and (keystore / "timestamp-2").exists()
    repo.publish("1.1.0")
    code, out = _check(data_dir)
    assert code == 0 and "[10018]" in out, out
    trusted = json.loads((data_dir / "install/tuf/metadata/root.json").read_text())
    assert trusted["signed"]["version"] == status(repo.folder)["roles"]["root"]["version"] > 1
    bad = release("rotate-key", "mirror", "--dir", str(repo.folder))
    assert bad.returncode == 1 and "unknown role" in bad.stderr


def test_real_self_contained_bundle_installs_updates_and_runs_alone(tmp_path: Path) -> None:
    """The bundle carries every dependency: it runs with no site-packages at all."""
    with repository(tmp_path) as repo:
        for version in ("1.0.0", "1.1.0"):
            built = release("bundle", version, str(tmp_path / "real" / version))
            assert built.returncode == 0, built.stderr
            assert "-S" in (tmp_path / "real" / version / "eid-agent").read_text()
            published = release(
                "publish",
                "--dir",
                str(repo.folder),
                version,
                str(tmp_path / "real" / version),
                "--no-patch",
            )
            assert published.returncode == 0, published.stderr
            if version == "1.0.0":
                data_dir = tmp_path / "data"
                install(repo, data_dir)
        program = data_dir / "install/current/eid-agent"
        alone = run_agent_cli("self-test", "--data-dir", str(data_dir), program=program)
        assert alone.returncode == 0 and "1.0.0: self-test passed" in alone.stdout
        applied = run_agent_cli("update", "apply", "--data-dir", str(data_dir), program=program)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert current_version(data_dir) == "1.1.0"
        assert run_agent_cli("--version", program=program).stdout.strip() == "eid-agent 1.1.0"
        lib = data_dir / "install/versions/1.1.0/lib"
        assert (lib / "cryptography").is_dir() and (lib / "aiohttp").is_dir()
        assert (lib / "tufup").is_dir() and (lib / "smartcard").is_dir()
        # nothing of the build machine is shipped: not the checkout, the build's
        # interpreter or its folder (the launcher finds the machine's own Python)
        shipped = gzip.decompress(
            (repo.folder / "repository/targets/eid-agent-1.1.0.tar.gz").read_bytes()
        )
        checkout = str(Path(agent.__file__).resolve().parents[1])
        # each as a path into it: a short checkout such as /tmp/run is also a part of
        # platformdirs' "/tmp/run/user", which says nothing about the build machine
        for path in (f"{checkout}/agent/", f"{sys.prefix}/lib/", sys.executable, str(tmp_path)):
            assert path.encode() not in shipped, path


def test_the_same_bundle_gives_the_same_archive_patch_and_installer(tmp_path: Path) -> None:
    """Two builds of the same code (at different times, in different folders) published
    to two repositories: the same archive and patch bytes; the installer from the same
    archive, root and address, built twice: the same bytes."""
    from installer.bundle import build_bundle
    from installer.runfile import build_installer

    archives = []
    for n in (1, 2):
        folder = tmp_path / f"release{n}"
        release_init = release("init", "--dir", str(folder))
        assert release_init.returncode == 0, release_init.stderr
        for version in ("1.0.0", "1.1.0"):
            bundle = build_bundle(tmp_path / f"b{n}" / version, version, self_contained=False)
            os.utime(bundle / "bundle.json", (n * 1000, n * 1000))  # mtimes differ per build
            published = release("publish", "--dir", str(folder), version, str(bundle))
            assert published.returncode == 0, published.stderr
        targets = folder / "repository/targets"
        archives.append(
            [
                (targets / name).read_bytes()
                for name in (
                    "eid-agent-1.0.0.tar.gz",
                    "eid-agent-1.1.0.tar.gz",
                    "eid-agent-1.1.0.patch",
                )
            ]
        )
        time.sleep(1.1)  # a gzip header with the time in it would differ now
    assert archives[0] == archives[1]
    archive = tmp_path / "release1/repository/targets/eid-agent-1.1.0.tar.gz"
    root = (tmp_path / "release1/repository/metadata/root.json").read_bytes()
    built = [
        build_installer(
            tmp_path / f"i{n}", archive, "1.1.0", root, "https://u.example", epoch=0
        ).read_bytes()
        for n in (1, 2)
    ]
    assert built[0] == built[1]


# -- the install layout, without processes ------------------------------------------------


def _bundle(tmp: Path, version: str) -> Path:
    out = tmp / f"b{version}"
    (out / "lib").mkdir(parents=True)
    manifest = {"format": 1, "name": "eid-agent", "version": version, "selfContained": False}
    (out / "bundle.json").write_text(json.dumps(manifest))
    (out / "eid-agent").write_text("#!/bin/sh\n")
    (out / "eid-agent").chmod(0o755)
    return out


def test_layout_switches_keeps_one_previous_and_rolls_back(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "install")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        layout.add(_bundle(tmp_path, version), move=True)
        layout.switch(bundle_version(layout.versions / version))
        layout.prune(None)
    assert layout.current_version() is not None and str(layout.current_version()) == "1.2.0"
    assert str(layout.previous_version()) == "1.1.0"
    assert [str(v) for v in layout.installed()] == ["1.1.0", "1.2.0"]
    assert layout.current.readlink() == Path("versions/1.2.0")  # relative: the tree can move
    layout.roll_back(bundle_version(layout.versions / "1.2.0"))
    assert str(layout.current_version()) == "1.1.0"
    assert [str(v) for v in layout.installed()] == ["1.1.0"]
    leftovers = [p.name for p in layout.root.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_layout_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "install")
    broken = _bundle(tmp_path, "1.0.0")
    (broken / "bundle.json").write_text('{"format": 1, "name": "other", "version": "1"}')
    with pytest.raises(InstallError, match="not an eid-agent bundle"):
        layout.add(broken, move=False)
    no_launcher = _bundle(tmp_path, "2.0.0")
    (no_launcher / "eid-agent").chmod(0o644)
    with pytest.raises(InstallError, match="no launcher"):
        layout.add(no_launcher, move=False)
    assert layout.installed() == []


def test_a_source_checkout_is_not_an_install(tmp_path: Path) -> None:
    assert running_layout(tmp_path) is None


def test_repo_server_serves_only_its_folder(tmp_path: Path) -> None:
    (tmp_path / "pub").mkdir()
    (tmp_path / "secret").write_text("no")
    server = RepoServer(tmp_path / "pub")
    try:
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url + "../secret", timeout=5)  # noqa: S310
    finally:
        server.close()
