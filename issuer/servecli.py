"""``eid-issuer serve`` and ``eid-issuer order``: run the issuer service, or create an
order from the command line (what the internet bank does through the back-office API).

Where things live (``--ca-dir``, default the per-user issuer folder's ``dev-ca``): the CA,
``activation.key`` (the HMAC key for activation codes; kept with the CA key, not in the
database, and shared by every issuer process), ``backoffice.token`` (created on first
start, 0600), and for ``--dev-tls`` a TLS key and certificate for localhost that agents
pin in development.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import logging
import secrets
import ssl
from pathlib import Path
from typing import TextIO

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eidcore.atomicfile import atomic_write_bytes
from eidcore.personal_number import PersonalNumber
from issuer.ca import CertificateAuthority
from issuer.db import DatabaseError, open_database
from issuer.enrolment import Enrolments
from issuer.server import IssuerConfig, build_app

__all__ = ["add_commands", "order_command", "serve_command"]

log = logging.getLogger("issuer.serve")

KEEPALIVE_SECONDS = 15.0  # an idle kept-alive connection; also bounds a trickled request


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the enrolment, back-office and OCSP service")
    serve.add_argument(
        "--db", help="sqlite:///FILE or postgresql://... (default: issuer.db in the CA folder)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--ca-dir", type=Path, help="the CA folder (default: per-user)")
    serve.add_argument(
        "--public-url", help="the URL agents and relying parties use (default: from host and port)"
    )
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain for HTTPS")
    serve.add_argument("--tls-key", type=Path, help="PEM key for HTTPS")
    serve.add_argument(
        "--dev-tls",
        action="store_true",
        help="development: HTTPS with a localhost certificate kept in the CA "
        "folder (agents pin dev-tls.crt)",
    )
    serve.add_argument("--order-minutes", type=float, default=15, help="order lifetime")
    serve.add_argument(
        "--rate", type=float, default=20.0, help="requests per second per client address"
    )
    order = commands.add_parser("order", help="create an order; prints the activation code")
    order.add_argument("--db")
    order.add_argument("--ca-dir", type=Path)
    order.add_argument("--personal-number", required=True)
    order.add_argument("--name", required=True)
    order.add_argument("--order-minutes", type=float, default=15)


def _secret_file(path: Path, size: int) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        value = secrets.token_urlsafe(size).encode()
        atomic_write_bytes(path, value, mode=0o600)
        return value


def _enrolments(
    args: argparse.Namespace, ca_dir: Path, ca: CertificateAuthority, ocsp_url: str | None
) -> Enrolments:
    db = open_database(args.db or f"sqlite:///{ca_dir / 'issuer.db'}")
    return Enrolments(
        db,
        ca,
        _secret_file(ca_dir / "activation.key", 32),
        ocsp_url=ocsp_url,
        order_ttl=dt.timedelta(minutes=args.order_minutes),
    )


def dev_tls(ca_dir: Path, now: dt.datetime) -> tuple[Path, Path]:
    """A self-signed localhost certificate for development HTTPS (made once)."""
    cert_path, key_path = ca_dir / "dev-tls.crt", ca_dir / "dev-tls.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eid-issuer development")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write_bytes(key_path, pem)
    atomic_write_bytes(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert_path, key_path


def serve_command(
    args: argparse.Namespace, ca_dir: Path, ca: CertificateAuthority, out: TextIO
) -> int:
    now = dt.datetime.now(dt.UTC)
    tls: ssl.SSLContext | None = None
    cert, key = args.tls_cert, args.tls_key
    if args.dev_tls:
        cert, key = dev_tls(ca_dir, now)
    if cert or key:
        if not (cert and key):
            out.write("eid-issuer: --tls-cert and --tls-key go together\n")
            return 2
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
    scheme = "https" if tls else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    public = (args.public_url or f"{scheme}://{host}:{args.port}").rstrip("/")
    try:
        enrolments = _enrolments(args, ca_dir, ca, f"{public}/ocsp")
    except DatabaseError as exc:
        out.write(f"eid-issuer: {exc}\n")
        return 1
    token = _secret_file(ca_dir / "backoffice.token", 32).decode().strip()
    app = build_app(enrolments, ca, IssuerConfig(backoffice_token=token, rate_per_second=args.rate))
    return asyncio.run(_serve(app, args.host, args.port, tls, public, ca_dir, out))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    public: str,
    ca_dir: Path,
    out: TextIO,
) -> int:
    from eidcore.jsonapi import serve_until_stopped

    def listening(_url: str) -> None:  # the public URL is the one to name
        token = ca_dir / "backoffice.token"
        log.info("eid-issuer listening on %s (back-office token in %s)", public, token)

    try:
        await serve_until_stopped(
            app, host, port, tls=tls, listening=listening, keepalive=KEEPALIVE_SECONDS
        )
    except OSError as exc:
        out.write(f"eid-issuer: cannot listen on {host}:{port}: {exc.strerror}\n")
        return 1
    return 0


def order_command(
    args: argparse.Namespace, ca_dir: Path, ca: CertificateAuthority, out: TextIO
) -> int:
    pnr = PersonalNumber.parse(args.personal_number)
    enrolments = _enrolments(args, ca_dir, ca, None)
    created = enrolments.create_order(pnr, args.name, dt.datetime.now(dt.UTC))
    until = f"{created.expires_at:%Y-%m-%d %H:%M} UTC"
    out.write(
        f"activation code: {created.activation_code}\n"
        f"order {created.order_id}, valid until {until}\n"
    )
    return 0
