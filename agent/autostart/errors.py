"""What can stop an order that came by link, under one base. Apart from the client so that
the message table (``agent.notices``) knows them without loading aiohttp."""

from __future__ import annotations

__all__ = [
    "AutostartError",
    "LinkRefused",
    "RelayAnswerInvalid",
    "RelayNotAllowed",
    "RelayOrderGone",
    "RelayUnreachable",
]


class AutostartError(Exception):
    """The order from the link was not carried out; nothing was signed."""


class LinkRefused(AutostartError):
    """The link cannot be used; ``reason`` names the part, never echoes it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RelayNotAllowed(AutostartError):
    """The relay is on loopback, a private or a link-local address and not configured, or
    is ``http`` without the development flag: a page may not aim the agent there."""

    def __init__(self, relay: str, reason: str) -> None:
        super().__init__(f"{relay}: {reason}")
        self.relay, self.reason = relay, reason


class RelayUnreachable(AutostartError):
    def __init__(self, relay: str, reason: str) -> None:
        super().__init__(f"{relay}: {reason}")
        self.relay, self.reason = relay, reason


class RelayOrderGone(AutostartError):
    """The relay has no order for this token (used, cancelled, late) or for this agent."""


class RelayAnswerInvalid(AutostartError):
    def __init__(self, relay: str, detail: str) -> None:
        super().__init__(f"{relay}: {detail}")
        self.relay, self.detail = relay, detail
