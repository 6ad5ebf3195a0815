"""``eid-agent doctor``: a report support can use, with nothing secret or personal in it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.credentials import CredentialStore
from tests.agent_process import BIN, AgentProcess
from tests.conftest import ANNA, FAST_KDF, MakeToken
from tests.issuer_kit import ConnectProxy, IssuerProcess

pytestmark = pytest.mark.slow


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eid-agent"), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_healthy_setup_and_nothing_secret(tmp_path: Path, make_token: MakeToken) -> None:
    data = tmp_path / "data"
    CredentialStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    proxy = ConnectProxy(require_auth="anna:proxy-secret")
    config = tmp_path / "config.toml"
    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'i.db'}") as issuer:
        proxy_url = f"http://anna:proxy-secret@127.0.0.1:{proxy.port}"
        config.write_text(
            f'[issuer]\nurl = "{issuer.url}"\nca = "{issuer.tls_cert}"\n'
            f'[network]\nproxy = "{proxy_url}"\n'
        )
        with AgentProcess(data, "--no-cards") as agent:
            agent.ready()
            result = _doctor(
                "--data-dir",
                str(data),
                "--port",
                str(agent.port),
                "--config",
                str(config),
                "--json",
            )
    proxy.close()
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["bridge"]["status"] == "ok" and "eid-agent 0.1.0" in checks["bridge"]["detail"]
    assert checks["credentials"]["detail"] == "1 on file, 1 usable, 0 damaged"
    assert checks["issuer"]["status"] == "ok", checks["issuer"]
    assert f"via proxy http://127.0.0.1:{proxy.port}" in checks["issuer"]["detail"]
    assert checks["clock"]["status"] == "ok"
    assert proxy.seen  # the report's reach really went through the proxy
    for secret in ("proxy-secret", "198112189876", "Anna"):
        assert secret not in result.stdout + result.stderr


def test_problems_are_named_and_fail_the_exit_status(tmp_path: Path) -> None:
    dead = ConnectProxy()
    dead.close()
    result = _doctor(
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        "1",
        "--issuer",
        "https://127.0.0.1:9",
        "--proxy",
        dead.url,
        "--config",
        str(tmp_path / "none.toml"),
    )
    assert result.returncode == 1
    assert f"unreachable via proxy http://127.0.0.1:{dead.port}" in result.stdout
    assert "✗ issuer" in result.stdout and "Traceback" not in result.stderr


def test_a_bridge_of_an_agent_with_another_data_folder_is_not_a_tick(tmp_path: Path) -> None:
    """Support asks about the person's folder: an agent answering on the port for another
    folder is not that person's agent."""
    with AgentProcess(tmp_path / "running", "--no-cards") as agent:
        agent.ready()
        mine = _doctor(
            "--data-dir",
            str(tmp_path / "running"),
            "--port",
            str(agent.port),
            "--config",
            str(tmp_path / "none.toml"),
            "--lang",
            "en",
        )
        other = _doctor(
            "--data-dir",
            str(tmp_path / "other"),
            "--port",
            str(agent.port),
            "--config",
            str(tmp_path / "none.toml"),
            "--lang",
            "en",
        )
    assert "✓ website bridge" in mine.stdout, mine.stdout
    line = next(line for line in other.stdout.splitlines() if "website bridge" in line)
    assert line.startswith("! website bridge"), other.stdout
    assert f"but not the one for {tmp_path / 'other'}" in line
