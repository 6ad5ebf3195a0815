"""A real ``eid-relay serve`` process over HTTPS, with its settings for one shop, for the
tests that need the relay as an organisation runs it."""

from __future__ import annotations

import datetime as dt
import json
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from issuer import CertificateAuthority
from relay.partycert import CA_DIR, make_party_certificate
from tests.agent_process import BIN
from tests.bridge_kit import free_port
from tests.relay_kit import ORIGIN, RETURN

__all__ = [
    "RelayProcess",
    "Server",
    "free_port",
    "party_certificate",
    "start_server",
    "tls",
    "write_config",
]

CA = f"{CA_DIR}/ca.pem"  # the development RP CA write_config makes, for --client-ca


def write_config(folder: Path, ca: CertificateAuthority, origin: str = ORIGIN) -> Path:
    """relay.toml for one party, ``shop``, known by a client certificate from a development
    RP CA beside it (``rp-ca/``; the certificate and key in ``certs/``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issuer-root.pem").write_bytes(
        ca.root_certificate.public_bytes(serialization.Encoding.PEM)
    )
    made = make_party_certificate(folder, "shop", folder / "certs", "pw", dt.datetime.now(dt.UTC))
    path = folder / "relay.toml"
    path.write_text(
        f'origin = "{origin}"\ntrust = ["issuer-root.pem"]\n\n[[party]]\n'
        f'id = "shop"\nname = "Exempelbutiken AB"\nclient_cert_sha256 = "{made.sha256}"\n'
        f'return_urls = ["{RETURN}"]\n'
    )
    return path


def party_certificate(config: Path) -> tuple[Path, Path]:
    """The shop's client certificate and key that ``write_config`` made."""
    return config.parent / "certs" / "shop.pem", config.parent / "certs" / "shop.key"


class Server:
    """A server process that said it listens. What it writes to stderr after that is
    read as it comes (a full pipe would stop a busy server at its next log line)."""

    def __init__(self, proc: subprocess.Popen[str], said: str) -> None:
        self.proc, self.said = proc, said
        self._rest: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._rest.append(line)

    def stop(self, timeout: float = 20) -> str:
        """SIGTERM, then everything it said; asserts it ended well."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self._reader.join(timeout)
        said = self.said + "".join(self._rest)
        assert self.proc.returncode == 0, said
        return said


def start_server(argv: list[str]) -> Server:
    """A server process (``eid-relay``, ``eid-oidc``) once it says it is listening."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    said = ""
    deadline = time.monotonic() + 30
    while "listening on" not in said and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        said += line
    assert "listening on" in said, said
    return Server(proc, said)


class RelayProcess:
    def __init__(
        self, config: Path, db: str, tls: tuple[Path, Path], *extra: str, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.server = start_server(
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
                *(() if "--client-ca" in extra else ("--client-ca", str(config.parent / CA))),
                *extra,
            ]
        )
        self.tls = ssl.create_default_context(cafile=str(tls[0]))  # an agent: no certificate
        self.party_tls = ssl.create_default_context(cafile=str(tls[0]))
        self.certificate = party_certificate(config)
        if self.certificate[0].exists():
            self.party_tls.load_cert_chain(*self.certificate)

    def call(self, path: str, body: object, party: str | None = "shop") -> tuple[int, Any]:
        """``party``: with the party's client certificate (``shop``), or none (an agent)."""
        headers = {"Content-Type": "application/json"}
        url = f"https://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
        context = self.party_tls if party is not None else self.tls
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    @property
    def proc(self) -> subprocess.Popen[str]:
        return self.server.proc

    def stop(self) -> str:
        return self.server.stop()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    """A development TLS certificate and key for 127.0.0.1."""
    from issuer.servecli import dev_tls

    (tmp_path / "tls").mkdir(exist_ok=True)
    return dev_tls(tmp_path / "tls", dt.datetime.now(dt.UTC))
