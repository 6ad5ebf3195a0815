"""``eid-issuer serve``: the issuer's HTTP service (aiohttp).

Three audiences, three prefixes:
- ``/backoffice/v1/...`` for the bank's internet bank: a bearer token from the issuer's
  config, compared in constant time; creates, cancels and fails orders, revokes and lists
  a person's certificates;
- ``/enrol/v1/...`` for agents: start with personal number + activation code, then submit
  two CSRs; plus the holder's own revocation request;
- ``/ocsp`` for relying parties (RFC 6960, POST and GET).

Answers are JSON ``{"error": code, "detail": ...}`` on failure, never a stack trace;
every client address has a rate limit; database work runs in threads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eidcore import strictjson
from eidcore.logline import one_line
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber
from eidcore.ratelimit import RateLimiter
from issuer.ca import CertificateAuthority
from issuer.db import DatabaseError
from issuer.enrolment import Answer, BadRequest, EnrolmentError, Enrolments, OrderState
from issuer.ocsp import ResponseCache, answer

__all__ = ["IssuerConfig", "build_app"]

log = logging.getLogger(__name__)

STATUS = {
    Answer.WRONG_CODE: 403,
    Answer.BLOCKED: 403,
    Answer.EXPIRED: 410,
    Answer.CANCELLED: 410,
    Answer.FAILED: 410,
    Answer.USED: 409,
}
MAX_BODY = 64 * 1024
BODY_DEADLINE = 10.0  # seconds for a request's body, once its headers are in
# what an agent may enrol with an activation code: cards are personalised at the bank's desk
ENROLLED_KINDS = ("file", "token")


@dataclass
class IssuerConfig:
    backoffice_token: str
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    rate_per_second: float = 20.0  # per client address, burst of twice that
    monotonic: Callable[[], float] = time.monotonic
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(2 * self.rate_per_second, self.rate_per_second, 10_000)


ENROLMENTS = web.AppKey("enrolments", Enrolments)
CA = web.AppKey("ca", CertificateAuthority)
CONFIG = web.AppKey("config", IssuerConfig)
OCSP_CACHE = web.AppKey("ocsp_cache", ResponseCache)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, detail: str = "") -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[CONFIG]
    peer = request.remote or "?"
    if not config.limiter.allow(peer, config.monotonic()):
        return _error(429, "rateLimited", "too many requests from this address")
    if request.path.startswith("/backoffice/"):
        given = request.headers.get("Authorization", "")
        wanted = f"Bearer {config.backoffice_token}"
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            return _error(401, "unauthorized", "a valid back-office token is required")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except EnrolmentError as exc:
        log.info("%s %s: %s", request.method, request.path, exc)
        return _error(STATUS[exc.answer], exc.answer.value)
    except (BadRequest, InvalidPersonalNumber) as exc:
        return _error(400, "badRequest", str(exc))
    except DatabaseError as exc:
        log.error("database: %s", exc)
        return _error(503, "unavailable", "the issuer's database is not available")
    except Exception as exc:  # one line: agents are anonymous peers (eidcore/logline.py)
        log.error("%s %s failed: %s", request.method, request.path, one_line(exc))
        return _error(500, "internal", "")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        async with asyncio.timeout(BODY_DEADLINE):  # a trickled body holds no handler
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text='{"error": "requestTimeout", "detail": "the body took too long"}',
            content_type="application/json",
        ) from None
    try:
        body = strictjson.loads(raw)
    except strictjson.JsonRefused as exc:
        raise BadRequest(f"the body is refused: {exc.reason}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, limit: int = 8192) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"{key} must be a non-empty string")
    return value


def _run(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


# -- back office ---------------------------------------------------------------------------


async def create_order(request: web.Request) -> web.Response:
    body = await _json(request)
    pnr = PersonalNumber.parse(_text(body, "personalNumber", 20))
    name = _text(body, "name", 200)
    enrolments, now = request.app[ENROLMENTS], request.app[CONFIG].clock()
    created = await _run(enrolments.create_order, pnr, name, now)
    log.info("order %s created for %s", created.order_id, pnr.masked())
    return web.json_response(
        {
            "orderId": created.order_id,
            "activationCode": created.activation_code,
            "expiresAt": created.expires_at.isoformat(),
        },
        status=201,
    )


async def end_order(request: web.Request) -> web.Response:
    state = OrderState.CANCELLED if request.match_info["action"] == "cancel" else OrderState.FAILED
    ended = await _run(request.app[ENROLMENTS].end_order, request.match_info["order"], state)
    if not ended:
        return _error(404, "noOpenOrder", "no open order with that id")
    return web.json_response({"state": state.value})


async def revoke_person(request: web.Request) -> web.Response:
    body = await _json(request) if request.can_read_body else {}
    pnr = PersonalNumber.parse(request.match_info["pnr"])
    reason = str(body.get("reason", "unspecified"))
    serials = body.get("serials")
    if serials is not None and not (
        isinstance(serials, list) and all(isinstance(s, str) for s in serials)
    ):
        raise BadRequest("serials must be a list of strings")
    now = request.app[CONFIG].clock()
    done = await _run(
        lambda: request.app[ENROLMENTS].revoke_person(pnr, reason, now, serials=serials)
    )
    request.app[OCSP_CACHE].clear()
    log.info("revoked %d certificates of %s (%s)", len(done), pnr.masked(), reason)
    return web.json_response({"revoked": done})


async def list_credentials(request: web.Request) -> web.Response:
    pnr = PersonalNumber.parse(request.match_info["pnr"])
    return web.json_response({"certificates": await _run(request.app[ENROLMENTS].credentials, pnr)})


# -- agents --------------------------------------------------------------------------------


async def start(request: web.Request) -> web.Response:
    body = await _json(request)
    try:
        pnr = PersonalNumber.parse(_text(body, "personalNumber", 20))
    except InvalidPersonalNumber:
        raise EnrolmentError(Answer.WRONG_CODE, "not a personal number") from None
    code = _text(body, "activationCode", 64)
    now = request.app[CONFIG].clock()
    enrolment, secret = await _run(request.app[ENROLMENTS].start, pnr, code, now)
    log.info("enrolment %s started", enrolment)
    return web.json_response({"enrolmentId": enrolment, "secret": secret}, status=201)


async def certificates(request: web.Request) -> web.Response:
    body = await _json(request)
    secret = request.headers.get("Authorization", "").removeprefix("Bearer ")
    csrs = (_text(body, "identificationCsr").encode(), _text(body, "signatureCsr").encode())
    kind = body.get("kind", "file")
    if kind not in ENROLLED_KINDS:
        raise BadRequest("kind must be file or token")
    now = request.app[CONFIG].clock()
    issued = await _run(
        lambda: request.app[ENROLMENTS].issue(
            request.match_info["enrolment"], secret, csrs[0], csrs[1], now, kind=kind
        )
    )
    pem = serialization.Encoding.PEM
    log.info("enrolment %s: certificates issued", request.match_info["enrolment"])
    return web.json_response(
        {
            "identification": issued.identification.public_bytes(pem).decode(),
            "signature": issued.signature.public_bytes(pem).decode(),
            "chain": [c.public_bytes(pem).decode() for c in issued.chain],
        }
    )


async def holder_revoke(request: web.Request) -> web.Response:
    body = await _json(request)
    try:
        cert = x509.load_pem_x509_certificate(_text(body, "certificate").encode())
        signed = base64.b64decode(_text(body, "request"), validate=True)
        proof = base64.b64decode(_text(body, "signature"), validate=True)
    except (ValueError, binascii.Error):
        raise BadRequest("certificate, request and signature must be PEM and base64") from None
    now = request.app[CONFIG].clock()
    done = await _run(request.app[ENROLMENTS].revoke_by_holder, cert, proof, signed, now)
    request.app[OCSP_CACHE].clear()
    log.info("holder revoked %d certificates", len(done))
    return web.json_response({"revoked": done})


# -- OCSP ----------------------------------------------------------------------------------


async def ocsp_post(request: web.Request) -> web.Response:
    if request.content_type != "application/ocsp-request":
        return _error(415, "badRequest", "Content-Type must be application/ocsp-request")
    return await _ocsp(request, await request.read())


async def ocsp_get(request: web.Request) -> web.Response:
    try:
        der = base64.b64decode(request.match_info["request"], validate=False)
    except binascii.Error:
        der = b""
    return await _ocsp(request, der)


async def _ocsp(request: web.Request, der: bytes) -> web.Response:
    enrolments, ca, config = request.app[ENROLMENTS], request.app[CA], request.app[CONFIG]
    cache, tick = request.app[OCSP_CACHE], config.monotonic()
    body = cache.get(der, tick)
    if body is None:
        now = config.clock()
        if enrolments.inline_reads:
            # a local SQLite read (~15 µs) plus one signature: cheaper than the hop to a
            # thread, whose wake-up waits for the GIL (measured: 880/s with it, 2000+ not)
            body, reusable = answer(der, enrolments.status, ca, now)
        else:
            body, reusable = await _run(answer, der, enrolments.status, ca, now)
        if reusable:
            cache.put(der, body, tick)
    return web.Response(
        body=body, content_type="application/ocsp-response", headers={"Cache-Control": "max-age=60"}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(
    enrolments: Enrolments, ca: CertificateAuthority, config: IssuerConfig
) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[ENROLMENTS] = enrolments
    app[CA] = ca
    app[CONFIG] = config
    app[OCSP_CACHE] = ResponseCache()
    app.router.add_post("/backoffice/v1/orders", create_order)
    app.router.add_post(r"/backoffice/v1/orders/{order}/{action:cancel|fail}", end_order)
    app.router.add_post("/backoffice/v1/persons/{pnr}/revoke", revoke_person)
    app.router.add_get("/backoffice/v1/persons/{pnr}/certificates", list_credentials)
    app.router.add_post("/enrol/v1/enrolments", start)
    app.router.add_post("/enrol/v1/enrolments/{enrolment}/certificates", certificates)
    app.router.add_post("/enrol/v1/revocations", holder_revoke)
    app.router.add_post("/ocsp", ocsp_post)
    app.router.add_get("/ocsp/{request:.+}", ocsp_get)
    app.router.add_get("/health", health)
    return app
