"""The demo website's second door: its server starts the order at its order relay, the page
opens the ``eid-agent://`` link, and the login completes only when this session's own
browser comes back through the return URL (``RelayLogin``: the relay attack) and the
relay's result verifies again here with the kit, for this relay and this party.

The page's side is ``EidAgent``'s ``relay`` option (``rp/static/eid-agent.js``): it posts
to ``/api/relay/start``, ``/collect`` and ``/cancel`` below.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from cryptography import x509

from rp import (
    RETURN_PARAMETER,
    ExpiredNonce,
    MalformedResponse,
    RelayApi,
    RelayApiError,
    RelayLogin,
    ReusedNonce,
    UnknownNonce,
    VerificationError,
    Verified,
    VerifiedXml,
    verify_xml_signature,
)

__all__ = ["RETURN_PATH", "RelayDoor", "SiteHooks", "SiteRefusal", "add_routes"]

log = logging.getLogger(__name__)

RETURN_PATH = "/eid/return"
MAX_SESSIONS = 1000
T = TypeVar("T")


@dataclass
class _Order:
    type: str
    ref: str
    text: str | None
    language: str
    result: dict[str, Any] | None = None
    failed: str | None = None  # the hint it failed with: every tab of the session sees it


@dataclass
class RelayDoor:
    api: RelayApi
    server: str  # the relay's origin, as agents reach it and sign it
    party: str  # this site's party id at the relay
    login: RelayLogin
    orders: OrderedDict[str, _Order] = field(default_factory=OrderedDict)

    @classmethod
    def for_site(cls, api: RelayApi, server: str, party: str, site_origin: str) -> RelayDoor:
        return cls(api, server.rstrip("/"), party, RelayLogin(site_origin + RETURN_PATH))


class SiteRefusal(Exception):
    """What the page is told about a start it may not make (a site message's name)."""

    def __init__(self, site: str) -> None:
        super().__init__(site)
        self.site = site


@dataclass(frozen=True)
class SiteHooks:
    """The demo site's own rules, shared by both doors (one place for each)."""

    cookie: str
    session: Callable[[web.Request], str]
    body: Callable[[web.Request], Awaitable[dict[str, Any]]]
    order_fields: Callable[[dict[str, Any]], tuple[str, str, str | None]]  # SiteRefusal
    language: Callable[[web.Request], str]
    origin: Callable[[web.Request], str]
    trust: Callable[[web.Request], list[x509.Certificate]]
    result: Callable[[Verified | VerifiedXml, str | None], dict[str, Any]]


def add_routes(app: web.Application, door_key: web.AppKey[RelayDoor], helpers: SiteHooks) -> None:

    async def start(request: web.Request) -> web.Response:
        door = request.app[door_key]
        sid = helpers.session(request)
        try:
            kind, pnr, text = helpers.order_fields(await helpers.body(request))
        except SiteRefusal as exc:
            return web.json_response({"site": exc.site}, status=400)
        now = dt.datetime.now(dt.UTC)
        fields: dict[str, Any] = {"returnUrl": door.login.start(sid, now)}
        if pnr:
            fields["requirement"] = {"personalNumber": pnr}
        ip = request.remote or "127.0.0.1"
        try:
            if kind == "sign":
                assert text is not None
                visible = base64.b64encode(text.encode()).decode()
                started = await _off_loop(lambda: door.api.sign(ip, visible, **fields))
            else:
                started = await _off_loop(lambda: door.api.auth(ip, **fields))
            token, ref = str(started["autoStartToken"]), str(started["orderRef"])
        except (RelayApiError, OSError, KeyError) as exc:
            log.warning("the relay did not start the order: %s", exc)
            return web.json_response({"site": "relayUnavailable"}, status=502)
        language = helpers.language(request)
        door.login.bind(sid, ref)
        door.orders[sid] = _Order(kind, ref, text, language)
        door.orders.move_to_end(sid)
        while len(door.orders) > MAX_SESSIONS:
            door.orders.popitem(last=False)
        back = helpers.origin(request) + RETURN_PATH  # the wish; the agent opens the relay's
        query = urllib.parse.urlencode(
            {"autostarttoken": token, "server": door.server, "redirect": back}
        )
        return web.json_response({"link": f"eid-agent:///?{query}"})

    async def collect(request: web.Request) -> web.Response:
        door = request.app[door_key]
        sid = helpers.session(request)
        order = door.orders.get(sid)
        if order is None:
            return web.json_response(
                {"site": "verificationFailed", "reason": "NoOrder"}, status=400
            )
        if order.result is not None:
            return web.json_response({"status": "complete", "result": order.result})
        if order.failed is not None:
            return web.json_response({"status": "failed", "hintCode": order.failed})
        try:
            collected = await _off_loop(lambda: door.api.collect(order.ref))
        except (RelayApiError, OSError) as exc:
            log.warning("collect at the relay failed: %s", exc)
            return web.json_response({"site": "relayUnavailable"}, status=502)
        status = collected.get("status")
        if status == "failed":
            order.failed = str(collected.get("hintCode") or "startFailed")
            return web.json_response({"status": "failed", "hintCode": order.failed})
        if status != "complete":
            return web.json_response({"status": "pending", "hintCode": collected.get("hintCode")})
        if not door.login.may_log_in(sid, collected):
            # complete at the relay, but this session's browser has not come back through
            # its return URL: collect alone never logs anyone in
            return web.json_response({"status": "pending", "hintCode": "userSign"})
        try:
            verified = await _off_loop(
                lambda: _verify(door, order, collected, helpers.trust(request))
            )
        except VerificationError as exc:
            order.failed = "startFailed"
            log.warning("the relay's result did not verify here: %s: %s", type(exc).__name__, exc)
            return web.json_response(
                {"site": "verificationFailed", "reason": type(exc).__name__}, status=400
            )
        order.result = helpers.result(verified, order.text)
        person = verified.person
        log.info("%s verified for %s (relay)", order.type, person.personal_number[:8] + "-****")
        return web.json_response({"status": "complete", "result": order.result})

    async def cancel(request: web.Request) -> web.Response:
        door = request.app[door_key]
        order = door.orders.pop(helpers.session(request), None)
        if order is not None:
            try:
                await _off_loop(lambda: door.api.cancel(order.ref))
            except (RelayApiError, OSError) as exc:
                log.info("cancel at the relay: %s", exc)  # ended there already, most often
        return web.json_response({})

    async def returned(request: web.Request) -> web.Response:
        """The agent opened this in the person's browser after the order."""
        door = request.app[door_key]
        sid = request.cookies.get(helpers.cookie, "")
        order = door.orders.get(sid)
        page = "/sign" if order is not None and order.type == "sign" else "/"
        language = order.language if order is not None else helpers.language(request)
        try:
            door.login.returned(
                sid, request.query.get(RETURN_PARAMETER, ""), dt.datetime.now(dt.UTC)
            )
        except (UnknownNonce, ReusedNonce, ExpiredNonce) as exc:
            # another session's value (the relay attack), used, or late: no login here
            log.warning("a return without its own session's value: %s", type(exc).__name__)
            raise web.HTTPFound(f"{page}?lang={language}&relay=refused") from None
        raise web.HTTPFound(f"{page}?lang={language}&relay=returned")

    app.router.add_post("/api/relay/start", start)
    app.router.add_post("/api/relay/collect", collect)
    app.router.add_post("/api/relay/cancel", cancel)
    app.router.add_get(RETURN_PATH, returned)


def _verify(
    door: RelayDoor, order: _Order, collected: dict[str, Any], trust: list[x509.Certificate]
) -> VerifiedXml:
    """The relay has verified the result (and its nonce); the site checks the XML
    signature again with its own trust: its relay's origin, its own party and order,
    chain, key usage and the text. Raises: VerificationError."""
    completion = collected.get("completionData")
    if not isinstance(completion, dict) or not isinstance(completion.get("signature"), str):
        raise MalformedResponse("no completionData with a signature")
    return verify_xml_signature(
        completion["signature"],
        order_type=order.type,
        expected_origin=door.server,
        party=door.party,
        order_ref=order.ref,
        trust_anchors=trust,
        now=dt.datetime.now(dt.UTC),
        user_visible_data=order.text,
    )


async def _off_loop(call: Callable[[], T]) -> T:
    """The relay client blocks (urllib): in a thread, so the site keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(None, call)
