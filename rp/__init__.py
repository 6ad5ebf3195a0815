"""The relying-party kit: what a website's server needs to use eid-agent.

Issue a nonce per login or signature (``NonceStore``), hand it to the page, and verify
what the page gets back (``verify_auth`` / ``verify_sign``) against your own trust
anchors, and — with an ``OcspPolicy`` — the issuer's revocation status. The page side is
``rp/static/eid-agent.js``.

Through the order relay instead (the second door): ``RelayApi`` starts and collects orders
at your relay, and ``RelayLogin`` completes a login only when the session's own browser
came back through its return URL (the relay attack: ``rp/relay.py``). A BankID-shaped
XML signature (the relay's v6.0 results, issue #29) is checked by
``verify_xml_signature``.
"""

from rp.errors import (
    BadSignature,
    CertificateExpired,
    CertificateRevoked,
    DataMismatch,
    ExpiredNonce,
    MalformedResponse,
    ReusedNonce,
    RevocationUnknown,
    TimeSkew,
    UnknownNonce,
    UntrustedChain,
    VerificationError,
    WrongDoor,
    WrongKeyUsage,
    WrongOrderType,
    WrongOrigin,
    WrongParty,
    WrongTokenKind,
)
from rp.nonces import NonceStore
from rp.relay import RETURN_PARAMETER, RelayApi, RelayApiError, RelayLogin
from rp.revocation import OcspPolicy, http_fetch
from rp.verify import (
    Person,
    Result,
    Verified,
    certificate_kind,
    read_result,
    verify_auth,
    verify_possession,
    verify_sign,
)
from rp.xmlverify import VerifiedXml, fetch_ocsp_evidence, ocsp_nonce, verify_xml_signature

__all__ = [
    "RETURN_PARAMETER",
    "BadSignature",
    "CertificateExpired",
    "CertificateRevoked",
    "DataMismatch",
    "ExpiredNonce",
    "MalformedResponse",
    "NonceStore",
    "OcspPolicy",
    "Person",
    "RelayApi",
    "RelayApiError",
    "RelayLogin",
    "Result",
    "ReusedNonce",
    "RevocationUnknown",
    "TimeSkew",
    "UnknownNonce",
    "UntrustedChain",
    "VerificationError",
    "Verified",
    "VerifiedXml",
    "WrongDoor",
    "WrongKeyUsage",
    "WrongOrderType",
    "WrongOrigin",
    "WrongParty",
    "WrongTokenKind",
    "certificate_kind",
    "fetch_ocsp_evidence",
    "http_fetch",
    "ocsp_nonce",
    "read_result",
    "verify_auth",
    "verify_possession",
    "verify_sign",
    "verify_xml_signature",
]
