"""Attacks on the update path (TUF's threat list, as they apply here). Each one must leave
the installed version running and installed, and end as a failed check or update — never
as an installed attacker's file or a policy the administrator did not sign."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.interface import import_ed25519_privatekey_from_file
from securesystemslib.signer import SSlibSigner
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

from agent.credentials import CredentialStore
from tests.conftest import ANNA, FAST_KDF, MakeToken
from tests.update_kit import (
    Repo,
    current_version,
    info,
    install,
    installed_agent,
    repository,
    run_agent_cli,
    update_state,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        yield r


@pytest.fixture
def data_dir(tmp_path: Path, make_token: MakeToken, repo: Repo) -> Path:
    """An agent with 1.0.0 installed from the repository; 1.1.0 published after."""
    data = tmp_path / "data"
    CredentialStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    repo.publish("1.0.0")
    install(repo, data)
    return data


def _cli(data_dir: Path, *args: str) -> tuple[int, str]:
    result = run_agent_cli(
        *args,
        "--data-dir",
        str(data_dir),
        "--lang",
        "en",
        "-v",
        program=data_dir / "install/current/eid-agent",
    )
    return result.returncode, result.stdout + result.stderr


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _resign(repo: Repo, role: str, edit: object = None, *, key: Path | None = None) -> bytes:
    """``role``'s metadata, edited by ``edit(signed)`` and signed with ``key`` (default:
    the role's real key), as bytes — what an attacker (or a stale mirror) would serve."""
    metadata = Metadata.from_file(str(repo.metadata / f"{role}.json"))
    if callable(edit):
        edit(metadata.signed)
    metadata.signatures.clear()
    private = import_ed25519_privatekey_from_file(str(key or repo.folder / "keystore" / role))
    metadata.sign(SSlibSigner(private))
    return bytes(metadata.to_bytes(JSONSerializer(compact=False)))


def _still_on_1_0_0(data_dir: Path) -> None:
    assert current_version(data_dir) == "1.0.0"
    assert sorted(p.name for p in (data_dir / "install/versions").iterdir()) == ["1.0.0"]
    code, out = _cli(data_dir, "self-test")
    assert code == 0, out


def test_tampered_archive_is_refused_and_the_agent_keeps_serving(
    repo: Repo, data_dir: Path
) -> None:
    for cached in (data_dir / "install/tuf/targets").iterdir():
        cached.unlink()  # no patch possible: the archive itself is fetched
    repo.publish("1.1.0")
    repo.server.tamper["/targets/eid-agent-1.1.0.tar.gz"] = _flip_last_byte
    with installed_agent(data_dir) as agent:
        agent.ready()
        code, out = _cli(data_dir, "update", "apply")
        assert code == 1 and "[10022]" in out
        assert "LengthOrHashMismatch" in agent.stderr
        assert info(agent)["version"] == "1.0.0" and agent.proc.poll() is None
    _still_on_1_0_0(data_dir)


