"""Relying parties known by their TLS client certificate (issue #29's first part): a real
``eid-relay serve --client-ca`` process, certificates from ``eid-relay party-cert``, and
clients that present one, another, an expired one or none."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from issuer import CertificateAuthority
from relay.config import ConfigError, config_from
from relay.partycert import make_party_certificate
from tests.agent_process import BIN
from tests.relay_kit import ORIGIN, RETURN
from tests.relay_process_kit import RelayProcess, write_config

START = {"endUserIp": "192.0.2.1"}


def _party_cert(config: Path, party: str, out: Path) -> tuple[str, str]:
    """``eid-relay party-cert`` as a person runs it: (its output, the sha256 line's value)."""
    result = subprocess.run(
        [
            str(BIN / "eid-relay"),
            "--lang",
            "en",
            "party-cert",
            "--config",
            str(config),
            "--party",
            party,
            "--out",
            str(out),
            "--password",
            "pass word",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if "client_cert_sha256" in x)
    return result.stdout, line.split('"')[1]


def _call(
    port: int,
    server_ca: Path,
    path: str,
    body: object,
    client: tuple[Path, Path] | None,
    bearer: str | None = None,
) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(server_ca))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def relay(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path]
) -> Iterator[tuple[RelayProcess, Path, dict[str, tuple[Path, Path]]]]:
    config = write_config(tmp_path / "relay", ca)
    said, shop_sha = _party_cert(config, "shop", tmp_path / "certs")
    assert "--client-ca" in said and shop_sha in said
    _party_cert(config, "stranger", tmp_path / "certs")  # chains to the CA, is no party
    # the shop rolling its certificate: an old one and this one
    config.write_text(
        f'origin = "{ORIGIN}"\ntrust = ["issuer-root.pem"]\n\n'
        f'[[party]]\nid = "shop"\nname = "Exempelbutiken AB"\n'
        f'client_cert_sha256 = ["{"0" * 64}", "{shop_sha}"]\nreturn_urls = ["{RETURN}"]\n'
    )
    # an expired certificate from the same CA, and one from another CA
    now = dt.datetime.now(dt.UTC)
    month_ago = now - dt.timedelta(days=30)
    make_party_certificate(config.parent, "old", tmp_path / "old", "pw", month_ago, days=1)
    make_party_certificate(tmp_path / "elsewhere", "shop", tmp_path / "foreign", "pw", now)
    client_ca = str(config.parent / "rp-ca/ca.pem")
    db = f"sqlite:///{tmp_path / 'relay.db'}"
    process = RelayProcess(config, db, tls, "--client-ca", client_ca)
    certs = {
        name: (folder / f"{party}.pem", folder / f"{party}.key")
        for name, folder, party in (
            ("shop", tmp_path / "certs", "shop"),
            ("stranger", tmp_path / "certs", "stranger"),
            ("expired", tmp_path / "old", "old"),
            ("foreign", tmp_path / "foreign", "shop"),
        )
    }
    yield process, tls[0], certs
    process.stop()


def test_a_party_is_known_by_its_client_certificate(
    relay: tuple[RelayProcess, Path, dict[str, tuple[Path, Path]]],
) -> None:
    process, server_ca, certs = relay
    status, started = _call(process.port, server_ca, "/rp/v6.0/auth", START, certs["shop"])
    assert status == 200 and started["orderRef"], started
    status, collected = _call(
        process.port,
        server_ca,
        "/rp/v6.0/collect",
        {"orderRef": started["orderRef"]},
        certs["shop"],
    )
    assert status == 200 and collected["status"] == "pending"
    # a bearer token beside the certificate changes nothing: tokens are not read any more
    said = _call(process.port, server_ca, "/rp/v6.0/auth", START, certs["shop"], "x" * 43)
    assert said[0] == 200


def test_no_certificate_or_one_that_is_no_partys_is_unauthorized(
    relay: tuple[RelayProcess, Path, dict[str, tuple[Path, Path]]],
) -> None:
    process, server_ca, certs = relay
    assert _call(process.port, server_ca, "/rp/v6.0/auth", START, None) == (
        401,
        {
            "errorCode": "unauthorized",
            "details": "a relying party's client certificate is required",
        },
    )
    status, said = _call(process.port, server_ca, "/rp/v6.0/auth", START, certs["stranger"])
    assert (status, said["errorCode"]) == (401, "unauthorized")
    assert "no party's" in said["details"]
    # nor does a bearer token make anyone a party (the relay's own API is gone)
    assert _call(process.port, server_ca, "/rp/v6.0/auth", START, None, "x" * 43)[0] == 401


