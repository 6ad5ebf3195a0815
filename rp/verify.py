"""Verify what the agent returned to a web page (``completionData``), on the website's
server. Nothing the browser says is taken on its word: the person comes from the
certificate, the origin, nonce, type and time from the signed bytes, and the certificate
must chain to the site's own trust anchors with the key usage the order type needs.

Format of the signed bytes: docs/signed-data.md.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from eidcore import signeddata
from eidcore.signeddata import Door
from rp.errors import (
    BadSignature,
    CertificateExpired,
    DataMismatch,
    MalformedResponse,
    TimeSkew,
    UnknownNonce,
    UntrustedChain,
    WrongDoor,
    WrongKeyUsage,
    WrongOrderType,
    WrongOrigin,
    WrongParty,
)
from rp.revocation import OcspPolicy, check_revocation

MAX_SKEW = dt.timedelta(minutes=5)
MAX_CHAIN = 4


@dataclass(frozen=True)
class Person:
    personal_number: str
    name: str
    given_name: str
    surname: str


@dataclass(frozen=True)
class Verified:
    person: Person
    type: str
    origin: str
    signed_at: dt.datetime
    order_ref: str
    token_kind: str
    certificate: x509.Certificate
    door: Door = Door.BRIDGE
    party: str | None = None


def verify_auth(
    response: Mapping[str, Any],
    *,
    expected_origin: str,
    nonce: str,
    trust_anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    user_visible_data: str | None = None,
    max_skew: dt.timedelta = MAX_SKEW,
    revocation: OcspPolicy | None = None,
    party: str | None = None,
) -> Verified:
    """Who logged in; with ``revocation``, the issuer's OCSP responder is asked too (a
    blocking call of up to its timeout). Without ``party`` the order must have come
    through the localhost bridge from the page at ``expected_origin``; with it, through
    the order relay at ``expected_origin`` for that requesting party.

    Raises: a VerificationError subclass saying why not."""
    return _verify(
        response, "auth", expected_origin, nonce, trust_anchors, now, max_skew,
        user_visible_data, None, revocation, party,
    )  # fmt: skip


def verify_sign(
    response: Mapping[str, Any],
    *,
    expected_origin: str,
    nonce: str,
    trust_anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    user_visible_data: str,
    user_non_visible_data: bytes | None = None,
    max_skew: dt.timedelta = MAX_SKEW,
    revocation: OcspPolicy | None = None,
    party: str | None = None,
) -> Verified:
    """Who signed ``user_visible_data`` (and ``user_non_visible_data``); with
    ``revocation``, checked against the issuer's OCSP responder; ``party`` as for
    ``verify_auth``.

    Raises: a VerificationError subclass saying why not.
    """
    return _verify(
        response, "sign", expected_origin, nonce, trust_anchors, now, max_skew,
        user_visible_data, user_non_visible_data, revocation, party,
    )  # fmt: skip


def _verify(
    response: Mapping[str, Any],
    order_type: str,
    expected_origin: str,
    nonce: str,
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    max_skew: dt.timedelta,
    visible: str | None,
    non_visible: bytes | None,
    revocation: OcspPolicy | None,
    party: str | None,
) -> Verified:
    signed_bytes, signature, chain = _parse(response)
    try:
        signed = signeddata.parse(signed_bytes)
    except signeddata.MalformedSignedData as exc:
        raise MalformedResponse(str(exc)) from None
    if signed.type != order_type:
        raise WrongOrderType(f"signed for {signed.type!r}, expected {order_type!r}")
    door = Door.BRIDGE if party is None else Door.RELAY
    if signed.door is not door:
        raise WrongDoor(f"signed for an order through the {signed.door}, expected the {door}")
    if signed.party != party:
        raise WrongParty("signed for another requesting party")
    if signed.origin != expected_origin.rstrip("/"):
        raise WrongOrigin("signed for another origin")
    try:
        expected_nonce = signeddata.unb64url(nonce)
    except (ValueError, TypeError):
        raise MalformedResponse("the nonce given is not base64url") from None
    if not hmac.compare_digest(signed.nonce, expected_nonce):
        raise UnknownNonce("signed for another nonce")
    if abs(now - signed.time) > max_skew:
        raise TimeSkew("signing time too far from now")
    _check_data(signed.user_visible_sha256, None if visible is None else visible.encode())
    _check_data(signed.user_non_visible_sha256, non_visible)

    leaf = chain[0]
    public = leaf.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or len(signature) != 64:
        raise BadSignature("not an ES256 signature")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public.verify(der, signed_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise CertificateExpired("certificate not valid now")
    _check_chain(leaf, chain[1:], anchors, now)
    _check_usage(leaf, order_type)
    if revocation is not None:
        issuer = next((c for c in (*chain[1:], *anchors) if _issued(leaf, c)), None)
        if issuer is None:
            raise UntrustedChain("the issuer's certificate is not at hand for OCSP")
        check_revocation(leaf, issuer, revocation, now)
    return Verified(
        person=_person(leaf),
        type=order_type,
        origin=signed.origin,
        signed_at=signed.time,
        order_ref=signed.order_ref,
        token_kind=str(response.get("token", {}).get("kind", "")),
        certificate=leaf,
        door=signed.door,
        party=signed.party,
    )


def _parse(response: Mapping[str, Any]) -> tuple[bytes, bytes, list[x509.Certificate]]:
    try:
        if response.get("algorithm") != "ES256":
            raise MalformedResponse("algorithm must be ES256")
        signed = base64.b64decode(response["signedData"], validate=True)
        signature = base64.b64decode(response["signature"], validate=True)
        chain_b64 = response["certificateChain"]
        if not isinstance(chain_b64, list) or not 1 <= len(chain_b64) <= MAX_CHAIN:
            raise MalformedResponse("certificateChain length")
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
                 for c in chain_b64]  # fmt: skip
        for cert in chain:
            cert.public_key()
    except MalformedResponse:
        raise
    except (KeyError, TypeError, ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise MalformedResponse(f"completionData: {type(exc).__name__}") from None
    return signed, signature, chain


def _check_data(signed_digest: str | None, expected: bytes | None) -> None:
    if expected is None:
        if signed_digest is not None:
            raise DataMismatch("data was signed that this site did not send")
        return
    if signed_digest is None:
        raise DataMismatch("the data this site sent was not signed")
    if not hmac.compare_digest(signed_digest, signeddata.digest(expected)):
        raise DataMismatch("the signed data differs from what this site sent")


def _check_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
) -> None:
    if not anchors:
        raise UntrustedChain("no trust anchors configured")
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(now)
        .extension_policies(
            # WebPKI rules for the CAs; the person's certificates are checked for the key
            # usage of their purpose below, which WebPKI's end-entity rules do not know.
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, list(intermediates))
    except verification.VerificationError:
        raise UntrustedChain("certificate does not chain to a trust anchor") from None


def _issued(leaf: x509.Certificate, candidate: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(candidate)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_usage(leaf: x509.Certificate, order_type: str) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise WrongKeyUsage("certificate lacks key usage or basic constraints") from None
    if constraints.ca:
        raise WrongKeyUsage("a CA certificate cannot identify a person")
    # Identification key: digitalSignature only. Signature key: nonRepudiation. A
    # certificate with the wrong one was presented for the wrong kind of order.
    ok = (
        usage.digital_signature and not usage.content_commitment
        if order_type == "auth"
        else usage.content_commitment
    )
    if not ok:
        raise WrongKeyUsage(f"certificate not for {order_type}")


def _person(leaf: x509.Certificate) -> Person:
    def attr(oid: x509.ObjectIdentifier) -> str:
        values = leaf.subject.get_attributes_for_oid(oid)
        value = values[0].value if values else ""
        return value if isinstance(value, str) else value.decode("utf-8", "replace")

    pnr = attr(NameOID.SERIAL_NUMBER)
    if len(pnr) != 12 or not pnr.isdigit():
        raise MalformedResponse("certificate has no personal number")
    given, surname = attr(NameOID.GIVEN_NAME), attr(NameOID.SURNAME)
    return Person(pnr, attr(NameOID.COMMON_NAME) or f"{given} {surname}", given, surname)
