"""What ordering from the issuer can end in, each naming its message; apart from
``agent.enrol.client`` so that knowing these errors does not import the HTTP client
(aiohttp costs ~190 ms, and every command that tells a failure knows them)."""

from __future__ import annotations

from agent.notices import Notice, NoticeError
from eidcore.messages import MessageCode

__all__ = [
    "AlreadyEnrolled",
    "EnrolmentError",
    "EnrolmentRefused",
    "IssuerCertificateUntrusted",
    "IssuerUnreachable",
]


class EnrolmentError(NoticeError):
    """Ordering, or revoking, a BankID on file did not happen; nothing was stored."""

    def notice(self) -> Notice:
        return Notice(MessageCode.ORDER_FAILED)


class IssuerUnreachable(EnrolmentError):
    """No answer from the issuer (network, proxy, TLS)."""

    def __init__(self, detail: str, proxy: str | None) -> None:
        super().__init__(detail)
        self.proxy = proxy

    def notice(self) -> Notice:
        return Notice(MessageCode.COMMUNICATION_ERROR)


class IssuerCertificateUntrusted(IssuerUnreachable):
    """The issuer answered with a TLS certificate this computer does not trust (a wrong
    address, a development issuer without its certificate configured, or interception)."""

    def notice(self) -> Notice:
        return Notice(MessageCode.ISSUER_NOT_TRUSTED)


class EnrolmentRefused(EnrolmentError):
    """The issuer said no; ``answer`` is its error code (wrongCodeOrNumber, codeBlocked,
    orderExpired, orderCancelled, orderFailed, orderUsed, badRequest, ...)."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer

    def notice(self) -> Notice:
        return Notice(_ANSWERS.get(self.answer, MessageCode.ORDER_FAILED))


class AlreadyEnrolled(EnrolmentRefused):
    """The code was used, and this computer already has a BankID for that personal
    number: the earlier order succeeded. ``label`` names it for the person."""

    def __init__(self, label: str) -> None:
        super().__init__("orderUsed")
        self.label = label

    def notice(self) -> Notice:
        return Notice(MessageCode.ALREADY_ENROLLED, {"credential": self.label})


# The issuer's error codes, as the person reads them.
_ANSWERS = {
    "wrongCodeOrNumber": MessageCode.WRONG_CODE,
    "codeBlocked": MessageCode.ACTIVATION_CODE_BLOCKED,
    "orderExpired": MessageCode.ORDER_TOOK_TOO_LONG,
    "orderCancelled": MessageCode.ORDER_CANCELLED,
    "orderFailed": MessageCode.ORDER_FAILED,
    "orderUsed": MessageCode.ACTIVATION_CODE_USED,  # the keys are gone: a new order
    "rateLimited": MessageCode.COMMUNICATION_ERROR,
    "unavailable": MessageCode.COMMUNICATION_ERROR,
}