def test_tampered_patch_falls_back_to_the_signed_archive(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.1.0")
    repo.server.tamper["/targets/eid-agent-1.1.0.patch"] = _flip_last_byte
    code, out = _cli(data_dir, "update", "apply")
    assert code == 0, out
    assert "trying the full archive" in out
    assert repo.server.served("eid-agent-1.1.0.patch")
    assert repo.server.served("eid-agent-1.1.0.tar.gz")
    assert current_version(data_dir) == "1.1.0"


def test_tampered_patch_and_archive_install_nothing(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.1.0")
    repo.server.tamper["/targets/eid-agent-1.1.0.patch"] = _flip_last_byte
    repo.server.tamper["/targets/eid-agent-1.1.0.tar.gz"] = _flip_last_byte
    code, out = _cli(data_dir, "update", "apply")
    assert code == 1 and "[10022]" in out
    _still_on_1_0_0(data_dir)


def test_endless_download_is_cut_off(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.1.0")
    repo.server.endless |= {"/targets/eid-agent-1.1.0.patch", "/targets/eid-agent-1.1.0.tar.gz"}
    code, out = _cli(data_dir, "update", "apply")
    assert code == 1 and "[10022]" in out
    assert "DownloadLengthMismatch" in out
    # tuf stops reading one chunk past the signed length and closes; what the server
    # managed to write beyond that sat in loopback socket buffers (a few MiB), far from
    # the 1 GiB it would have sent
    sent = [s.sent for s in repo.server.log if "1.1.0" in s.path]
    assert len(sent) == 2 and all(n < 64 << 20 for n in sent), sent
    _still_on_1_0_0(data_dir)


def test_expired_timestamp_is_a_failed_check_not_a_crash(repo: Repo, data_dir: Path) -> None:
    """Freeze attack: a validly signed timestamp that has expired."""
    repo.publish("1.1.0", requiredMinimum="1.1.0")

    def expire(signed: Any) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        signed.expires = now - dt.timedelta(hours=1)
        signed.version += 1

    frozen = _resign(repo, "timestamp", expire)
    repo.server.tamper["/metadata/timestamp.json"] = lambda _b: frozen
    code, out = _cli(data_dir, "update", "check")
    assert code == 1
    assert "expired" in out and "[10006]" in out
    state = update_state(data_dir)
    assert state["checkFailures"] == 1 and state["standing"] != "REQUIRED"
    _still_on_1_0_0(data_dir)


def test_replayed_older_metadata_is_refused(repo: Repo, data_dir: Path) -> None:
    """Rollback attack: the timestamp the agent saw before, served after a newer one."""
    old_timestamp = (repo.metadata / "timestamp.json").read_bytes()
    repo.publish("1.1.0", requiredMinimum="1.1.0")
    code, out = _cli(data_dir, "update", "check")
    assert code == 0 and "[10007]" in out  # the agent has seen the newer metadata
    repo.server.tamper["/metadata/timestamp.json"] = lambda _b: old_timestamp
    code, out = _cli(data_dir, "update", "check")
    assert code == 1 and "BadVersionNumber" in out, out
    assert update_state(data_dir)["checkFailures"] == 1


def test_metadata_signed_with_a_wrong_key_is_refused(
    repo: Repo, data_dir: Path, tmp_path: Path
) -> None:
    from securesystemslib.interface import generate_and_write_unencrypted_ed25519_keypair

    repo.publish("1.1.0", requiredMinimum="1.1.0")
    intruder = tmp_path / "intruder"
    generate_and_write_unencrypted_ed25519_keypair(filepath=str(intruder))
    forged = _resign(repo, "timestamp", key=intruder)
    repo.server.tamper["/metadata/timestamp.json"] = lambda _b: forged
    code, out = _cli(data_dir, "update", "check")
    assert code == 1 and "unsigned" in out
    assert update_state(data_dir).get("standing") != "REQUIRED"
    _still_on_1_0_0(data_dir)


def test_a_policy_changed_without_a_signature_is_refused(repo: Repo, data_dir: Path) -> None:
    """A mirror edits the signed targets to demand an update (or to suppress one)."""
    repo.publish("1.1.0")

    def demand(data: bytes) -> bytes:
        doc = json.loads(data)
        for target in doc["signed"]["targets"].values():
            if target.get("custom", {}).get("user") is not None:
                target["custom"]["user"]["requiredMinimum"] = "1.1.0"
        return json.dumps(doc).encode()

    repo.server.tamper["/metadata/targets.json"] = demand
    shutil.rmtree(data_dir / "install/tuf/metadata")  # a fresh agent: only the pinned root
    (data_dir / "install/tuf/metadata").mkdir()
    shutil.copy(repo.root_json, data_dir / "install/tuf/metadata/root.json")
    with installed_agent(data_dir) as agent:
        agent.ready()
        wait_for(lambda: update_state(data_dir).get("checkFailures"), what="a failed check")
        assert info(agent)["updateRequired"] is False
        assert agent.start_auth()
    _still_on_1_0_0(data_dir)
    repo.server.tamper.clear()
    code, out = _cli(data_dir, "update", "check")
    assert code == 0 and "[10018]" in out  # the signed policy demands nothing


@pytest.mark.parametrize(
    ("where", "headers_too"),
    [
        ("/metadata/timestamp.json", True),
        ("/metadata/timestamp.json", False),
        ("/targets/eid-agent-1.1.0.tar.gz", False),
    ],
)
def test_a_repository_trickling_one_byte_a_second_is_given_up_then_recovers(
    repo: Repo, data_dir: Path, where: str, headers_too: bool
) -> None:
    """Slow retrieval: every byte arrives before the per-read timeout, so only the overall
    deadline can end it — in the headers or in the body. Given up in time, nothing
    installed; once the server is well again, the update goes through."""
    repo.publish("1.1.0", requiredMinimum="1.1.0")
    slow = repo.server.trickle if headers_too else repo.server.trickle_body
    slow.add(where)
    if where.endswith(".tar.gz"):
        slow.add("/targets/eid-agent-1.1.0.patch")
    began = time.monotonic()
    code, out = _cli(data_dir, "update", "apply", "--deadline", "4")
    took = time.monotonic() - began
    assert code == 1 and ("[10006]" in out or "[10022]" in out), out
    assert "deadline" in out
    assert took < 4 * 2 + 10, took  # patch then archive each get the deadline, plus start-up
    _still_on_1_0_0(data_dir)
    slow.clear()
    code, out = _cli(data_dir, "update", "apply")
    assert code == 0, out
    assert current_version(data_dir) == "1.1.0"


@pytest.mark.parametrize(
    "where",
    ["/metadata/timestamp.json", "/metadata/targets.json", "/targets/eid-agent-1.1.0.tar.gz"],
)
def test_a_repository_answering_garbage_then_recovers(
    repo: Repo, data_dir: Path, where: str
) -> None:
    repo.publish("1.1.0")
    repo.server.garbage.add(where)
    repo.server.garbage.add("/targets/eid-agent-1.1.0.patch")
    code, out = _cli(data_dir, "update", "apply")
    assert code == 1 and ("[10006]" in out or "[10022]" in out), out
    assert "Traceback" not in out
    _still_on_1_0_0(data_dir)
    repo.server.garbage.clear()
    code, out = _cli(data_dir, "update", "apply")
    assert code == 0, out
    assert current_version(data_dir) == "1.1.0"
