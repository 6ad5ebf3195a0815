"""What an ``eid-agent://`` link may say, and which relays the agent may be sent to. Pure.

    eid-agent:///?autostarttoken=T&server=https://relay.example&redirect=URL|null

The link comes from any web page, so it is hostile input: one of each parameter, bounded,
ASCII; ``server`` an origin and nothing more. ``redirect`` is never opened: after the order
the agent opens the return URL the relay holds for it (registered for the party), unless
the link says ``redirect=null`` (a page that keeps polling and wants no new tab).

A page must not be able to make the agent send requests into the person's own network
(what the browsers' Local Network Access guards): the relay's addresses must be public,
unless the person's or the organisation's settings name it, host and port (an internal
relay); ``http`` only on loopback with the development flag. The host is a DNS name or a
canonical IP literal and nothing else: ``2130706433``, ``127.1``, ``0177.0.0.1``, ``0``
and ``0x7f.1`` are all 127.0.0.1 or 0.0.0.0 to a browser's URL parser or to
``getaddrinfo``, so a name that ends in a number is refused before anything resolves or
connects. An IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64, compatible) is
checked as the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from agent.autostart.errors import LinkRefused, RelayNotAllowed
from agent.autostart.handoff import MAX_LINK

__all__ = ["MAX_LINK", "Link", "check_relay", "parse_link"]

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


@dataclass(frozen=True)
class Link:
    token: str
    relay: str  # an origin: scheme://host[:port], lower case
    host: str
    port: int
    secure: bool
    go_back: bool = True  # open the relay's return URL afterwards (not for redirect=null)

    @property
    def address(self) -> str:
        """``host:port`` (``[v6]:port``), as the settings' ``[relay] allow`` names it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_link(url: str) -> Link:
    """Raises: LinkRefused."""
    if not isinstance(url, str) or len(url) > MAX_LINK or not url.isascii():
        raise LinkRefused("too long, or not ASCII")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # a bracket that is no IPv6 address
        raise LinkRefused("not an eid-agent:/// link") from None
    if parts.scheme != "eid-agent" or parts.netloc or parts.path not in ("", "/") or parts.fragment:
        raise LinkRefused("not an eid-agent:/// link")
    try:
        pairs = urllib.parse.parse_qsl(
            parts.query, keep_blank_values=True, strict_parsing=True, max_num_fields=8
        )
    except ValueError:
        raise LinkRefused("its query cannot be read") from None
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)) or not set(names) <= {"autostarttoken", "server", "redirect"}:
        raise LinkRefused("unknown or repeated parameters")
    values = dict(pairs)
    token = values.get("autostarttoken", "")
    if not _TOKEN.match(token):
        raise LinkRefused("autostarttoken")
    link = _with_relay(token, values.get("server", ""))
    return replace(link, go_back=values.get("redirect") != "null")


def relay_link(server: str) -> Link:
    """A relay named in the settings or on the command line, as a link would name it, for
    calls that need no autostart token (phone orders). Raises: LinkRefused."""
    return _with_relay("", server)


def _with_relay(token: str, server: str) -> Link:
    try:
        relay = urllib.parse.urlsplit(server)
        port = relay.port
    except ValueError:
        raise LinkRefused("server's host or port") from None
    if (
        relay.scheme not in ("https", "http")
        or relay.path not in ("", "/")
        or relay.query
        or relay.fragment
        or relay.username is not None
        or relay.password is not None
        or not relay.hostname
    ):
        raise LinkRefused("server must be an origin: https://host[:port]")
    host = relay.hostname.rstrip(".")
    if not _is_canonical_ip(host) and (not _HOST.match(host) or _ends_in_a_number(host)):
        raise LinkRefused("server's host: a DNS name or a canonical IP address")
    secure = relay.scheme == "https"
    port = port or (443 if secure else 80)
    shown = f"[{host}]" if ":" in host else host
    default = (secure and port == 443) or (not secure and port == 80)
    origin = f"{relay.scheme}://{shown}" + ("" if default else f":{port}")
    return Link(token, origin, host, port, secure)


def _is_canonical_ip(host: str) -> bool:
    """An IP literal written as its own canonical form: dotted-quad IPv4 without leading
    zeros, or IPv6 as Python compresses it (lower case, no zone)."""
    if "%" in host:  # a zone names an interface of this computer: never a relay's
        return False
    try:
        return str(ipaddress.ip_address(host)) == host
    except ValueError:
        return False


def _ends_in_a_number(host: str) -> bool:
    """The WHATWG URL standard's "ends in a number": such a host is an IPv4 address to a
    browser (``127.1``, ``0x7f.1``, ``2130706433``), never a name."""
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or (last[:2] in ("0x", "0X") and all(c in _HEX for c in last[2:]))


_HEX = frozenset("0123456789abcdefABCDEF")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use, never global
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291's deprecated IPv4-compatible form


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _as_checked(address: Address) -> tuple[Address, bool]:
    """The address to check, and whether it is public: an IPv6 address that carries an
    IPv4 one is the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return address, False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or address in _COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    return address, address.is_global and not address.is_multicast


def check_relay(
    link: Link, addresses: Iterable[str], *, internal: Collection[str], allow_http: bool
) -> None:
    """Whether the agent may ask this relay, given the addresses its host resolved to.
    ``internal``: the ``host:port`` of relays the settings allow on private addresses
    (``Link.address``). Raises: RelayNotAllowed."""
    resolved = [_as_checked(ipaddress.ip_address(a.split("%", 1)[0])) for a in addresses]
    if not resolved:
        raise RelayNotAllowed(link.relay, "its name resolves to no address")
    loopback = all(a.is_loopback for a, _ in resolved)
    if not link.secure and not (allow_http and loopback):
        raise RelayNotAllowed(link.relay, "http, which only a development agent uses on loopback")
    if link.address in internal or (not link.secure and loopback):
        return
    if not all(public for _, public in resolved):
        raise RelayNotAllowed(link.relay, "an address in this computer's own network")
