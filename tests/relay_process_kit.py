"""A real ``eid-relay serve`` process over HTTPS, with its settings for one shop, for the
tests that need the relay as an organisation runs it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from issuer import CertificateAuthority
from tests.agent_process import BIN
from tests.bridge_kit import free_port
from tests.relay_kit import ORIGIN, RETURN, SHOP_TOKEN

__all__ = ["RelayProcess", "free_port", "tls", "write_config"]


def write_config(folder: Path, ca: CertificateAuthority, origin: str = ORIGIN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issuer-root.pem").write_bytes(
        ca.root_certificate.public_bytes(serialization.Encoding.PEM)
    )
    digest = hashlib.sha256(SHOP_TOKEN.encode()).hexdigest()
    path = folder / "relay.toml"
    path.write_text(
        f'origin = "{origin}"\ntrust = ["issuer-root.pem"]\n\n[[party]]\n'
        f'id = "shop"\nname = "Exempelbutiken AB"\ntoken_sha256 = "{digest}"\n'
        f'return_urls = ["{RETURN}"]\n'
    )
    return path


class RelayProcess:
    def __init__(
        self, config: Path, db: str, tls: tuple[Path, Path], *extra: str, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [
                str(BIN / "eid-relay"),
                "--lang",
                "en",
                "serve",
                "--config",
                str(config),
                "--db",
                db,
                "--port",
                str(self.port),
                "--tls-cert",
                str(tls[0]),
                "--tls-key",
                str(tls[1]),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        self.said = ""
        deadline = time.monotonic() + 30
        while "listening on" not in self.said and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.said += line
        assert "listening on" in self.said, self.said
        self.tls = ssl.create_default_context(cafile=str(tls[0]))

    def call(self, path: str, body: object, token: str | None = SHOP_TOKEN) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = f"https://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.tls) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, self.said + err
        return self.said + err


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    """A development TLS certificate and key for 127.0.0.1."""
    from issuer.servecli import dev_tls

    (tmp_path / "tls").mkdir(exist_ok=True)
    return dev_tls(tmp_path / "tls", dt.datetime.now(dt.UTC))
