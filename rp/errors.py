"""Why a response was not accepted. One base class; each reason its own type."""

from __future__ import annotations


class VerificationError(Exception):
    """The response does not prove who the person is. ``str()`` is safe to log."""


class MalformedResponse(VerificationError):
    pass


class WrongOrderType(VerificationError):
    pass


class WrongOrigin(VerificationError):
    """Signed for another site: a relayed or phished response."""


class UnknownNonce(VerificationError):
    pass


class ReusedNonce(VerificationError):
    pass


class ExpiredNonce(VerificationError):
    pass


class TimeSkew(VerificationError):
    pass


class BadSignature(VerificationError):
    pass


class UntrustedChain(VerificationError):
    pass


class WrongKeyUsage(VerificationError):
    pass


class CertificateExpired(VerificationError):
    pass


class DataMismatch(VerificationError):
    """The signed hash of userVisibleData / userNonVisibleData is not of what we sent."""


class CertificateRevoked(VerificationError):
    """The issuer's OCSP responder says the certificate is revoked."""


class RevocationUnknown(VerificationError):
    """The certificate's revocation status could not be established (and the relying
    party fails closed)."""


class WrongDoor(VerificationError):
    """Signed for an order that came through the other door (the localhost bridge, or an
    order relay) than the one this site expects."""


class WrongParty(VerificationError):
    """Signed for an order a relay held for another requesting party."""


class WrongTokenKind(VerificationError):
    """The result claims another kind of BankID (file, card, token) than its
    certificate's policy names: the agent's word is not the certificate's."""