@pytest.mark.parametrize("which", ["expired", "foreign"])
def test_an_expired_certificate_or_another_cas_ends_the_handshake(
    relay: tuple[RelayProcess, Path, dict[str, tuple[Path, Path]]], which: str
) -> None:
    """Python's TLS cannot take a certificate it could not verify and answer 401: the
    handshake ends with the alert saying why (as a TLS server requiring client
    certificates does); the relay goes on serving."""
    process, server_ca, certs = relay
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        _call(process.port, server_ca, "/rp/v6.0/auth", START, certs[which])
    assert _call(process.port, server_ca, "/rp/v6.0/auth", START, certs["shop"])[0] == 200


def test_agents_present_no_certificate_and_are_served(
    relay: tuple[RelayProcess, Path, dict[str, tuple[Path, Path]]],
) -> None:
    process, server_ca, _ = relay
    status, said = _call(
        process.port, server_ca, "/agent/v1/order", {"autoStartToken": "x" * 40}, None
    )
    assert status in (400, 404) and said["errorCode"] != "unauthorized"


def test_party_cert_writes_owner_only_files_and_a_pkcs12_that_opens(tmp_path: Path) -> None:
    config = tmp_path / "relay" / "relay.toml"
    config.parent.mkdir()
    config.write_text("")
    _, first = _party_cert(config, "shop", tmp_path / "out")
    _, second = _party_cert(config, "shop", tmp_path / "out")
    assert first != second  # a new certificate each time, from the same CA
    ca = (config.parent / "rp-ca" / "ca.pem").read_bytes()
    for path in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    key, certificate, extra = pkcs12.load_key_and_certificates(
        (tmp_path / "out" / "shop.p12").read_bytes(), b"pass word"
    )
    assert key is not None and certificate is not None and len(extra) == 1
    assert hashlib.sha256(certificate.public_bytes(encoding=_der())).hexdigest() == second
    assert b"BEGIN CERTIFICATE" in ca
    assert stat.S_IMODE(os.stat(config.parent / "rp-ca").st_mode) == 0o700
    argv = ["--lang", "en", "party-cert", "--config", str(config), "--party", "Not A Party"]
    refused = subprocess.run(
        [str(BIN / "eid-relay"), *argv, "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "--party is 1-64" in refused.stderr
    assert "Traceback" not in refused.stderr


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


@pytest.mark.parametrize(
    ("party", "said"),
    [
        ({"client_cert_sha256": "abc"}, "client_cert_sha256 must be 64 hex digits"),
        ({"client_cert_sha256": [1]}, "client_cert_sha256 must be 64 hex digits"),
        ({}, "client_cert_sha256 is required"),
        ({"token_sha256": "a" * 64, "client_cert_sha256": "a" * 64}, "bearer tokens are gone"),
        ({"client_cert_sha256": "a" * 64, "tokens": 1}, "unknown key tokens"),
    ],
)
def test_a_partys_certificate_lines_are_checked(
    party: dict[str, object], said: str, tmp_path: Path, ca: CertificateAuthority
) -> None:
    config = write_config(tmp_path, ca)
    doc = {
        "origin": ORIGIN,
        "trust": ["issuer-root.pem"],
        "party": [{"id": "shop", "name": "Butiken", **party}],
    }
    with pytest.raises(ConfigError, match=said):
        config_from(doc, config.parent, "relay.toml")


def test_one_certificate_speaks_for_one_party(tmp_path: Path, ca: CertificateAuthority) -> None:
    config = write_config(tmp_path, ca)
    sha = "ab" * 32
    doc = {
        "origin": ORIGIN,
        "trust": ["issuer-root.pem"],
        "party": [
            {"id": "one", "name": "Ett AB", "client_cert_sha256": sha},
            {"id": "two", "name": "Två AB", "client_cert_sha256": [sha]},
        ],
    }
    with pytest.raises(ConfigError, match="party two has a certificate of one"):
        config_from(doc, config.parent)
    doc["party"] = doc["party"][:1]
    assert config_from(doc, config.parent).party_with(b"x") is None
