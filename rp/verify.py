"""Verify what the agent returned to a web page (``completionData``), on the website's
server. Nothing the browser says is taken on its word: the person comes from the
certificate, the origin, nonce, type and time from the signed bytes, the kind of BankID
from the certificate's policy, and the certificate must chain to the site's own trust
anchors with the key usage the order type needs.

``completionData`` is hostile input: ``read_result`` checks its shape first, in one
place, so a field of the wrong type is ``MalformedResponse``, never an exception from
deep inside. Format of the signed bytes: docs/signed-data.md.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from eidcore import policies, signeddata, xmlsig
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
    WrongTokenKind,
)
from rp.revocation import OcspPolicy, check_revocation

MAX_SKEW = dt.timedelta(minutes=5)
MAX_CHAIN = 4
MAX_FIELD = 64 * 1024  # characters of one base64 field: a certificate is ~1 kB


@dataclass(frozen=True)
class Person:
    personal_number: str
    name: str
    given_name: str
    surname: str


@dataclass(frozen=True)
class Verified:
    """``token_kind``: file, card or token as the certificate's policy names it; None
    for a certificate with no such policy (issued before kinds were written): it meets
    no ``tokenKinds`` requirement."""

    person: Person
    type: str
    origin: str
    signed_at: dt.datetime
    order_ref: str
    token_kind: str | None
    certificate: x509.Certificate
    result: Result | None = None  # what was verified, as read


@dataclass(frozen=True)
class Result:
    """``completionData`` read, its shape checked: what the signature covers, the
    signature, the chain (leaf first) and the kind the agent claims (None: none)."""

    signed_data: bytes
    signature: bytes
    algorithm: str
    chain: tuple[x509.Certificate, ...]
    claimed_kind: str | None

    def wire(self) -> dict[str, object]:
        """The result as ``completionData`` carries it, built from what was read: a
        relay passes on this, never the fields it was sent."""
        der = [c.public_bytes(serialization.Encoding.DER) for c in self.chain]
        return {
            "signedData": base64.b64encode(self.signed_data).decode(),
            "signature": base64.b64encode(self.signature).decode(),
            "algorithm": self.algorithm,
            "certificateChain": [base64.b64encode(d).decode() for d in der],
        }


def read_result(response: object) -> Result:
    """``completionData``, its shape checked before anything in it is used. Fields this
    kit does not know are ignored; ``user`` is ignored (the person is the certificate's).

    Raises: MalformedResponse, naming the field, never echoing it.
    """
    if not isinstance(response, Mapping):
        raise MalformedResponse("completionData is not an object")
    if response.get("algorithm") != "ES256":
        raise MalformedResponse("algorithm must be ES256")
    chain_b64 = response.get("certificateChain")
    if not isinstance(chain_b64, list) or not 1 <= len(chain_b64) <= MAX_CHAIN:
        raise MalformedResponse("certificateChain must list 1 to 4 certificates")
    chain = []
    for der in (_base64("certificateChain", value) for value in chain_b64):
        try:
            cert = x509.load_der_x509_certificate(der)
            cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise MalformedResponse("certificateChain holds what is not a certificate") from None
        chain.append(cert)
    claimed: str | None = None
    if "token" in response:
        token = response["token"]
        if not isinstance(token, Mapping) or token.get("kind") not in policies.KINDS:
            raise MalformedResponse("token must be an object whose kind is file, card or token")
        claimed = str(token["kind"])
    if "user" in response and not isinstance(response["user"], Mapping):
        raise MalformedResponse("user must be an object")
    return Result(
        signed_data=_base64("signedData", response.get("signedData")),
        signature=_base64("signature", response.get("signature")),
        algorithm="ES256",
        chain=tuple(chain),
        claimed_kind=claimed,
    )


def _base64(name: str, value: object) -> bytes:
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise MalformedResponse(f"{name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponse(f"{name} is not base64") from None


def certificate_kind(
    leaf: x509.Certificate, table: Mapping[str, str] = policies.KIND_POLICIES
) -> str | None:
    """The kind of BankID ``leaf`` is for, by its certificate policies (``table``: OID →
    kind), or None. Raises: MalformedResponse (policies of two kinds, or unreadable)."""
    try:
        found = leaf.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        raise MalformedResponse("the certificate's policies cannot be read") from None
    try:
        return policies.kind_of((p.policy_identifier.dotted_string for p in found), table)
    except policies.ConflictingPolicies:
        raise MalformedResponse("the certificate names policies of two kinds") from None


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
    kind_policies: Mapping[str, str] = policies.KIND_POLICIES,
) -> Verified:
    """Who logged in; with ``revocation``, the issuer's OCSP responder is asked too (a
    blocking call of up to its timeout). The order came through the localhost bridge
    from the page at ``expected_origin`` (a relay's results are XML signatures:
    ``verify_xml_signature``). ``kind_policies`` (OID → kind;
    eidcore.policies.verifier_table) for issuers with policies of their own.

    Raises: a VerificationError subclass saying why not."""
    return _verify(
        response,
        "auth",
        expected_origin,
        nonce,
        trust_anchors,
        now,
        max_skew,
        user_visible_data,
        None,
        revocation,
        kind_policies,
    )


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
    kind_policies: Mapping[str, str] = policies.KIND_POLICIES,
) -> Verified:
    """Who signed ``user_visible_data`` (and ``user_non_visible_data``); with
    ``revocation``, checked against the issuer's OCSP responder; ``kind_policies`` as
    for ``verify_auth``.

    Raises: a VerificationError subclass saying why not.
    """
    return _verify(
        response,
        "sign",
        expected_origin,
        nonce,
        trust_anchors,
        now,
        max_skew,
        user_visible_data,
        user_non_visible_data,
        revocation,
        kind_policies,
    )


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
    kind_policies: Mapping[str, str],
) -> Verified:
    result = read_result(response)
    signed_bytes, signature, chain = result.signed_data, result.signature, result.chain
    try:
        signed = signeddata.parse(signed_bytes)
    except signeddata.MalformedSignedData as exc:
        raise MalformedResponse(str(exc)) from None
    if signed.type != order_type:
        raise WrongOrderType(f"signed for {signed.type!r}, expected {order_type!r}")
    if signed.door is not Door.BRIDGE:  # a relay's results are XML signatures (ADR 0021)
        raise WrongDoor("signed for an order through a relay: verify_xml_signature reads those")
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
    _check_signed(leaf, signature, signed_bytes, chain[1:], anchors, now, order_type)
    kind = certificate_kind(leaf, kind_policies)
    if result.claimed_kind is not None and kind is not None and result.claimed_kind != kind:
        raise WrongTokenKind(f"claimed {result.claimed_kind}, the certificate is for {kind}")
    if revocation is not None:
        _check_revocation(leaf, chain[1:], anchors, revocation, now)
    return Verified(
        person=_person(leaf),
        type=order_type,
        origin=signed.origin,
        signed_at=signed.time,
        order_ref=signed.order_ref,
        token_kind=kind,
        certificate=leaf,
        result=result,
    )


def _check_data(signed_digest: str | None, expected: bytes | None) -> None:
    if expected is None:
        if signed_digest is not None:
            raise DataMismatch("data was signed that this site did not send")
        return
    if signed_digest is None:
        raise DataMismatch("the data this site sent was not signed")
    if not hmac.compare_digest(signed_digest, signeddata.digest(expected)):
        raise DataMismatch("the signed data differs from what this site sent")


class _Chains:
    """Chains that verified, by the DER of the presented certificates and the anchors,
    with the time window in which every certificate of the path was valid: inside it the
    same chain against the same anchors verifies again, so it is not built again (a
    relay meets the same people's chains all day; building one is ~0.3 ms). Only
    successes are kept; the most recent ``size``."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._windows: OrderedDict[bytes, tuple[dt.datetime, dt.datetime]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(anchors: Sequence[x509.Certificate], presented: Sequence[x509.Certificate]) -> bytes:
        digest = hashlib.sha256(len(anchors).to_bytes(4, "big"))
        for certificate in (*anchors, *presented):
            der = certificate.public_bytes(serialization.Encoding.DER)
            digest.update(len(der).to_bytes(4, "big") + der)
        return digest.digest()

    def verified(self, key: bytes, now: dt.datetime) -> bool:
        with self._lock:
            window = self._windows.get(key)
            if window is None or not window[0] <= now <= window[1]:
                return False
            self._windows.move_to_end(key)
            return True

    def keep(self, key: bytes, path: Sequence[x509.Certificate]) -> None:
        start = max(c.not_valid_before_utc for c in path)
        end = min(c.not_valid_after_utc for c in path)
        with self._lock:
            self._windows[key] = (start, end)
            self._windows.move_to_end(key)
            while len(self._windows) > self._size:
                self._windows.popitem(last=False)


_CHAINS = _Chains()


def _check_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
) -> None:
    if not anchors:
        raise UntrustedChain("no trust anchors configured")
    key = _Chains.key(anchors, [leaf, *intermediates])  # known against these anchors only
    if _CHAINS.verified(key, now):
        return
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
        verified = verifier.verify(leaf, list(intermediates))
    except verification.VerificationError:
        raise UntrustedChain("certificate does not chain to a trust anchor") from None
    _CHAINS.keep(key, verified.chain)


