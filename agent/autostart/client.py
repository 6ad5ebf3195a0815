"""The relay's agent API, from the agent (aiohttp over TLS). Everything the relay answers is
checked as hostile input: bounded, strict JSON, the text to show under the same rule as
the bridge's, and the relay's claimed origin must be the one the agent connected to.

The relay's host is resolved once, the addresses checked (``link.check_relay``) and the
connection made to exactly those, so a name that resolves to a public address for the
check and a private one for the connection (DNS rebinding) does not get through.

Through a proxy (the settings' or the environment's, as for the issuer; the log says
which) the proxy connects: the addresses are checked as this computer resolves them
before the first request, which is all an agent behind a proxy can know.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from agent.autostart.channel import OrderChannel
from agent.autostart.errors import (
    RelayAnswerInvalid,
    RelayNotAllowed,
    RelayOrderGone,
    RelayUnreachable,
)
from agent.autostart.link import Link, check_relay
from agent.net import (
    BodyTooLarge,
    proxy_for,
    read_bounded,
    shown_proxy,
    split_proxy_credentials,
    tls_for,
)
from eidcore import returnurl, strictjson, visibletext
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber
from eidcore.signeddata import OrderKind, unb64url

__all__ = ["FetchedOrder", "RelayClient", "WaitingOrder"]

log = logging.getLogger(__name__)

MAX_ANSWER = 512 * 1024
MAX_VISIBLE = 40_000  # characters of base64, as the bridge and the relay accept
TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=10, sock_read=10)
_PARTY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class FetchedOrder:
    ref: str
    secret: str
    kind: OrderKind
    relay: str
    party: str
    party_name: str
    nonce: bytes
    visible: str | None
    visible_format: str
    non_visible: bytes | None
    personal_number: PersonalNumber | None
    token_kinds: tuple[str, ...]
    return_url: str | None = None  # the relay's, registered for the party; never the link's
    call_initiator: str | None = None  # a phone order's: "user" or "RP"
    pin_pad: bool = False  # the site asked for a PIN typed on a reader's pad


@dataclass(frozen=True)
class WaitingOrder:
    """A phone order a relay holds for the person: fetched with ``token`` like a link's."""

    relay: str
    token: str
    kind: OrderKind
    party_name: str
    call_initiator: str
    personal_number: str


def _waiting(value: object, relay: str) -> WaitingOrder:
    """Raises: RelayAnswerInvalid (a relay that lies is refused, as at ``fetch``)."""
    if not isinstance(value, dict):
        raise RelayAnswerInvalid(relay, "an order")
    party, token = value.get("party"), value.get("autoStartToken")
    if not isinstance(party, dict) or not isinstance(party.get("name"), str):
        raise RelayAnswerInvalid(relay, "party")
    try:
        visibletext.check_name(party["name"])
        number = str(PersonalNumber.parse(str(value.get("personalNumber"))))
        kind = OrderKind(str(value.get("type")))
    except (visibletext.TextRefused, InvalidPersonalNumber, ValueError):
        raise RelayAnswerInvalid(relay, "party name, personal number or type") from None
    call = value.get("callInitiator")
    if call not in ("user", "RP"):
        raise RelayAnswerInvalid(relay, "callInitiator")
    if not isinstance(token, str) or not 0 < len(token) <= 128 or not token.isascii():
        raise RelayAnswerInvalid(relay, "autoStartToken")
    return WaitingOrder(relay, token, kind, party["name"], str(call), number)


