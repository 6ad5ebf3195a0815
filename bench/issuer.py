"""Issuer figures: whole enrolments per second on SQLite and on PostgreSQL (back-office
order, start, two CSRs to two certificates), and OCSP responses per second against
OpenSSL's own OCSP responder over the same CA, both asked the same way."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import statistics
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from bench.common import Figure
from eidcore.personal_number import PersonalNumber, luhn_check_digit
from issuer import CertificateAuthority, Person
from tests.bridge_kit import free_port
from tests.issuer_kit import IssuerProcess, postgres_cluster


def _valid_numbers(count: int) -> list[str]:
    out: list[str] = []
    serial = 100
    while len(out) < count:
        nine = f"811218{serial:03d}"
        out.append(f"19{nine}{luhn_check_digit(nine)}")
        serial += 1
    return out


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def _enrol_all(
    issuer: IssuerProcess, numbers: list[str], csrs: list[tuple[str, str]], concurrency: int
) -> float:
    token = {"Authorization": f"Bearer {issuer.token}"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(numbers)):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            async with session.post(
                f"{issuer.url}/backoffice/v1/orders",
                headers=token,
                json={"personalNumber": numbers[i], "name": "Bench Person"},
            ) as r:
                code = (await r.json())["activationCode"]
            async with session.post(
                f"{issuer.url}/enrol/v1/enrolments",
                json={"personalNumber": numbers[i], "activationCode": code},
            ) as r:
                started = await r.json()
            async with session.post(
                f"{issuer.url}/enrol/v1/enrolments/{started['enrolmentId']}/certificates",
                headers={"Authorization": f"Bearer {started['secret']}"},
                json={"identificationCsr": csrs[i][0], "signatureCsr": csrs[i][1]},
            ) as r:
                assert r.status == 200, await r.text()

    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return len(numbers) / (time.perf_counter() - start)


def run(tmp: Path, enrolments: int = 200) -> list[Figure]:
    numbers = _valid_numbers(enrolments)
    keys = [
        (ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1()))
        for _ in numbers
    ]
    csrs = [(_csr(a), _csr(b)) for a, b in keys]
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.create("Bench", now - dt.timedelta(days=1))
    # the floor: issuing the two certificates in-process, no HTTP, no database
    start = time.perf_counter()
    for (a, b), number in zip(keys, numbers, strict=True):
        ca.issue_pair(
            Person.from_full_name(PersonalNumber.parse(number), "Bench Person"),
            a.public_key(),
            b.public_key(),
            now,
            kind="file",
        )
    floor = len(numbers) / (time.perf_counter() - start)
    figures = []
    rates = {}
    with postgres_cluster() as pg:
        for kind, url in (
            ("SQLite", f"sqlite:///{tmp / 'bench-issuer.db'}"),
            ("PostgreSQL", pg.new_database()),
        ):
            with IssuerProcess(tmp / f"ca-{kind}", url, "--rate", "100000", tls=False) as issuer:
                rates[kind] = asyncio.run(_enrol_all(issuer, numbers, csrs, concurrency=8))
                if kind == "SQLite":
                    ocsp_figures = _ocsp(tmp, issuer)
    for kind, rate in rates.items():
        figures.append(
            Figure(
                f"enrolments per second, {kind}",
                "/s",
                rate,
                "issuing the two certificates in-process (no HTTP, no DB)",
                floor,
                "— (reported)",
                True,
                f"{enrolments} enrolments, 8 clients, plain HTTP",
            )
        )
    figures.extend(ocsp_figures)
    return figures


def _ocsp(tmp: Path, issuer: IssuerProcess) -> list[Figure]:
    """The same OCSP requests to our responder and to ``openssl ocsp`` over the same CA:
    one without a nonce (answers may be reused for a while) and one with (never)."""
    ca_dir = issuer.ca_dir
    issuing = x509.load_pem_x509_certificate((ca_dir / "issuing.crt").read_bytes())
    # one certificate the issuer issued, straight from its database
    import sqlite3

    db = sqlite3.connect(issuer.db.removeprefix("sqlite:///"))
    leaf_pem, serial = db.execute("SELECT pem, serial FROM certificates LIMIT 1").fetchone()
    db.close()
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuing, hashes.SHA1())  # noqa: S303
    plain = builder.build().public_bytes(serialization.Encoding.DER)
    index = tmp / "index.txt"
    expiry = leaf.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    index.write_text(f"V\t{expiry}\t\t{serial.upper()}\tunknown\t/CN=bench\n")
    port = free_port()
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    responder = subprocess.Popen(
        [
            openssl,
            "ocsp",
            "-index",
            str(index),
            "-port",
            str(port),
            "-rsigner",
            str(ca_dir / "issuing.crt"),
            "-rkey",
            str(ca_dir / "issuing.key"),
            "-CA",
            str(ca_dir / "issuing.crt"),
            "-ndays",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    figures = []
    try:
        time.sleep(0.5)
        for label, nonce in (("no nonce", False), ("with a nonce", True)):
            ours = _rate(f"{issuer.url}/ocsp", plain, nonce=nonce, builder=builder)
            theirs = _rate(f"http://127.0.0.1:{port}/", plain, nonce=nonce, builder=builder)
            figures.append(
                Figure(
                    f"OCSP responses per second, {label}",
                    "/s",
                    ours,
                    "openssl ocsp responder, same CA and requests",
                    theirs,
                    "≥ 1×",
                    ours >= theirs,
                    "new connection per request, 4 client threads"
                    + (
                        "; a fresh signature every time"
                        if nonce
                        else "; signed answers reused up to 10 s"
                    ),
                )
            )
    finally:
        responder.terminate()
        responder.wait()
    return figures


def _rate(
    url: str,
    der: bytes,
    *,
    nonce: bool,
    builder: ocsp.OCSPRequestBuilder,
    seconds: float = 3.0,
    threads: int = 4,
) -> float:
    # requests with nonces are made beforehand, so the client's own cost stays the same
    fresh = iter(
        [
            builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
            .build()
            .public_bytes(serialization.Encoding.DER)
            for _ in range(40_000)
        ]
        if nonce
        else []
    )

    def ask() -> None:
        body = next(fresh) if nonce else der
        req = urllib.request.Request(  # noqa: S310 - loopback
            url, data=body, method="POST", headers={"Content-Type": "application/ocsp-request"}
        )
        with urllib.request.urlopen(req, timeout=10) as reply:  # noqa: S310
            answer = ocsp.load_der_ocsp_response(reply.read())
            assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL

    ask()  # warm

    def loop(deadline: float) -> int:
        n = 0
        while time.perf_counter() < deadline:
            ask()
            n += 1
        return n

    counts = []
    for _ in range(3):
        start = time.perf_counter()
        deadline = start + seconds / 3
        with ThreadPoolExecutor(threads) as pool:
            done = sum(pool.map(loop, [deadline] * threads))
        counts.append(done / (time.perf_counter() - start))
    return statistics.median(counts)
