"""The OCSP responder (RFC 6960) for every certificate the issuing CA signed.

Pure over a status lookup: parse the request, check it asks about our issuing CA, look the
serial up, and sign the answer with the issuing CA's key (the CA answers for itself, so
relying parties need no separate responder certificate). A request that cannot be parsed
gets ``malformedRequest``; one about another issuer gets ``unauthorized``.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from issuer.ca import CertificateAuthority

__all__ = ["NEXT_UPDATE", "REASONS", "ResponseCache", "answer", "respond"]

NEXT_UPDATE = dt.timedelta(hours=1)  # how long a relying party may cache a "good"
REASONS = {
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "holderRequest": x509.ReasonFlags.unspecified,
    "unspecified": x509.ReasonFlags.unspecified,
}

Status = tuple[str, dt.datetime | None, str | None]


_HASHES: dict[tuple[bytes, str], tuple[bytes, bytes]] = {}  # per issuing CA and algorithm


def _hashes(ca: CertificateAuthority, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    issuer = ca.issuing_certificate
    key = (issuer.signature, algorithm.name)  # the signature names the certificate
    cached = _HASHES.get(key)
    if cached is None:
        cached = _HASHES[key] = _issuer_hashes(issuer, algorithm)
    return cached


def _issuer_hashes(
    issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    key_bits = issuer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key = hashes.Hash(algorithm)
    key.update(key_bits)
    return name.finalize(), key.finalize()


def respond(
    request_der: bytes, lookup: Callable[[int], Status], ca: CertificateAuthority, now: dt.datetime
) -> bytes:
    """A DER OCSP response for a DER request."""
    return answer(request_der, lookup, ca, now)[0]


def answer(
    request_der: bytes, lookup: Callable[[int], Status], ca: CertificateAuthority, now: dt.datetime
) -> tuple[bytes, bool]:
    """The response, and whether it may be given again to the same request for a while
    (a signed answer to a request without a nonce)."""
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm
        serial = request.serial_number
        if not 0 < serial < 1 << 159:  # RFC 5280 4.1.2.2: positive, at most 20 octets
            raise ValueError("not a certificate serial number")
        nonces = [e.value for e in request.extensions if isinstance(e.value, x509.OCSPNonce)]
    except Exception:  # any way a request fails to parse gets the same answer
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST), False
    if (request.issuer_name_hash, request.issuer_key_hash) != _hashes(ca, algorithm):
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED), False
    state, revoked_at, reason = lookup(serial)
    cert_status = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }[state]
    this_update = now.replace(microsecond=0)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=serial,
            algorithm=algorithm,
            cert_status=cert_status,
            this_update=this_update,
            next_update=this_update + NEXT_UPDATE,
            revocation_time=revoked_at.replace(microsecond=0) if revoked_at else None,
            revocation_reason=REASONS.get(reason or "", x509.ReasonFlags.unspecified)
            if cert_status is ocsp.OCSPCertStatus.REVOKED
            else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.issuing_certificate)
    )
    for nonce in nonces:  # echoed, so a replayed answer does not fit
        builder = builder.add_extension(nonce, critical=False)
    response = builder.sign(ca.issuing_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER), not nonces


class ResponseCache:
    """Signed answers to nonce-less requests, kept ``ttl`` seconds (RFC 5019's pre-produced
    responses; the HTTP answer already allows caching for 60 s). Requests with a nonce,
    as the rp kit sends, are always answered afresh. A revocation made through this
    process clears it at once; one made by another process shows within ``ttl``."""

    def __init__(self, ttl: float = 10.0, size: int = 10_000) -> None:
        self._ttl, self._size = ttl, size
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()

    def get(self, request_der: bytes, now: float) -> bytes | None:
        entry = self._entries.get(request_der)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, request_der: bytes, response: bytes, now: float) -> None:
        self._entries[request_der] = (now + self._ttl, response)
        self._entries.move_to_end(request_der)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
