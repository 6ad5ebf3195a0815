"""``eid-relay party-cert``: a development client certificate for a relying party, from a
development RP CA kept beside the relay's configuration (``rp-ca/``, made on first use,
owner-only). A bank's relay in production is given its parties' certificates by its own
CA; this is for trying the relay out, and for the tests.

Written: ``PARTY.pem`` (the certificate, then the CA), ``PARTY.key`` and ``PARTY.p12``
(both, for clients that take PKCS#12 only, such as npm ``bankid``). The party's line for
``relay.toml`` is the SHA-256 of the certificate's DER.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eidcore.atomicfile import atomic_write_bytes, private_dir

__all__ = ["PartyCertificate", "make_party_certificate"]

CA_DIR = "rp-ca"
CA_YEARS = 10


@dataclass(frozen=True)
class PartyCertificate:
    certificate: Path
    key: Path
    pkcs12: Path
    ca: Path  # what ``eid-relay serve --client-ca`` is given
    sha256: str  # of the certificate's DER: ``client_cert_sha256``


def make_party_certificate(
    config_dir: Path, party: str, out: Path, password: str, now: dt.datetime, days: int = 365
) -> PartyCertificate:
    """Raises: OSError, ValueError (``party`` is not a party id's shape, ``days`` ≤ 0)."""
    if days <= 0:
        raise ValueError("days must be positive")
    ca_cert, ca_key = _ca(config_dir / CA_DIR, now)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    private_dir(out)
    pem = certificate.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    paths = PartyCertificate(
        certificate=out / f"{party}.pem",
        key=out / f"{party}.key",
        pkcs12=out / f"{party}.p12",
        ca=config_dir / CA_DIR / "ca.pem",
        sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )
    atomic_write_bytes(paths.certificate, pem)
    atomic_write_bytes(
        paths.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    atomic_write_bytes(
        paths.pkcs12,
        pkcs12.serialize_key_and_certificates(
            party.encode(),
            key,
            certificate,
            [ca_cert],
            serialization.BestAvailableEncryption(password.encode()),
        ),
    )
    return paths


def _ca(folder: Path, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The development RP CA in ``folder``, made the first time."""
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not the development RP CA's key")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    folder.parent.mkdir(parents=True, exist_ok=True)
    private_dir(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eid-relay development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "eid-relay development RP CA"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_YEARS * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    atomic_write_bytes(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    atomic_write_bytes(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key
