"""Which URLs a person's browser may be sent back to after a relay order. Pure; one rule
for the relay (what a party registers and asks for), the agent (what it opens) and the rp
kit (what it hands out).

``https`` with a host, ASCII, no blanks, no user name, no fragment, at most ``MAX``
characters. ``http`` only on a loopback host (``localhost``, ``127.0.0.1``, ``[::1]``): a
development site on the developer's own computer (``./dev demo``), which the agent opens
only with its development flag.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

__all__ = ["MAX", "ReturnUrlRefused", "check", "is_loopback_http"]

MAX = 1024


class ReturnUrlRefused(ValueError):
    """Not a URL a browser may be sent back to; the message says which rule."""


def check(url: object) -> str:
    """``url`` when it may be a return URL. Raises: ReturnUrlRefused."""
    if not isinstance(url, str) or not 0 < len(url) <= MAX:
        raise ReturnUrlRefused(f"at most {MAX} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise ReturnUrlRefused("ASCII without blanks or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is no number
    except ValueError:  # a bracket that is no IPv6 address
        raise ReturnUrlRefused("an https URL") from None
    if parts.fragment or "#" in url or parts.username is not None or not parts.hostname:
        raise ReturnUrlRefused("an https URL with a host, without a user name or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname)):
        return url
    raise ReturnUrlRefused("an https URL (http only on this computer's loopback address)")


def is_loopback_http(url: str) -> bool:
    """A development return URL (``check`` has passed it)."""
    return urllib.parse.urlsplit(url).scheme == "http"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
