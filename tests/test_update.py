"""Self-update end to end: the real release tools publish to a repository served on
loopback; an agent installed in a temporary data dir updates itself, follows the signed
policy, refuses attacks and rolls back a version that is not healthy."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.credentials import CredentialStore
from tests.agent_process import AgentProcess, alive
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

MANUAL = "https://install.example/eid-agent"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    with repository(tmp_path) as r:
        yield r


@pytest.fixture
def data_dir(tmp_path: Path, make_token: MakeToken) -> Path:
    CredentialStore(tmp_path / "data", kdf=FAST_KDF).add(make_token(ANNA))
    return tmp_path / "data"


def _apply(data_dir: Path) -> str:
    """``eid-agent update apply`` from the installed agent; returns its output."""
    result = run_agent_cli(
        "update",
        "apply",
        "--data-dir",
        str(data_dir),
        "--lang",
        "en",
        program=data_dir / "install/current/eid-agent",
    )
    return result.stdout + result.stderr


def _took_over(agent: AgentProcess, version: str) -> None:
    wait_for(lambda: agent.successor() is not None, what="the new version's process")
    wait_for(lambda: info(agent)["version"] == version, what=f"{version} serving")
    assert agent.proc.wait(timeout=10) == 0  # the old version handed over and left


def test_installed_agent_updates_itself_by_patch(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.0.0", manualUrl=MANUAL)
    install(repo, data_dir)
    with installed_agent(data_dir) as agent:
        agent.ready()
        wait_for(lambda: update_state(data_dir).get("lastSuccess"), what="first check")
        assert info(agent) == {
            "version": "1.0.0",
            "apiVersion": 1,
            "updateRequired": False,
            "updateState": "upToDate",
        }
        result = repo.publish("1.1.0")
        assert result.patch_bytes is not None and result.patch_bytes < result.archive_bytes
        output = _apply(data_dir)
        assert "updated 1.0.0 → 1.1.0" in output
        _took_over(agent, "1.1.0")
        assert current_version(data_dir) == "1.1.0"
        install_root = data_dir / "install"
        assert (install_root / "previous").readlink() == Path("versions/1.0.0")
        assert repo.server.served("eid-agent-1.1.0.patch")
        assert not repo.server.served("eid-agent-1.1.0.tar.gz")
        assert "self-test passed; 1.1.0 is now the current version" in agent.stderr
        status = run_agent_cli(
            "update",
            "status",
            "--json",
            "--data-dir",
            str(data_dir),
            program=install_root / "current/eid-agent",
        )
        assert json.loads(status.stdout) | {"lastCheck": None, "nextCheck": None} == {
            "version": "1.1.0",
            "installed": True,
            "state": "upToDate",
            "current": "1.1.0",
            "previous": "1.0.0",
            "versions": ["1.0.0", "1.1.0"],
            "repository": repo.server.url,
            "target": None,
            "checkFailures": 0,
            "updateFailures": 0,
            "lastCheck": None,
            "nextCheck": None,
        }
        text = run_agent_cli(
            "update",
            "status",
            "--data-dir",
            str(data_dir),
            program=install_root / "current/eid-agent",
        ).stdout
        assert "Update: up to date\n" in text, text
        assert "Installed versions: 1.0.0, 1.1.0 (previous: 1.0.0)\n" in text, text
        assert f"Update server: {repo.server.url}\n" in text
        assert not any(word in text for word in ("None", "True", "False", "[", "upToDate"))
        # the new version keeps serving orders after the old one left
        ref = agent.start_auth()
        assert agent.collect(ref)["status"] == "pending"


def test_update_by_full_archive_when_no_archive_is_cached(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.0.0")
    install(repo, data_dir)
    for cached in (data_dir / "install/tuf/targets").iterdir():
        cached.unlink()  # e.g. installed from a bundle: nothing to patch
    repo.publish("1.1.0", automatic=True)
    with installed_agent(data_dir) as agent:
        agent.ready()
        _took_over(agent, "1.1.0")
        assert repo.server.served("eid-agent-1.1.0.tar.gz")
        assert not repo.server.served("eid-agent-1.1.0.patch")
        assert "[10019] Automatic update" in agent.stdout


def test_a_finished_update_is_a_desktop_notification(repo: Repo, data_dir: Path) -> None:
    from tests.desktop_kit import virtual_screen

    repo.publish("1.0.0")
    install(repo, data_dir)
    repo.publish("1.1.0", automatic=True)
    with virtual_screen() as screen:
        agent = AgentProcess(
            data_dir,
            "--no-cards",
            "--update-tick",
            "0.2",
            "--ui",
            "desktop",
            env=screen.env,
            program=data_dir / "install/current/eid-agent",
        )
        with agent:
            agent.ready()
            _took_over(agent, "1.1.0")
            shown = screen.notified("The update is installed (10073)", timeout=30)
            assert "Version 1.1.0 is installed and running." in shown


def test_required_update_refuses_orders_until_updated(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.0.0")
    install(repo, data_dir)
    repo.publish("1.1.0", requiredMinimum="1.1.0")
    with installed_agent(data_dir) as agent:
        agent.ready()
        wait_for(lambda: info(agent)["updateRequired"], what="updateRequired")
        assert info(agent)["updateState"] == "required"
        status, body = agent.request("POST", "/v1/auth", {"nonce": "A" * 44})
        assert (status, body["errorCode"]) == (503, "updateRequired")
        assert "[10007] Update required" in agent.stdout
        assert "Update now with: eid-agent update apply" in agent.stdout
        assert "updated 1.0.0 → 1.1.0" in _apply(data_dir)
        _took_over(agent, "1.1.0")
        assert info(agent)["updateRequired"] is False
        assert agent.start_auth()


def test_recommended_and_newer_and_up_to_date_notices(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.0.0")
    install(repo, data_dir)
    program = data_dir / "install/current/eid-agent"

    def check() -> str:
        result = run_agent_cli(
            "update", "check", "--data-dir", str(data_dir), "--lang", "en", program=program
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "[10020] No update needed" in check()
    repo.publish("1.1.0")
    assert "[10018] A newer version exists" in check()
    repo.policy(recommended="1.1.0")
    assert "[10017] Update recommended" in check()
    assert current_version(data_dir) == "1.0.0"  # a check never installs


def test_failed_automatic_update_retries_later_while_old_version_serves(
    repo: Repo, data_dir: Path
) -> None:
    repo.publish("1.0.0")
    install(repo, data_dir)
    for cached in (data_dir / "install/tuf/targets").iterdir():
        cached.unlink()
    repo.publish("1.1.0", automatic=True)
    repo.server.tamper["/targets/eid-agent-1.1.0.tar.gz"] = lambda b: b[:-1] + bytes([b[-1] ^ 1])
    with installed_agent(data_dir) as agent:
        agent.ready()
        wait_for(lambda: update_state(data_dir).get("applyFailures") == 1, what="a failure")
        agent.wait_for_output("[10021] The update failed")
        state = update_state(data_dir)
        assert state["phase"] == "available" and state["retryApplyAt"]
        assert info(agent)["version"] == "1.0.0" and agent.proc.poll() is None
        assert agent.start_auth()
        assert current_version(data_dir) == "1.0.0"
        assert sorted(p.name for p in (data_dir / "install/versions").iterdir()) == ["1.0.0"]
    # the count survives a restart
    with installed_agent(data_dir) as agent:
        agent.ready()
        assert update_state(data_dir)["applyFailures"] == 1


def test_repeated_failures_send_the_person_to_the_signed_install_page(
    repo: Repo, data_dir: Path
) -> None:
    repo.publish("1.0.0")
    install(repo, data_dir)
    repo.publish("1.1.0", manualUrl=MANUAL, failureThreshold=2)
    repo.server.tamper["/targets/eid-agent-1.1.0.patch"] = lambda b: b[:-1] + bytes([b[-1] ^ 1])
    repo.server.tamper["/targets/eid-agent-1.1.0.tar.gz"] = lambda b: b[:-1] + bytes([b[-1] ^ 1])
    first = _apply(data_dir)
    assert "[10022]" in first and f"Install page: {MANUAL}" in first
    second = _apply(data_dir)
    assert "[10023]" in second and f"Install page: {MANUAL}" in second
    assert update_state(data_dir)["phase"] == "manual"
    assert current_version(data_dir) == "1.0.0"
    result = run_agent_cli(
        "self-test", "--data-dir", str(data_dir), program=data_dir / "install/current/eid-agent"
    )
    assert result.returncode == 0, result.stderr


def test_unhealthy_new_version_is_rolled_back(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.0.0")
    install(repo, data_dir)

    def break_catalogue(bundle: Path) -> None:
        catalogue = bundle / "lib/eidcore/messages/catalogue.toml"
        text = catalogue.read_text(encoding="utf-8")
        # one placeholder misspelt in one language: the code starts, only the self-test sees it
        broken = text.replace("locked: {tries_left}.", "locked: {tries}.")
        assert broken != text
        catalogue.write_text(broken, encoding="utf-8")

    repo.bundle("1.1.0", broken=break_catalogue)
    repo.publish("1.1.0")
    with installed_agent(data_dir) as agent:
        agent.ready()
        output = _apply(data_dir)
        assert "[10022]" in output
        assert "[10022]" in agent.stdout
        agent.wait_for_output("did not become healthy", stream="stderr")
        agent.wait_for_output("listening again", stream="stderr")
        assert "self-test: message catalogue" in agent.stderr
        assert info(agent)["version"] == "1.0.0" and agent.proc.poll() is None
        assert agent.successor() is None
        assert current_version(data_dir) == "1.0.0"
        assert not (data_dir / "install/versions/1.1.0").exists()
        assert update_state(data_dir)["applyFailures"] == 1
        assert agent.start_auth()


def test_no_update_starts_while_an_order_is_active(repo: Repo, data_dir: Path) -> None:
    repo.publish("1.0.0")
    install(repo, data_dir)
    with installed_agent(data_dir) as agent:
        agent.ready()
        wait_for(lambda: update_state(data_dir).get("lastSuccess"), what="first check")
        repo.publish("1.1.0")
        ref = agent.start_auth()
        agent.wait_for_output("wants you to identify yourself")
        os.kill(agent.proc.pid, signal.SIGUSR1)  # what 'eid-agent update apply' sends
        wait_for(lambda: update_state(data_dir).get("target") == "1.1.0", what="the check")
        time.sleep(1.0)  # several update ticks pass with the order open
        assert info(agent)["version"] == "1.0.0" and agent.successor() is None
        assert update_state(data_dir)["phase"] == "available"
        agent.request("POST", "/v1/cancel", {"orderRef": ref})
        _took_over(agent, "1.1.0")
    assert not alive(agent.proc.pid)
