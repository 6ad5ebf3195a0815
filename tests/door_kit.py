"""The second door as a person meets it: a relay process whose address the person's
settings name, the person's data folder with Anna's credential, and ``eid-agent open LINK``
in the console."""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.credentials import CredentialStore
from issuer import CertificateAuthority
from tests.agent_process import BIN
from tests.conftest import ANNA, FAST_KDF, PASSWORD, MakeToken
from tests.relay_process_kit import RelayProcess, free_port, write_config

__all__ = ["console", "link", "open_link", "person", "relay"]


@pytest.fixture
def relay(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path]
) -> Iterator[RelayProcess]:
    port = free_port()
    config = write_config(tmp_path / "relay", ca, origin=f"https://127.0.0.1:{port}")
    # the person's settings name this loopback relay, host and port, as an internal one
    (tmp_path / "config.toml").write_text(f'[relay]\nallow = ["127.0.0.1:{port}"]\n')
    process = RelayProcess(config, f"sqlite:///{tmp_path / 'relay.db'}", tls, port=port)
    yield process
    if process.proc.poll() is None:
        assert "Traceback" not in process.stop()


@pytest.fixture
def person(tmp_path: Path, make_token: MakeToken) -> Path:
    """Anna's data folder (the relay fixture writes the settings beside it)."""
    data = tmp_path / "anna"
    CredentialStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    return data


def link(token: str, server: str, redirect: str = "https://shop.example/") -> str:
    query = urllib.parse.urlencode(
        {"autostarttoken": token, "server": server, "redirect": redirect}
    )
    return f"eid-agent:///?{query}"


def open_link(
    link: str,
    data: Path,
    tls: tuple[Path, Path],
    *extra: str,
    typed: str = PASSWORD,
    config: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return console(["open", link, *extra], data, tls, typed=typed + "\n", config=config)


def console(
    command: list[str],
    data: Path,
    tls: tuple[Path, Path],
    *,
    typed: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``eid-agent COMMAND`` in a console (no display), for ``data``, trusting the test
    relay's certificate, with the person's settings beside ``data`` unless ``config``;
    ``typed``: what the person types, whole lines."""
    argv = [
        str(BIN / "eid-agent"),
        *command,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        "--relay-ca",
        str(tls[0]),
        "--config",
        str(config or data.parent / "config.toml"),
    ]
    bare = {k: v for k, v in (env or os.environ).items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run(
        argv, input=typed, capture_output=True, text=True, timeout=60, check=False, env=bare
    )
