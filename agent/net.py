"""Outbound HTTP, one seam: which proxy a URL goes through, how a proxy may be shown, the
TLS context for a server, and a body read no further than a bound. Enrolment (the
issuer), the relay door (order relays) and the doctor use it; the address rules for the
relays a link may name are the link's (``agent.autostart.link``), applied where the
relay client resolves. The updater's fetcher stays tufup's own (requests): ADR 0018.

aiohttp is the one client stack here; nothing in this module keeps state.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import aiohttp

__all__ = [
    "BodyTooLarge",
    "proxy_for",
    "read_bounded",
    "shown_proxy",
    "split_proxy_credentials",
    "tls_for",
]


class BodyTooLarge(Exception):
    """A server sent more than the caller will read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


def proxy_for(url: str, configured: str | None, environ: Mapping[str, str]) -> str | None:
    """The proxy for ``url``: the configured one ("none" for none), else the environment's.
    Pure."""
    if configured:
        return None if configured == "none" else configured
    scheme = urllib.parse.urlsplit(url).scheme
    env = {k.lower(): v for k, v in environ.items()}
    proxy = env.get(f"{scheme}_proxy") or env.get("all_proxy")
    if not proxy:
        return None
    host = urllib.parse.urlsplit(url).hostname or ""
    for entry in (e.strip() for e in env.get("no_proxy", "").split(",")):
        if entry == "*" or (
            entry and (host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")))
        ):
            return None
    return proxy


def shown_proxy(proxy: str | None) -> str:
    """A proxy as logs and reports may show it: scheme://host:port, never the password."""
    if not proxy:
        return "no proxy"
    parts = urllib.parse.urlsplit(proxy)
    return f"proxy {parts.scheme}://{parts.hostname}:{parts.port or ''}".rstrip(":")


def split_proxy_credentials(proxy: str | None) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """aiohttp wants the proxy's user and password apart from its URL."""
    if proxy is None:
        return None, None
    parts = urllib.parse.urlsplit(proxy)
    if not parts.username:
        return proxy, None
    auth = aiohttp.BasicAuth(
        urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
    )
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl(), auth


def tls_for(url: str, ca_file: str | Path | None, *, pinned: bool) -> ssl.SSLContext | bool:
    """What aiohttp's ``ssl=`` gets for ``url``: False for plain http; the system's trust
    (True) without ``ca_file``; with it, only that certificate (``pinned``: a development
    issuer) or the system's trust and that certificate too (a development relay)."""
    if not url.startswith("https://"):
        return False
    if ca_file is None:
        return True
    if pinned:
        return ssl.create_default_context(cafile=str(ca_file))
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(ca_file))
    return context


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, up to ``limit`` bytes (a server that trickles meets the session's
    total timeout). Raises: BodyTooLarge."""
    if (response.content_length or 0) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)
