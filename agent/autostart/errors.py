"""What can stop an order that came by link, under one base, each naming its message.
Apart from the client so that knowing them loads no aiohttp."""

from __future__ import annotations

from agent.notices import Notice, NoticeError
from eidcore.messages import MessageCode

__all__ = [
    "AutostartError",
    "LinkRefused",
    "RelayAnswerInvalid",
    "RelayNotAllowed",
    "RelayOrderGone",
    "RelayUnreachable",
]


class AutostartError(NoticeError):
    """The order from the link was not carried out; nothing was signed."""


class LinkRefused(AutostartError):
    """The link cannot be used; ``reason`` names the part, never echoes it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def notice(self) -> Notice:
        return Notice(MessageCode.START_LINK_INVALID, {"reason": self.reason})


class RelayNotAllowed(AutostartError):
    """The relay is on loopback, a private or a link-local address and not configured, or
    is ``http`` without the development flag: a page may not aim the agent there."""

    def __init__(self, relay: str, reason: str) -> None:
        super().__init__(f"{relay}: {reason}")
        self.relay, self.reason = relay, reason

    def notice(self) -> Notice:
        return Notice(MessageCode.RELAY_NOT_ALLOWED, {"relay": self.relay})


class RelayUnreachable(AutostartError):
    def __init__(self, relay: str, reason: str) -> None:
        super().__init__(f"{relay}: {reason}")
        self.relay, self.reason = relay, reason

    def notice(self) -> Notice:
        return Notice(MessageCode.RELAY_UNREACHABLE, {"relay": self.relay, "reason": self.reason})


class RelayOrderGone(AutostartError):
    """The relay has no order for this token (used, cancelled, late) or for this agent."""

    def notice(self) -> Notice:
        return Notice(MessageCode.RELAY_ORDER_GONE)


class RelayAnswerInvalid(AutostartError):
    def __init__(self, relay: str, detail: str) -> None:
        super().__init__(f"{relay}: {detail}")
        self.relay, self.detail = relay, detail

    def notice(self) -> Notice:
        return Notice(MessageCode.RELAY_ANSWER_INVALID, {"relay": self.relay})
