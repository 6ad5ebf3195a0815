"""What a pair of BankID certificates says about its credential: the one reading shared by
cards and PKCS#11 tokens (a BankID on file carries the same facts in its own format)."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from agent.credentials.model import CredentialInfo, CredentialKind, KeyPurpose, Owner
from eidcore.personal_number import PersonalNumber


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def owner_of(cert: x509.Certificate) -> Owner:
    """Raises: InvalidPersonalNumber (the holder is not named by a personal number)."""
    subject = cert.subject
    return Owner(
        PersonalNumber.parse(_attr(subject, NameOID.SERIAL_NUMBER)),
        _attr(subject, NameOID.GIVEN_NAME),
        _attr(subject, NameOID.SURNAME),
    )


def describe(
    kind: CredentialKind,
    ident_der: bytes,
    sign_der: bytes,
    *,
    locked: bool = False,
    tries_left: int | None = None,
) -> CredentialInfo:
    """Raises: ValueError (a certificate does not parse, or names no personal number)."""
    ident = x509.load_der_x509_certificate(ident_der)
    sign = x509.load_der_x509_certificate(sign_der)
    issuer = _attr(ident.issuer, NameOID.COMMON_NAME) or ident.issuer.rfc4514_string()
    return CredentialInfo(
        id=hashlib.sha256(ident_der).hexdigest()[:16],
        kind=kind,
        owner=owner_of(ident),
        issuer=issuer,
        not_before=max(ident.not_valid_before_utc, sign.not_valid_before_utc),
        not_after=min(ident.not_valid_after_utc, sign.not_valid_after_utc),
        locked=locked,
        development=False,
        purposes=frozenset(KeyPurpose),
        tries_left=tries_left,
        rsa=isinstance(ident.public_key(), rsa.RSAPublicKey)
        or isinstance(sign.public_key(), rsa.RSAPublicKey),
    )
