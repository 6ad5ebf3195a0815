"""What ordering from the issuer can end in, apart from ``agent.enrol.client`` so that knowing
these errors (the message table in ``agent.notices`` does) does not import the HTTP
client: every ``eid-agent`` command loads the table, and aiohttp costs ~190 ms."""

from __future__ import annotations

__all__ = [
    "AlreadyEnrolled",
    "EnrolmentError",
    "EnrolmentRefused",
    "IssuerCertificateUntrusted",
    "IssuerUnreachable",
]


class EnrolmentError(Exception):
    """Ordering, or revoking, a BankID on file did not happen; nothing was stored."""


class IssuerUnreachable(EnrolmentError):
    """No answer from the issuer (network, proxy, TLS)."""

    def __init__(self, detail: str, proxy: str | None) -> None:
        super().__init__(detail)
        self.proxy = proxy


class IssuerCertificateUntrusted(IssuerUnreachable):
    """The issuer answered with a TLS certificate this computer does not trust (a wrong
    address, a development issuer without its certificate configured, or interception)."""


class EnrolmentRefused(EnrolmentError):
    """The issuer said no; ``answer`` is its error code (wrongCodeOrNumber, codeBlocked,
    orderExpired, orderCancelled, orderFailed, orderUsed, badRequest, ...)."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


class AlreadyEnrolled(EnrolmentRefused):
    """The code was used, and this computer already has a BankID for that personal
    number: the earlier order succeeded. ``label`` names it for the person."""

    def __init__(self, label: str) -> None:
        super().__init__("orderUsed")
        self.label = label
