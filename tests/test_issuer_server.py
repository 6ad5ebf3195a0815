"""The issuer's HTTP service in process (aiohttp's test server, SQLite, a real CA): what an
anonymous peer can send gets a clear 4xx and one log line, never a 500 or a traceback."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

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
