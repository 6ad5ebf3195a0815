"""Revocation checking with OCSP (RFC 6960), for ``verify_auth``/``verify_sign``.

The responder is the one the certificate names (Authority Information Access) unless the
relying party sets one; its answer must be signed by the certificate's issuer itself, name
the certificate asked about, echo our nonce when it carries one, and be fresh within the
allowed clock skew. Revoked is always a refusal; "could not find out" is one too when
``fail_closed`` (the default) — a relying party that prefers availability sets it False
and gets a warning in its log instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from rp.connections import KeptConnections
from rp.errors import CertificateRevoked, RevocationUnknown

__all__ = [
    "OcspPolicy",
    "check_response",
    "check_revocation",
    "fetch_response",
    "http_fetch",
]

log = logging.getLogger(__name__)

MAX_RESPONSE = 64 * 1024


Fetch = Callable[[str, bytes, float], bytes]


def http_fetch(ca_file: str | None = None) -> Fetch:
    """POSTs an OCSP request over http(s), on a kept-alive connection per thread and
    responder (a relay asks for every result); with ``ca_file``, https trusts only that
    certificate (a development responder)."""
    kept = KeptConnections(ssl.create_default_context(cafile=ca_file) if ca_file else None)

    def fetch(url: str, request: bytes, timeout: float) -> bytes:
        if not url.startswith(("http://", "https://")):
            raise RevocationUnknown("the OCSP URL is not http(s)")
        headers = {"Content-Type": "application/ocsp-request"}
        status, raw = kept.post(url, request, headers, timeout=timeout, limit=MAX_RESPONSE)
        if status != 200:
            raise RevocationUnknown(f"the OCSP responder answered HTTP {status}")
        return raw

    return fetch


@dataclass(frozen=True)
class OcspPolicy:
    timeout: float = 5.0  # seconds for the whole exchange
    max_skew: dt.timedelta = dt.timedelta(minutes=5)
    fail_closed: bool = True
    url: str | None = None  # instead of the certificate's own responder
    fetch: Fetch = field(default_factory=http_fetch, repr=False)
    random_bytes: Callable[[int], bytes] = field(default=os.urandom, repr=False)


def _responder(leaf: x509.Certificate) -> str | None:
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return None
    for desc in aia.value:
        if desc.access_method == AuthorityInformationAccessOID.OCSP:
            return str(desc.access_location.value)
    return None


def check_revocation(
    leaf: x509.Certificate, issuer: x509.Certificate, policy: OcspPolicy, now: dt.datetime
) -> None:
    """Raises: CertificateRevoked; RevocationUnknown (only when ``fail_closed``)."""
    try:
        _check(leaf, issuer, policy, now)
    except RevocationUnknown as exc:
        if policy.fail_closed:
            raise
        log.warning("revocation not checked (%s); accepted because fail_closed is off", exc)


def _check(
    leaf: x509.Certificate, issuer: x509.Certificate, policy: OcspPolicy, now: dt.datetime
) -> None:
    fetch_response(leaf, issuer, policy, now, policy.random_bytes(16), echoed=False)


def fetch_response(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    policy: OcspPolicy,
    now: dt.datetime,
    nonce: bytes,
    *,
    echoed: bool = True,
) -> bytes:
    """The responder's DER answer on ``leaf`` to a request carrying ``nonce``, checked
    (``check_response``): kept as evidence that the certificate was good at that moment.
    ``echoed``: the answer must carry the nonce (else a pre-produced answer without one
    is taken). Raises: CertificateRevoked, RevocationUnknown."""
    url = policy.url or _responder(leaf)
    if url is None:
        raise RevocationUnknown("the certificate names no OCSP responder")
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA256())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    try:
        raw = policy.fetch(url, request.public_bytes(serialization.Encoding.DER), policy.timeout)
    except (OSError, TimeoutError) as exc:
        raise RevocationUnknown(f"OCSP responder unreachable: {type(exc).__name__}") from None
    check_response(raw, leaf, issuer, nonce, now, policy.max_skew, echoed=echoed)
    return raw


def check_response(
    raw: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    nonce: bytes,
    now: dt.datetime,
    max_skew: dt.timedelta,
    *,
    echoed: bool = True,
) -> None:
    """``raw`` is a successful OCSP answer signed by ``issuer`` itself, about ``leaf``,
    fresh at ``now``, carrying ``nonce`` (or none, unless ``echoed``), saying good.

    Raises: CertificateRevoked, RevocationUnknown."""
    try:
        response = ocsp.load_der_ocsp_response(raw)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RevocationUnknown(f"OCSP answered {response.response_status.name}")
        _verify_signature(response, issuer)
        name_hash, key_hash = _issuer_hashes(leaf, issuer, response.hash_algorithm)
        if (
            response.serial_number != leaf.serial_number
            or response.issuer_key_hash != key_hash
            or response.issuer_name_hash != name_hash
        ):
            raise RevocationUnknown("the OCSP answer is about another certificate")
        said = [e.value.nonce for e in response.extensions if isinstance(e.value, x509.OCSPNonce)]
        if (said or echoed) and said != [nonce]:
            raise RevocationUnknown("the OCSP answer carries another nonce (a replay?)")
        this_update = response.this_update_utc
        next_update = response.next_update_utc
        status = response.certificate_status
        revoked_at = response.revocation_time_utc
        reason = response.revocation_reason
    except RevocationUnknown:
        raise
    except Exception as exc:  # every way a response can be malformed is the same answer
        raise RevocationUnknown(f"unreadable OCSP answer: {type(exc).__name__}") from None
    if this_update > now + max_skew:
        raise RevocationUnknown("the OCSP answer is from the future")
    if next_update is not None and next_update < now - max_skew:
        raise RevocationUnknown("the OCSP answer is stale")
    if status is ocsp.OCSPCertStatus.REVOKED:
        raise CertificateRevoked(
            f"revoked {revoked_at:%Y-%m-%d %H:%M} UTC" + (f" ({reason.value})" if reason else "")
        )
    if status is not ocsp.OCSPCertStatus.GOOD:
        raise RevocationUnknown("the responder does not know the certificate")


def _issuer_hashes(
    leaf: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    """The issuer's name and key hashes as an answer on ``leaf`` names them: those of a
    request for it (cryptography computes them, RFC 6960 4.1.1)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash


def _verify_signature(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    """Only the issuer itself may answer (no delegated responders)."""
    key = issuer.public_key()
    algorithm = response.signature_hash_algorithm
    if not isinstance(key, ec.EllipticCurvePublicKey) or algorithm is None:
        raise RevocationUnknown("the OCSP answer is not signed the way this kit checks")
    try:
        key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise RevocationUnknown("the OCSP answer is not signed by the issuer") from None
