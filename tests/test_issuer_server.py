"""The issuer's HTTP service in process (aiohttp's test server, SQLite, a real CA): what an
anonymous peer can send gets a clear 4xx and one log line, never a 500 or a traceback."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eidcore import policies
from issuer import CertificateAuthority
from issuer.db import open_database
from issuer.enrolment import Enrolments
from issuer.server import IssuerConfig, build_app

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
TOKEN = "back-office-token-0123456789"
LONE = '"\\ud800"'  # the JSON escape of a lone surrogate: plain ASCII on the wire


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    ca = CertificateAuthority.create("Server", NOW - dt.timedelta(days=1))
    enrolments = Enrolments(open_database(str(tmp_path / "i.db")), ca, b"k" * 32)
    app = build_app(enrolments, ca, IssuerConfig(backoffice_token=TOKEN, clock=lambda: NOW))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("path", "raw", "token"),
    [
        ("/enrol/v1/enrolments", '{"personalNumber": ' + LONE + ', "activationCode": "x"}', None),
        (
            "/enrol/v1/enrolments",
            '{"personalNumber": "198112189876", "activationCode": ' + LONE + "}",
            None,
        ),
        (
            "/enrol/v1/enrolments/x/certificates",
            '{"identificationCsr": ' + LONE + ', "signatureCsr": "x"}',
            None,
        ),
        (
            "/enrol/v1/revocations",
            '{"certificate": ' + LONE + ', "request": "", "signature": ""}',
            None,
        ),
        (
            "/backoffice/v1/orders",
            '{"personalNumber": "198112189876", "name": ' + LONE + "}",
            TOKEN,
        ),
        ("/backoffice/v1/persons/198112189876/revoke", '{"reason": ' + LONE + "}", TOKEN),
    ],
)
async def test_a_lone_surrogate_is_400_with_one_log_line(
    issuer: TestClient,  # type: ignore[type-arg]
    path: str,
    raw: str,
    token: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = await issuer.post(path, data=raw.encode(), headers=headers)
    body = await response.json()
    assert (response.status, body["error"]) == (400, "badRequest"), body
    assert "Traceback" not in caplog.text and "failed" not in caplog.text


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def _enrolment(issuer: TestClient) -> tuple[str, str]:  # type: ignore[type-arg]
    back = {"Authorization": f"Bearer {TOKEN}"}
    created = await issuer.post(
        "/backoffice/v1/orders",
        json={"personalNumber": "198112189876", "name": "Anna Andersson"},
        headers=back,
    )
    code = (await created.json())["activationCode"]
    started = await issuer.post(
        "/enrol/v1/enrolments", json={"personalNumber": "198112189876", "activationCode": code}
    )
    body = await started.json()
    return body["enrolmentId"], body["secret"]


@pytest.mark.parametrize(
    ("kind", "status"), [(None, 200), ("file", 200), ("token", 200), ("card", 400), (5, 400)]
)
async def test_an_enrolment_names_the_kind_its_certificates_carry(
    issuer: TestClient,  # type: ignore[type-arg]
    kind: object,
    status: int,
) -> None:
    enrolment, secret = await _enrolment(issuer)
    body: dict[str, object] = {
        "identificationCsr": _csr(ec.generate_private_key(ec.SECP256R1())),
        "signatureCsr": _csr(ec.generate_private_key(ec.SECP256R1())),
    }
    if kind is not None:
        body["kind"] = kind
    response = await issuer.post(
        f"/enrol/v1/enrolments/{enrolment}/certificates",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status == status
    if status == 200:
        issued = await response.json()
        cert = x509.load_pem_x509_certificate(issued["identification"].encode())
        found = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        oids = [p.policy_identifier.dotted_string for p in found]
        assert policies.kind_of(oids) == (kind or "file")
