"""Issuer figures: whole enrolments per second on SQLite and on PostgreSQL (back-office
order, start, two CSRs to two certificates), and OCSP responses per second against
OpenSSL's own OCSP responder over the same CA, both asked the same way."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import shutil
import statistics
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from bench import responder
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
    openssl_process = subprocess.Popen(
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
    figures: list[Figure] = []
    openssl_rates: list[float] = []
    stack = contextlib.ExitStack()  # the bare responder's process
    try:
        bare_url, _ = stack.enter_context(responder.running(ca_dir, prepared=True))
        time.sleep(0.5)
        floor = [_rate(bare_url, itertools.repeat(plain))]
        for label, nonce in (("no nonce", False), ("with a nonce", True)):
            # requests with nonces are made beforehand: the client's cost stays the same
            bodies = (
                iter([_with_nonce(builder) for _ in range(120_000)])
                if nonce
                else itertools.repeat(plain)
            )
            # ours, then theirs, three times over: drift on a noisy machine hits both
            rounds = [
                (_rate(f"{issuer.url}/ocsp", bodies), _rate(f"http://127.0.0.1:{port}/", bodies))
                for _ in range(3)
            ]
            floor.append(_rate(bare_url, itertools.repeat(plain)))
            ours = statistics.median(r[0] for r in rounds)
            theirs = statistics.median(r[1] for r in rounds)
            openssl_rates.extend(r[1] for r in rounds)
            figures.append(
                Figure(
                    f"OCSP responses per second, {label}",
                    "/s",
                    ours,
                    "openssl ocsp responder, same CA and requests",
                    theirs,
                    "≥ 1.2×" if nonce else "≥ 1×",
                    ours >= (1.2 if nonce else 1.0) * theirs,
                    "new connection per request, 8 clients at once (asyncio); medians of 3 "
                    "rounds of 1 s, ours then theirs"
                    + (
                        "; a fresh signature every time"
                        if nonce
                        else "; signed answers reused up to 10 s"
                    ),
                )
            )
        figures.append(
            Figure(
                "OCSP: a bare aiohttp handler giving one prepared answer",
                "/s",
                statistics.median(floor),
                "openssl ocsp responder, same requests (all rounds above)",
                statistics.median(openssl_rates),
                "— (reported: the floor)",
                True,
                "what aiohttp alone costs per connection here, no parsing, lookup or "
                "signing: no responder on aiohttp can be faster than this, and OpenSSL's, "
                "which signs every answer, is faster still",
            )
        )
    finally:
        stack.close()
        openssl_process.terminate()
        openssl_process.wait()
    return figures


def _with_nonce(builder: ocsp.OCSPRequestBuilder) -> bytes:
    request = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False).build()
    return request.public_bytes(serialization.Encoding.DER)


def _rate(url: str, bodies: Iterator[bytes], seconds: float = 1.0, clients: int = 8) -> float:
    """Answers per second to ``clients`` asking at once for ``seconds``, each request on a
    new connection (as OCSP clients do). The client is an asyncio loop writing prepared
    requests and reading the answers' status line: cheap enough that the responder, not
    the client, is what is measured (a urllib client in threads topped out at ~2,600/s
    here, where OpenSSL's responder answers ~10,000/s). One answer in 50 is parsed in
    full."""
    parts = urllib.parse.urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"

    async def ask(n: int) -> None:
        body = next(bodies)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
            f"application/ocsp-request\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        reply = await reader.read()
        writer.close()
        head, _, answer = reply.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"200", head[:80]
        if n % 50 == 0:
            parsed = ocsp.load_der_ocsp_response(answer)
            assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL

    async def measure() -> float:
        await ask(0)  # warm
        counter = itertools.count(1)

        async def client(deadline: float) -> None:
            while time.perf_counter() < deadline:
                await ask(next(counter))

        start = time.perf_counter()
        await asyncio.gather(*(client(start + seconds) for _ in range(clients)))
        return (next(counter) - 1) / (time.perf_counter() - start)

    return asyncio.run(measure())
