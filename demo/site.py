"""``eid-rp demo``: a small website that logs people in and has texts signed with
eid-agent, verifying everything on the server with the kit. It is what a bank's or an
authority's site does, in a hundred lines, for developers to read and for tests to drive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import logging
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

import rp
from demo.relaydoor import RelayDoor, SiteHooks, SiteRefusal, add_routes
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber, Reason
from rp import (
    NonceStore,
    OcspPolicy,
    VerificationError,
    Verified,
    VerifiedXml,
    verify_auth,
    verify_sign,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
KIT_STATIC = Path(rp.__file__).parent / "static"  # the page-side client a site serves
COOKIE = "demo_sid"
MAX_SESSIONS = 1000
MAX_TEXT = 10_000


@dataclass
class Pending:
    type: str
    nonce: str
    text: str | None


@dataclass
class DemoConfig:
    origin: str  # the site's own origin: what the signed bytes must name
    agent_port: int
    trust_anchors: list[x509.Certificate]
    revocation: OcspPolicy | None = None  # ask the issuer's OCSP responder too
    relay: RelayDoor | None = None  # the second door: orders through the site's relay


CONFIG = web.AppKey("config", DemoConfig)
NONCES = web.AppKey("nonces", NonceStore)
PENDING = web.AppKey("pending", OrderedDict[str, Pending])
RELAY = web.AppKey("relay", RelayDoor)
RELAY_PATH = "/api/relay"


def build_demo(config: DemoConfig) -> web.Application:
    app = web.Application(middlewares=[_canonical_origin], client_max_size=512 * 1024)
    app[CONFIG] = config
    app[NONCES] = NonceStore()
    app[PENDING] = OrderedDict()
    app.router.add_get("/", _page("login.html"))
    app.router.add_get("/sign", _page("sign.html"))
    app.router.add_get("/static/{name}", _static)
    app.router.add_get("/favicon.ico", _no_content)
    app.router.add_post("/api/start", _start)
    app.router.add_post("/api/finish", _finish)
    if config.relay is not None:
        app[RELAY] = config.relay
        add_routes(
            app,
            RELAY,
            SiteHooks(
                cookie=COOKIE,
                session=_session,
                body=_body,
                order_fields=_order_fields,
                language=_language,
                origin=lambda request: request.app[CONFIG].origin,
                trust=lambda request: request.app[CONFIG].trust_anchors,
                result=_result,
            ),
        )
    return app


@web.middleware
async def _canonical_origin(request: web.Request, handler: Any) -> web.StreamResponse:
    # The site checks the signed origin against its own configured origin, never against
    # what the request claims; visitors arriving under another name are sent to it.
    config = request.app[CONFIG]
    if f"{request.scheme}://{request.host}" != config.origin:
        raise web.HTTPFound(config.origin + request.path_qs)
    response: web.StreamResponse = await handler(request)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; connect-src 'self' http://127.0.0.1:{config.agent_port}; "
        "frame-ancestors 'none'"
    )
    return response


# The site's own words (a website's, not the agent's: the agent's come from its
# catalogue through eid-agent.js). Every key in both languages; a test checks it.
PAGE_TEXTS: dict[str, dict[str, str]] = {
    "sv": {
        "title_login": "Demobanken — logga in",
        "title_sign": "Demobanken — skriv under",
        "nav_login": "Logga in",
        "nav_sign": "Skriv under en text",
        "other_language": "English",
        "heading_login": "Demobanken — logga in med BankID",
        "heading_sign": "Demobanken — skriv under en text med BankID",
        "pnr_label": "Personnummer (frivilligt)",
        "pnr_placeholder": "ÅÅÅÅMMDDNNNN",
        "pnr_hint": "12 siffror utan bindestreck, till exempel 198112189876",
        "login_button": "Logga in med BankID",
        "sign_button": "Skriv under med BankID",
        "cancel": "Avbryt",
        "text_label": "Texten att skriva under",
        "sample_text": "Jag godkänner överföringen av 1 000 kr till konto 1234-5678.",
        "logged_in_as": "Inloggad som",
        "signed_by": "Underskriven av",
        "signed_at": "underskriven",
        "open_agent": "Öppna e-legitimationsprogrammet",
        "door_bridge": "Vägen: programmet på den här datorn (127.0.0.1)",
        "door_relay": "Vägen: beställningstjänsten och en eid-agent://-länk",
    },
    "en": {
        "title_login": "Demo bank — log in",
        "title_sign": "Demo bank — sign",
        "nav_login": "Log in",
        "nav_sign": "Sign a text",
        "other_language": "Svenska",
        "heading_login": "Demo bank — log in with BankID",
        "heading_sign": "Demo bank — sign a text with BankID",
        "pnr_label": "Personal number (optional)",
        "pnr_placeholder": "YYYYMMDDNNNN",
        "pnr_hint": "12 digits, no hyphen — e.g. 198112189876",
        "login_button": "Log in with BankID",
        "sign_button": "Sign with BankID",
        "cancel": "Cancel",
        "text_label": "The text to sign",
        "sample_text": "I approve the transfer of SEK 1,000 to account 1234-5678.",
        "logged_in_as": "Logged in as",
        "signed_by": "Signed by",
        "signed_at": "signed",
        "open_agent": "Open the eID agent",
        "door_bridge": "Door: the agent on this computer (127.0.0.1)",
        "door_relay": "Door: the order relay and an eid-agent:// link",
    },
}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def page_language(query: str | None, accept_language: str) -> str:
    """``?lang=`` when it names one of ours, else the browser's first choice that we
    speak (Accept-Language order; weights are rarely other than descending), else English."""
    if query in PAGE_TEXTS:
        return query
    for item in accept_language.split(","):
        tag = item.split(";")[0].strip().lower()
        if tag.split("-")[0] in PAGE_TEXTS:
            return tag.split("-")[0]
    return "en"


def render_page(template: str, language: str, agent_port: int, relay: str = "") -> str:
    """The page in ``language``: every ``{{key}}`` filled, escaped for HTML.

    Raises:
        KeyError: a placeholder without a text (a bug in the page, caught by the tests).
    """
    values = {
        **PAGE_TEXTS[language],
        "lang": language,
        "AGENT_PORT": str(agent_port),
        "RELAY": relay,
        "other_lang": "en" if language == "sv" else "sv",
    }
    return _PLACEHOLDER.sub(lambda m: html.escape(values[m.group(1)]), template)


def _page(name: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        language = _language(request)
        config = request.app[CONFIG]
        text = render_page(
            (STATIC / name).read_text("utf-8"),
            language,
            config.agent_port,
            RELAY_PATH if config.relay is not None else "",
        )
        response = web.Response(text=text, content_type="text/html")
        response.headers["Content-Language"] = language
        if COOKIE not in request.cookies:
            response.set_cookie(COOKIE, secrets.token_urlsafe(24), httponly=True, samesite="Strict")
        return response

    return handler


def _language(request: web.Request) -> str:
    return page_language(request.query.get("lang"), request.headers.get("Accept-Language", ""))


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in {"eid-agent.js", "demo.js", "demo.css"}:
        raise web.HTTPNotFound()
    return web.FileResponse((KIT_STATIC if name == "eid-agent.js" else STATIC) / name)


def _refused(why: str) -> web.HTTPBadRequest:
    # The page shows its "technical error" message for any refusal; the reason is for
    # developers reading the response, never a traceback.
    return web.HTTPBadRequest(
        text=json.dumps({"site": "verificationFailed", "reason": why}),
        content_type="application/json",
    )


def _session(request: web.Request) -> str:
    sid = request.cookies.get(COOKIE)
    if not sid:
        raise _refused("noSession")
    return sid


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except (ValueError, RecursionError):  # deep nesting, 5,000-digit numbers, not JSON
        raise _refused("notJson") from None
    if not isinstance(body, dict):
        raise _refused("notAnObject")
    return body


def _order_fields(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """(type, personal number or "", text to sign). Raises: SiteRefusal (the page shows
    its message), web.HTTPBadRequest."""
    kind = body.get("type")
    if kind not in {"auth", "sign"}:
        raise _refused("type")
    pnr = body.get("personalNumber") or ""
    if not isinstance(pnr, str):
        raise _refused("personalNumber")
    pnr = pnr.strip()
    if pnr:
        try:
            PersonalNumber.parse(pnr)
        except InvalidPersonalNumber as exc:
            raise SiteRefusal(
                "personalNumberFormat" if exc.reason is Reason.FORMAT else "personalNumberInvalid"
            ) from None
    text = body.get("text") if kind == "sign" else None
    if kind == "sign" and (not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT):
        raise _refused("text")
    return str(kind), pnr, text if isinstance(text, str) else None


async def _start(request: web.Request) -> web.Response:
    sid = _session(request)
    try:
        kind, pnr, text = _order_fields(await _body(request))
    except SiteRefusal as exc:
        return web.json_response({"site": exc.site}, status=400)
    nonce = request.app[NONCES].issue(sid, dt.datetime.now(dt.UTC))
    pending = request.app[PENDING]
    pending[sid] = Pending(kind, nonce, text)
    pending.move_to_end(sid)
    while len(pending) > MAX_SESSIONS:
        pending.popitem(last=False)
    return web.json_response({"nonce": nonce, "personalNumber": pnr or None})


async def _finish(request: web.Request) -> web.Response:
    sid = _session(request)
    config = request.app[CONFIG]
    body = await _body(request)
    pending = request.app[PENDING].pop(sid, None)
    if pending is None:
        return web.json_response({"site": "verificationFailed", "reason": "NoOrder"}, status=400)
    now = dt.datetime.now(dt.UTC)
    try:
        request.app[NONCES].consume(pending.nonce, sid, now)
        common: dict[str, Any] = {
            "expected_origin": config.origin,
            "nonce": pending.nonce,
            "trust_anchors": config.trust_anchors,
            "now": now,
            "revocation": config.revocation,
        }
        completion = body.get("completionData") or {}
        # an OCSP question blocks for up to its timeout: off the event loop
        verified: Verified = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: (
                verify_sign(completion, user_visible_data=pending.text or "", **common)
                if pending.type == "sign"
                else verify_auth(completion, **common)
            ),
        )
    except VerificationError as exc:
        log.warning("verification failed: %s: %s", type(exc).__name__, exc)
        return web.json_response(
            {"site": "verificationFailed", "reason": type(exc).__name__}, status=400
        )
    person = verified.person
    log.info("%s verified for %s", pending.type, person.personal_number[:8] + "-****")
    return web.json_response(_result(verified, pending.text))


def _result(verified: Verified | VerifiedXml, text: str | None) -> dict[str, Any]:
    """What the page shows: who, when, what, with which certificate. An XML signature
    (the relay's) carries no time of its own: the time it was verified here."""
    person = verified.person
    at = verified.signed_at if isinstance(verified, Verified) else dt.datetime.now(dt.UTC)
    return {
        "type": verified.type,
        "person": {"personalNumber": person.personal_number, "name": person.name},
        "signedAt": at.isoformat(),
        "text": text,
        "certificateSerial": format(verified.certificate.serial_number, "x"),
        "issuer": verified.certificate.issuer.rfc4514_string(),
    }


def load_anchors(ca_dir: Path) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate((ca_dir / "root.crt").read_bytes())]
