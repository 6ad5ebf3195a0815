"""The relying-party kit: what a website's server needs to use eid-agent.

Issue a nonce per login or signature (``NonceStore``), hand it to the page, and verify
what the page gets back (``verify_auth`` / ``verify_sign``) against your own trust
anchors. The page side is ``rp/static/eid-agent.js``.
"""

from rp.errors import (
    BadSignature,
    CertificateExpired,
    DataMismatch,
    ExpiredNonce,
    MalformedResponse,
    ReusedNonce,
    TimeSkew,
    UnknownNonce,
    UntrustedChain,
    VerificationError,
    WrongKeyUsage,
    WrongOrderType,
    WrongOrigin,
)
from rp.nonces import NonceStore
from rp.verify import Person, Verified, verify_auth, verify_sign

__all__ = [
    "BadSignature",
    "CertificateExpired",
    "DataMismatch",
    "ExpiredNonce",
    "MalformedResponse",
    "NonceStore",
    "Person",
    "ReusedNonce",
    "TimeSkew",
    "UnknownNonce",
    "UntrustedChain",
    "VerificationError",
    "Verified",
    "WrongKeyUsage",
    "WrongOrderType",
    "WrongOrigin",
    "verify_auth",
    "verify_sign",
]
