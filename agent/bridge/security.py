"""Who may talk to the bridge. Pure rules; the app's middleware applies them in order:
Host (DNS rebinding) → peer user → Origin → content type and custom header → size → rate.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.bridge import limits
from agent.bridge.errors import BridgeError, ErrorCode

DEFAULT_PORT = 24721  # fixed, below 32768 (outside Linux's ephemeral range), documented
HOSTS = ("127.0.0.1", "::1")  # loopback only, never 0.0.0.0 (BRIDGE-SECURITY 1)
CUSTOM_HEADER = "X-Eid-Agent"
ALLOWED_METHODS = "GET, POST"
ALLOWED_HEADERS = f"Content-Type, {CUSTOM_HEADER}"
PREFLIGHT_MAX_AGE = (
    "7200"  # Chromium caps it here; the origin is re-checked on every request anyway
)

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]"}


def host_allowed(host: str | None, port: int) -> bool:
    """Only the loopback names with our port (BRIDGE-SECURITY 2). A DNS-rebinding page
    reaches us under its own name (evil.example:PORT), which this refuses."""
    if not host:
        return False
    name, sep, port_text = host.rpartition(":")
    return bool(sep) and port_text == str(port) and name.lower() in _LOOPBACK_NAMES


@dataclass(frozen=True)
class OriginPolicy:
    """Which web origins may start orders (BRIDGE-SECURITY 3).

    ``allow`` (enterprise setting) narrows to listed origins or domains; ``block``
    refuses listed origins or domains (a domain entry covers its subdomains).
    ``allow_http_localhost`` admits http://localhost and loopback origins, for
    development only.
    """

    allow_http_localhost: bool = False
    allow: frozenset[str] = field(default_factory=frozenset)
    block: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls,
        *,
        allow_http_localhost: bool = False,
        allow: Iterable[str] = (),
        block: Iterable[str] = (),
    ) -> OriginPolicy:
        return cls(
            allow_http_localhost,
            frozenset(a.lower().rstrip("/") for a in allow),
            frozenset(b.lower().rstrip("/") for b in block),
        )

    def with_person_sites(self, allow: Iterable[str], block: Iterable[str]) -> OriginPolicy:
        """This (the command line's) policy with the sites a person set in Settings: their
        blocked sites are added; their allowed sites apply unless this policy has its own
        list (a person cannot widen what the organisation allowed)."""
        return OriginPolicy.of(
            allow_http_localhost=self.allow_http_localhost,
            allow=self.allow or allow,
            block=[*self.block, *block],
        )

    def check(self, origin: str | None) -> str:
        """The origin, if it may start orders.

        Raises:
            BridgeError(forbiddenOrigin).
        """
        if origin is None:
            raise _forbidden("no Origin header")
        if len(origin) > limits.MAX_ORIGIN_LENGTH:
            raise _forbidden("Origin too long")
        scheme, host = _split_origin(origin)
        if scheme == "http":
            if not (self.allow_http_localhost and _is_loopback(host)):
                raise _forbidden("Origin must be https")
        elif scheme != "https":
            raise _forbidden("Origin must be https")
        if self._listed(self.block, origin, host):
            raise _forbidden("Origin is blocked")
        if self.allow and not self._listed(self.allow, origin, host):
            raise _forbidden("Origin is not on the allow list")
        return origin

    @staticmethod
    def _listed(entries: frozenset[str], origin: str, host: str) -> bool:
        if origin in entries:
            return True
        labels = host.split(".")
        return any(".".join(labels[i:]) in entries for i in range(len(labels)))


def _forbidden(details: str) -> BridgeError:
    return BridgeError(ErrorCode.FORBIDDEN_ORIGIN, details)


_ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _split_origin(origin: str) -> tuple[str, str]:
    """(scheme, host) of a serialised origin, or forbiddenOrigin.

    Browsers serialise an origin in one form only (HTML's "serialisation of an origin"
    over the URL Standard's host parser): lower-case scheme and host, punycode for
    internationalised names, an IPv4 address in dotted decimal and an IPv6 one compressed
    in brackets, the port only when it is not the scheme's default and without leading
    zeros, no path, no trailing dot. Anything else was not sent by a browser and is
    refused, so that what the dialog shows and what is signed is always that one form.
    """
    match = _ORIGIN.match(origin)
    if match is None:
        raise _forbidden("not a web origin")
    scheme, host, port = match.groups()
    if port is not None and (int(port) > 65535 or port == _DEFAULT_PORTS[scheme]):
        raise _forbidden("not a web origin")
    if host.startswith("["):
        try:
            canonical = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise _forbidden("not a web origin") from None
        if canonical != host[1:-1]:
            raise _forbidden("not a web origin")
        return scheme, host
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        # A browser parses a host ending in a number as IPv4 and prints it dotted:
        # "2130706433" and "127.1" arrive as "127.0.0.1", so only that form is real.
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _forbidden("not a web origin") from None
        if canonical != host:
            raise _forbidden("not a web origin")
        return scheme, host
    if not _HOSTNAME.match(host):
        raise _forbidden("not a web origin")
    return scheme, host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cors_headers(origin: str) -> dict[str, str]:
    """For responses to an acceptable origin: exact echo, never ``*``."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def preflight_headers(origin: str, asks_private_network: bool) -> dict[str, str]:
    headers = cors_headers(origin) | {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    }
    if asks_private_network:
        # Private Network Access preflights (Chrome); Local Network Access, its successor,
        # asks the person instead, and needs nothing from us.
        headers["Access-Control-Allow-Private-Network"] = "true"
    return headers
