"""``eid-rp demo``: a small website that logs people in and has texts signed with
eid-agent, verifying everything on the server with the kit. It is what a bank's or an
authority's site does, in a hundred lines, for developers to read and for tests to drive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

from agent.personal_number import InvalidPersonalNumber, PersonalNumber, Reason
from rp.errors import VerificationError
from rp.nonces import NonceStore
from rp.revocation import OcspPolicy
from rp.verify import Verified, verify_auth, verify_sign

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
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


CONFIG = web.AppKey("config", DemoConfig)
NONCES = web.AppKey("nonces", NonceStore)
PENDING = web.AppKey("pending", OrderedDict[str, Pending])


def build_demo(config: DemoConfig) -> web.Application:
    app = web.Application(middlewares=[_canonical_origin], client_max_size=512 * 1024)
    app[CONFIG] = config
    app[NONCES] = NonceStore()
    app[PENDING] = OrderedDict()
    app.router.add_get("/", _page("login.html"))
    app.router.add_get("/sign", _page("sign.html"))
    app.router.add_get("/static/{name}", _static)
    app.router.add_get("/favicon.ico", lambda _r: _no_content())
    app.router.add_post("/api/start", _start)
    app.router.add_post("/api/finish", _finish)
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


def _page(name: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        html = (
            (STATIC / name)
            .read_text("utf-8")
            .replace("{{AGENT_PORT}}", str(request.app[CONFIG].agent_port))
        )
        response = web.Response(text=html, content_type="text/html")
        if COOKIE not in request.cookies:
            response.set_cookie(COOKIE, secrets.token_urlsafe(24), httponly=True,
                                samesite="Strict")  # fmt: skip
        return response

    return handler


async def _no_content() -> web.Response:
    return web.Response(status=204)


async def _static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in {"eid-agent.js", "demo.js", "demo.css"}:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name)


def _session(request: web.Request) -> str:
    sid = request.cookies.get(COOKIE)
    if not sid:
        raise web.HTTPBadRequest(text="no session: reload the page")
    return sid


async def _start(request: web.Request) -> web.Response:
    sid = _session(request)
    body = await request.json()
    kind = body.get("type")
    if kind not in {"auth", "sign"}:
        raise web.HTTPBadRequest(text="type must be auth or sign")
    pnr = (body.get("personalNumber") or "").strip()
    if pnr:
        try:
            PersonalNumber.parse(pnr)
        except InvalidPersonalNumber as exc:
            site = (
                "personalNumberFormat" if exc.reason is Reason.FORMAT else "personalNumberInvalid"
            )
            return web.json_response({"site": site}, status=400)
    text = body.get("text") if kind == "sign" else None
    if kind == "sign" and (not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT):
        raise web.HTTPBadRequest(text="text to sign is required")
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
    body = await request.json()
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
    return web.json_response(
        {
            "type": verified.type,
            "person": {"personalNumber": person.personal_number, "name": person.name},
            "signedAt": verified.signed_at.isoformat(),
            "text": pending.text,
            "certificateSerial": format(verified.certificate.serial_number, "x"),
            "issuer": verified.certificate.issuer.rfc4514_string(),
        }
    )


def load_anchors(ca_dir: Path) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate((ca_dir / "root.crt").read_bytes())]