def _check_revocation(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    revocation: OcspPolicy,
    now: dt.datetime,
) -> None:
    """The issuer's OCSP responder on ``leaf``. Raises: UntrustedChain,
    CertificateRevoked, RevocationUnknown."""
    check_revocation(leaf, _issuer(leaf, intermediates, anchors), revocation, now)


def _issuer(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
) -> x509.Certificate:
    """``leaf``'s issuer, found among the chain and the anchors (for OCSP). Raises:
    UntrustedChain."""
    issuer = next((c for c in (*intermediates, *anchors) if _issued(leaf, c)), None)
    if issuer is None:
        raise UntrustedChain("the issuer's certificate is not at hand for OCSP")
    return issuer


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


def verify_possession(
    chain: Sequence[bytes],
    signature: bytes,
    data: bytes,
    *,
    trust_anchors: Sequence[x509.Certificate],
    now: dt.datetime,
) -> Person:
    """Who holds the identification key of ``chain[0]`` (DER, leaf first): its ES256
    signature (r‖s) over ``data`` — or, for an RSA key (a security key's or PIV card's),
    RSA PKCS#1 v1.5 with SHA-256 — the chain to ``trust_anchors`` at ``now`` and the
    identification key usage. What an order relay asks of an agent before it shows the
    phone orders waiting for a person (``eidcore.phoneproof``).

    Raises: a VerificationError subclass saying why not."""
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError:
        raise MalformedResponse("a certificate does not parse") from None
    if not 0 < len(certificates) <= 4:
        raise MalformedResponse("a chain is 1 to 4 certificates")
    leaf = certificates[0]
    _check_signed(leaf, signature, data, certificates[1:], trust_anchors, now, "auth", rsa_ok=True)
    return _person(leaf)


def _check_signed(
    leaf: x509.Certificate,
    signature: bytes,
    data: bytes,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    order_type: str,
    *,
    rsa_ok: bool = False,
) -> None:
    """``signature`` (ES256, r‖s; with ``rsa_ok`` also RSA PKCS#1 v1.5 with SHA-256 by an
    RSA key of xmlsig.MIN_RSA_BITS or more) over ``data`` by ``leaf``'s key, ``leaf``
    valid at ``now``, chained to ``anchors``, with the key usage ``order_type`` needs.
    Raises: BadSignature, CertificateExpired, UntrustedChain, WrongKeyUsage."""
    public = leaf.public_key()
    try:
        if rsa_ok and isinstance(public, rsa.RSAPublicKey):
            if public.key_size < xmlsig.MIN_RSA_BITS:
                raise BadSignature("an RSA key too short")
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey) and len(signature) == 64:
            r, s = signature[:32], signature[32:]
            der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            public.verify(der, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise BadSignature("not an ES256 signature")
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise CertificateExpired("certificate not valid now")
    _check_chain(leaf, intermediates, anchors, now)
    _check_usage(leaf, order_type)
