"""Verify a BankID-shaped XML signature (eidcore/xmlsig.py) on the website's server: the
document's shape and digests, the signature with the leaf's key, the chain to the site's
own trust anchors, the key usage the order type needs and the kind of BankID its policy
names — then what was signed against what the site expects: the order type, the relay's
origin, the party, the relay's nonce, the order's reference and the texts.

This is how the relay and the sites will read ``completionData.signature`` once the agent
signs XML for relay orders (issue #29); the signature carries no time of its own (BankID's
does not either): the certificate is checked at ``now``, and the OCSP response the relay
adds says when it was good.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from eidcore import policies, xmlsig
from rp.errors import (
    BadSignature,
    CertificateExpired,
    DataMismatch,
    MalformedResponse,
    UnknownNonce,
    WrongOrderType,
    WrongOrigin,
    WrongParty,
)
from rp.revocation import OcspPolicy, check_response, fetch_response
from rp.verify import (
    Person,
    _check_chain,
    _check_revocation,
    _check_usage,
    _issuer,
    _person,
    certificate_kind,
)

__all__ = ["VerifiedXml", "fetch_ocsp_evidence", "ocsp_nonce", "verify_xml_signature"]

_FUNC = {"auth": xmlsig.FuncId.IDENTIFICATION, "sign": xmlsig.FuncId.SIGNING}


@dataclass(frozen=True)
class VerifiedXml:
    person: Person
    type: str
    origin: str
    party: str
    order_ref: str
    token_kind: str | None
    certificate: x509.Certificate
    content: xmlsig.SignedContent
    chain: tuple[x509.Certificate, ...]  # as the document holds it, leaf first
    document: bytes  # the XML as verified


def _parsed(signature: str) -> tuple[bytes, xmlsig.ParsedSignature]:
    """Raises: MalformedResponse."""
    try:
        document = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise MalformedResponse("signature is not base64") from None
    try:
        return document, xmlsig.parse(document)
    except xmlsig.XmlRefused as exc:
        raise MalformedResponse(f"signature: {exc.reason}") from None


def ocsp_nonce(document: bytes) -> bytes:
    """The nonce of the OCSP request the relay makes for a result: SHA-256 of the XML
    signature document, so the answer it keeps is bound to this one signature."""
    return hashlib.sha256(document).digest()


def verify_xml_signature(
    signature: str | xmlsig.Built,
    *,
    order_type: str,
    expected_origin: str,
    party: str,
    order_ref: str,
    trust_anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    nonce: bytes | None = None,
    user_visible_data: str | None = None,
    user_non_visible_data: bytes | None = None,
    revocation: OcspPolicy | None = None,
    kind_policies: Mapping[str, str] = policies.KIND_POLICIES,
    ocsp_response: str | None = None,
    max_skew: dt.timedelta = dt.timedelta(minutes=5),
) -> VerifiedXml:
    """``signature``: ``completionData.signature`` (base64 of the XML), or a document the
    caller built itself (``xmlsig.build``: the relay, from an agent's signature value),
    which is checked the same way but not parsed again. ``nonce``: the
    one the relay drew for the order (the relay checks it; a site, which never sees it,
    relies on ``order_ref`` — its own order — instead). ``ocsp_response``:
    ``completionData.ocspResponse`` (base64 DER), checked as the issuer's word that the
    certificate was good, fresh within ``max_skew`` of ``now``, and bound to this
    signature by its nonce (``ocsp_nonce``); ``revocation``: ask the responder yourself.

    Raises: a VerificationError subclass saying why not."""
    if order_type not in _FUNC:
        raise ValueError("order_type is auth or sign")
    if isinstance(signature, xmlsig.Built):
        document, parsed = signature.document, signature.parsed
    else:
        document, parsed = _parsed(signature)
    try:
        xmlsig.verify_signature(parsed)
    except xmlsig.XmlRefused as exc:
        raise BadSignature(exc.reason) from None
    signed = parsed.content
    if signed.func is not _FUNC[order_type]:
        raise WrongOrderType(f"signed as {signed.func}, expected {order_type!r}")
    if signed.origin != expected_origin.rstrip("/"):
        raise WrongOrigin("signed for another origin")
    if signed.party_id != party:
        raise WrongParty("signed for another requesting party")
    if nonce is not None and not hmac.compare_digest(signed.nonce, nonce):
        raise UnknownNonce("signed for another nonce")
    if signed.order_ref != order_ref:
        raise DataMismatch("signed for another order")
    if signed.visible != user_visible_data:
        raise DataMismatch("the text shown is not the one this site sent")
    if signed.non_visible != user_non_visible_data:
        raise DataMismatch("the data signed is not what this site sent")
    leaf = parsed.chain[0]
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise CertificateExpired("certificate not valid now")
    _check_chain(leaf, parsed.chain[1:], trust_anchors, now)
    _check_usage(leaf, order_type)
    kind = certificate_kind(leaf, kind_policies)
    if revocation is not None:
        _check_revocation(leaf, parsed.chain[1:], trust_anchors, revocation, now)
    if ocsp_response is not None:
        try:
            raw = base64.b64decode(ocsp_response, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise MalformedResponse("ocspResponse is not base64") from None
        issuer = _issuer(leaf, parsed.chain[1:], trust_anchors)
        check_response(raw, leaf, issuer, ocsp_nonce(document), now, max_skew)
    return VerifiedXml(
        person=_person(leaf),
        type=order_type,
        origin=signed.origin,
        party=signed.party_id,
        order_ref=signed.order_ref,
        token_kind=kind,
        certificate=leaf,
        content=signed,
        chain=parsed.chain,
        document=document,
    )


def fetch_ocsp_evidence(
    verified: VerifiedXml,
    trust_anchors: Sequence[x509.Certificate],
    policy: OcspPolicy,
    now: dt.datetime,
) -> bytes:
    """The issuer's OCSP answer (DER) on the verified certificate, asked with the nonce
    bound to this signature and checked: what the relay adds as ``ocspResponse``, and
    what ``verify_xml_signature(ocsp_response=…)`` checks again. Blocking.

    Raises: CertificateRevoked, RevocationUnknown, UntrustedChain."""
    leaf = verified.certificate
    issuer = _issuer(leaf, verified.chain[1:], trust_anchors)
    return fetch_response(leaf, issuer, policy, now, ocsp_nonce(verified.document))
