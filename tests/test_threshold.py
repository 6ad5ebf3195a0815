"""A release signed by 2 of 3 targets keys that live on three machines (three key
folders): held with the one key on the release machine, carried to another to be signed,
published once two have signed — every step unattended. One signature is refused; two
are what installed agents accept."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from agent.updater import remote
from tests.agent_process import BIN
from tests.update_kit import repository

pytestmark = pytest.mark.slow


def _release(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eid-release"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def _check(tmp: Path, root: Path, url: str, name: str) -> remote.Found:
    """What a freshly installed agent (only the pinned root) finds."""
    metadata = tmp / name / "metadata"
    metadata.mkdir(parents=True)
    shutil.copy(root, metadata / "root.json")
    return remote.check(remote.Source(url, metadata, tmp / name / "targets"), Version("0.9"))


def test_two_of_three_targets_keys_on_different_machines(tmp_path: Path) -> None:
    folder = tmp_path / "release"
    made = _release("init", "--dir", str(folder), "--keys", "targets=3", "--threshold", "targets=2")
    assert made.returncode == 0, made.stderr
    keystore = folder / "keystore"
    machines = {"b": tmp_path / "machine-b", "c": tmp_path / "machine-c"}
    for machine, key in zip(machines.values(), ("targets-2", "targets-3"), strict=True):
        machine.mkdir(mode=0o700)
        (keystore / key).rename(machine / key)  # the private key leaves; .pub stays
    with repository(tmp_path / "r") as repo:  # its server, over this release folder
        repo.server.root = folder / "repository"
        bundle = repo.bundle("1.0.0")
        before = sorted(p.name for p in (folder / "repository/metadata").iterdir())
        # one key here is not enough: a plain publish refuses and publishes nothing
        alone = _release("publish", "1.0.0", str(bundle), "--dir", str(folder))
        assert alone.returncode == 1, alone.stdout
        assert "targets needs 2 signatures and the keys here give 1" in alone.stderr
        assert sorted(p.name for p in (folder / "repository/metadata").iterdir()) == before
        # held: signed by the key here, nothing published
        held = _release("publish", "1.0.0", str(bundle), "--dir", str(folder), "--hold")
        assert held.returncode == 0, held.stderr
        held_file = folder / "held/targets.json"
        assert sorted(p.name for p in (folder / "repository/metadata").iterdir()) == before
        early = _release("publish-held", str(held_file), "--dir", str(folder))
        assert early.returncode == 1 and "1 of the 2 signatures" in early.stderr, early.stderr
        # carried to machine b (a file copy stands for the transfer) and signed there
        carried = machines["b"] / "to-sign.json"
        shutil.copy(held_file, carried)
        wrong = _release("sign", str(carried), "--keys", str(keystore))  # snapshot, root …
        assert wrong.returncode == 1 and "is a targets key" in wrong.stderr, wrong.stderr
        signed = _release("sign", str(carried), "--keys", str(machines["b"]))
        assert signed.returncode == 0, signed.stderr
        assert "eid-agent-1.0.0.tar.gz; 2 of 2 signatures" in signed.stdout
        again = _release("sign", str(carried), "--keys", str(machines["b"]))
        assert again.returncode == 1  # a key signs once
        # back on the release machine: published, and agents accept it
        published = _release("publish-held", str(carried), "--dir", str(folder))
        assert published.returncode == 0, published.stderr
        assert not held_file.exists()
        found = _check(tmp_path, folder / "repository/metadata/root.json", repo.server.url, "a1")
        assert found.latest == Version("1.0.0") and found.update == Version("1.0.0")
        # a later release with the other two machines' keys, b then c
        (folder / "keystore/targets").rename(tmp_path / "machine-a-targets")
        held = _release(
            "publish", "1.1.0", str(repo.bundle("1.1.0")), "--dir", str(folder), "--hold"
        )
        assert held.returncode == 0, held.stderr
        for machine in machines.values():
            assert _release("sign", str(held_file), "--keys", str(machine)).returncode == 0
        published = _release("publish-held", str(held_file), "--dir", str(folder))
        assert published.returncode == 0, published.stderr
        found = _check(tmp_path, folder / "repository/metadata/root.json", repo.server.url, "a2")
        assert found.latest == Version("1.1.0")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # deep enough to crash a plain json.loads
        '{"heldFor": "targets", "metadata": {"signed": {"version": ' + "9" * 5000 + "}}}",
        '{"heldFor": "targets", "metadata": [1, 2]}',
        '{"heldFor": "targets", "metadata": {"signed": {}, "signatures": "x"}}',
        '{"heldFor": "root", "metadata": {}}',
        "\u202e",
        "",
    ],
)
def test_a_damaged_or_hostile_held_file_is_refused_with_a_reason(tmp_path: Path, text: str) -> None:
    held = tmp_path / "held.json"
    held.write_text(text)
    keys = tmp_path / "keys"
    keys.mkdir()
    refused = _release("sign", str(held), "--keys", str(keys))
    assert refused.returncode == 1, refused.stderr
    assert "is not held targets metadata" in refused.stderr
    assert "Traceback" not in refused.stderr