class _CheckedResolver(AbstractResolver):
    """Resolves the relay's host, checks the addresses, and hands only those to aiohttp."""

    def __init__(self, link: Link, internal: Collection[str], allow_http: bool) -> None:
        self._link, self._internal, self._allow_http = link, internal, allow_http

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise RelayUnreachable(self._link.relay, f"name not found ({exc.strerror})") from None
        addresses = sorted({str(info[4][0]) for info in infos})
        check_relay(self._link, addresses, internal=self._internal, allow_http=self._allow_http)
        return [
            ResolveResult(
                hostname=host,
                host=str(info[4][0]),
                port=port,
                family=info[0],
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for info in infos
        ]

    async def close(self) -> None:
        return None


class RelayClient:
    """One link's relay. ``ca_file``: trust this certificate too (a development relay)."""

    def __init__(
        self,
        link: Link,
        *,
        internal: Collection[str] = (),
        allow_http: bool = False,
        ca_file: Path | None = None,
        proxy: str | None = None,
    ) -> None:
        self._link = link
        self._proxy, self._proxy_auth = split_proxy_credentials(
            proxy_for(link.relay, proxy, os.environ)
        )
        self._tls = tls_for(link.relay, ca_file, pinned=False)
        self._resolver = _CheckedResolver(link, internal, allow_http)
        self._internal, self._allow_http = internal, allow_http
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RelayClient:
        """Raises: RelayNotAllowed (an address literal, which aiohttp never resolves, is
        checked here; a name when it is resolved)."""
        try:
            ipaddress.ip_address(self._link.host)
        except ValueError:
            pass
        else:
            check_relay(
                self._link, [self._link.host], internal=self._internal, allow_http=self._allow_http
            )
        if self._proxy is None:
            connector = aiohttp.TCPConnector(
                resolver=self._resolver, ssl=self._tls, use_dns_cache=False
            )
        else:  # the resolver resolves the proxy's name then: the relay's is checked here
            await self._resolver.resolve(self._link.host, self._link.port)
            connector = aiohttp.TCPConnector(ssl=self._tls, use_dns_cache=False)
        log.info("relay %s via %s", self._link.relay, shown_proxy(self._proxy))
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=TIMEOUT,
            trust_env=False,
            skip_auto_headers=("User-Agent",),  # the relay has no use for it: bytes saved
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    @contextlib.asynccontextmanager
    async def order(self, token: str) -> AsyncIterator[tuple[FetchedOrder, OrderChannel]]:
        """The order ``token`` starts, fetched on its own connection (the agent API v2),
        which stays open until the end is posted.
        Raises: RelayNotAllowed, RelayUnreachable, RelayOrderGone, RelayAnswerInvalid."""
        assert self._session is not None, "use the client as an async context manager"
        relay = self._link.relay
        channel = OrderChannel(self._session, relay, proxy=self._proxy, proxy_auth=self._proxy_auth)
        try:
            fetched = _fetched(await channel.fetch(token), relay, self._allow_http)
            yield fetched, channel
        finally:
            await channel.aclose()

    async def phone_challenge(self) -> str:
        """The relay's one-time challenge for ``phone_orders``. Raises: as ``fetch``."""
        answer = await self._post("/agent/v1/phone/challenge", {})
        challenge = answer.get("challenge")
        if (
            not isinstance(challenge, str)
            or not 0 < len(challenge) <= 128
            or not challenge.isascii()
        ):
            raise RelayAnswerInvalid(self._link.relay, "challenge")
        return challenge

    async def phone_orders(
        self, challenge: str, proofs: Sequence[Mapping[str, object]]
    ) -> list[WaitingOrder]:
        """The phone orders waiting for the people ``proofs`` prove (each built with
        ``eidcore.phoneproof``). Raises: as ``fetch``."""
        answer = await self._post(
            "/agent/v1/phone/orders", {"challenge": challenge, "proofs": list(proofs)}
        )
        orders = answer.get("orders")
        if not isinstance(orders, list) or len(orders) > 64:
            raise RelayAnswerInvalid(self._link.relay, "orders")
        return [_waiting(o, self._link.relay) for o in orders]

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        assert self._session is not None, "use the client as an async context manager"
        relay = self._link.relay
        try:
            async with self._session.post(
                relay + path,
                json=body,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
            ) as response:
                raw = await _bounded(response)
                status = response.status
        except (RelayNotAllowed, RelayUnreachable, RelayAnswerInvalid):
            raise
        except aiohttp.ClientConnectorCertificateError:
            raise RelayUnreachable(relay, "its certificate is not trusted") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RelayUnreachable(relay, type(exc).__name__) from None
        if status == 404:
            raise RelayOrderGone()
        if status >= 500:
            raise RelayUnreachable(relay, f"HTTP {status}")
        try:
            answer = strictjson.loads(raw, max_depth=8)
        except strictjson.JsonRefused as exc:
            raise RelayAnswerInvalid(relay, f"not JSON ({exc.reason})") from None
        if not isinstance(answer, dict):
            raise RelayAnswerInvalid(relay, "not a JSON object")
        if status != 200:
            raise RelayAnswerInvalid(relay, f"HTTP {status} {str(answer.get('errorCode'))[:40]}")
        return answer


async def _bounded(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, up to MAX_ANSWER. Raises: RelayAnswerInvalid."""
    try:
        return await read_bounded(response, MAX_ANSWER)
    except BodyTooLarge:
        raise RelayAnswerInvalid(str(response.url.origin()), "the answer is too large") from None


def _fetched(answer: Mapping[str, Any], relay: str, allow_http: bool = False) -> FetchedOrder:
    """Raises: RelayAnswerInvalid."""

    def bad(what: str) -> RelayAnswerInvalid:
        return RelayAnswerInvalid(relay, what)

    def text(key: str, limit: int) -> str:
        value = answer.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise bad(key)
        return value

    if answer.get("relay") != relay:  # the origin it signs is the one connected to
        raise bad("relay is not the server that answered")
    try:
        kind = OrderKind(str(answer.get("type")))
    except ValueError:
        raise bad("type") from None
    party = answer.get("party")
    if (
        not isinstance(party, dict)
        or not isinstance(party.get("id"), str)
        or not _PARTY_ID.match(party["id"])
    ):
        raise bad("party")
    name = party.get("name")
    if not isinstance(name, str):
        raise bad("party name")
    try:  # the relay's rule for names, again here: a relay that lies is refused
        visibletext.check_name(name)
        nonce = unb64url(text("nonce", 200))
    except (visibletext.TextRefused, ValueError, binascii.Error):
        raise bad("party name or nonce") from None
    if not 16 <= len(nonce) <= 96:
        raise bad("nonce")
    visible = _visible(answer.get("userVisibleData"), bad)
    fmt = answer.get("userVisibleDataFormat", "plaintext")
    if fmt not in ("plaintext", "simpleMarkdownV1"):
        raise bad("userVisibleDataFormat")
    if kind is OrderKind.SIGN and visible is None:
        raise bad("a signature without text")
    non_visible = answer.get("userNonVisibleData")
    try:
        hidden = None if non_visible is None else base64.b64decode(str(non_visible), validate=True)
    except (binascii.Error, ValueError):
        raise bad("userNonVisibleData") from None
    number, kinds, pin_pad = _requirement(answer.get("requirement"), bad)
    return_url = _return_url(answer.get("returnUrl"), allow_http, bad)
    call = answer.get("callInitiator")
    if call not in (None, "user", "RP"):
        raise bad("callInitiator")
    return FetchedOrder(
        ref=text("orderRef", 64),
        secret=text("agentSecret", 128),
        kind=kind,
        relay=relay,
        party=party["id"],
        party_name=name,
        nonce=nonce,
        visible=visible,
        visible_format=str(fmt),
        non_visible=hidden,
        personal_number=number,
        token_kinds=kinds,
        return_url=return_url,
        call_initiator=call,
        pin_pad=pin_pad,
    )


def _return_url(value: object, allow_http: bool, bad: Any) -> str | None:
    """The page to send the browser back to: https, or http on loopback for a development
    agent (the relay has checked it against the party's registered URLs; the agent checks
    it again, for a relay that lies)."""
    if value is None:
        return None
    try:
        url = returnurl.check(value)
    except returnurl.ReturnUrlRefused:
        raise bad("returnUrl") from None
    if returnurl.is_loopback_http(url) and not allow_http:
        raise bad("returnUrl is http, which only a development agent opens")
    return url


def _visible(value: object, bad: Any) -> str | None:
    if value is None:
        return None
    try:
        return visibletext.from_base64(value, MAX_VISIBLE)
    except visibletext.TextRefused:
        raise bad("userVisibleData is not text that may be shown") from None


def _requirement(value: object, bad: Any) -> tuple[PersonalNumber | None, tuple[str, ...], bool]:
    if value is None:
        return None, (), False
    if not isinstance(value, dict):
        raise bad("requirement")
    number = value.get("personalNumber")
    kinds = value.get("tokenKinds", [])
    try:
        parsed = None if number is None else PersonalNumber.parse(str(number))
    except InvalidPersonalNumber:
        raise bad("requirement.personalNumber") from None
    if not isinstance(kinds, list) or not all(k in ("file", "card", "token") for k in kinds):
        raise bad("requirement.tokenKinds")
    pin_pad = value.get("pinPad", False)
    if not isinstance(pin_pad, bool):
        raise bad("requirement.pinPad")
    return parsed, tuple(kinds), pin_pad
