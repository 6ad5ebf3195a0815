"""The order relay's HTTP side (aiohttp): the relying-party API its websites' servers
call, and the agent API the person's agent calls. A thin driver: requests are validated
by ``relay.requests``, orders move by ``relay.rules``, rows live in ``relay.store``, and
an agent's result is verified with the rp kit before ``collect`` says ``complete``.

Errors are ``{"errorCode", "details"}`` with BankID's codes; detail goes to the log,
never a stack trace to the wire.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSMsgType, web

import rp
from eidcore import phoneproof, xmlsig
from eidcore.db import DatabaseError
from eidcore.jsonapi import ApiError, ErrorShell, error_response
from eidcore.listener import peer_key
from eidcore.ratelimit import RateLimiter
from eidcore.signeddata import OrderKind, b64url
from eidcore.status import Hint
from relay import rules, v6
from relay.channel import (
    FIRST_MESSAGE_SECONDS,
    HEARTBEAT_SECONDS,
    STAGES,
    WATCH_SECONDS,
    ChainCache,
    Stage,
    Watch,
    rebuilt,
)
from relay.config import Party, RelayConfig
from relay.requests import (
    BODY_DEADLINE,
    MAX_BODY_BYTES,
    MAX_STEP_BYTES,
    MAX_TRACKED_ADDRESSES,
    AgentReport,
    AgentStep,
    ErrorCode,
    OrderStart,
    RelayError,
    Step,
    parse_json,
    parse_proofs,
    parse_ref,
    parse_report,
    parse_step,
    parse_token,
)
from relay.rules import Event, IllegalTransition, Phase, RelayOrder
from relay.store import OrderStore

__all__ = ["RelayServer", "build_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_FAILURE_EVENTS = {
    Hint.USER_CANCEL: Event.USER_CANCEL,
    Hint.CERTIFICATE_ERR: Event.NO_CREDENTIAL,
    Hint.START_FAILED: Event.AGENT_FAILED,
    Hint.UPDATE_REQUIRED: Event.AGENT_OUTDATED,
}
# A result that does not verify ends the order: with certificateErr when the person's
# certificate is the reason, startFailed for anything else the agent sent.
_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.REQUEST_TOO_LARGE,
}
_CERTIFICATE_REASONS = (
    rp.UntrustedChain,
    rp.CertificateExpired,
    rp.CertificateRevoked,
    rp.WrongKeyUsage,
    rp.WrongTokenKind,
)


@dataclass
class RelayServer:
    config: RelayConfig
    store: OrderStore
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    new_token: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(rules.TOKEN_BYTES))
    new_ref: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    monotonic: Callable[[], float] = time.monotonic
    agent_limiter: RateLimiter | None = None  # None: the config's [limits]
    chains: ChainCache = field(default_factory=ChainCache)
    watch_every: float = WATCH_SECONDS  # how often held orders are looked at in the store

    def __post_init__(self) -> None:
        burst, rate = self.config.agent_budget
        if self.agent_limiter is None and rate > 0:
            self.agent_limiter = RateLimiter(burst, rate, MAX_TRACKED_ADDRESSES)
        self.watch = Watch(self.store.ended_among, self.watch_every)

    async def get(self, ref: str, now: dt.datetime) -> RelayOrder | None:
        """An order as it stands: read on the loop from a local SQLite file (WAL: a read
        never waits on a lock; ~20 µs, less than a thread's wake-up), in a thread from
        PostgreSQL. Raises: RelayError(maintenance)."""
        if self.store.kind != "sqlite":
            order: RelayOrder | None = await self.run(lambda: self.store.get(ref, now))
            return order
        try:
            return self.store.get(ref, now)
        except DatabaseError as exc:
            log.warning("database: %s", exc)
            raise RelayError(ErrorCode.MAINTENANCE, "the relay's database is unavailable") from None

    async def run(self, work: Callable[[], Any]) -> Any:
        """A blocking store call, in a thread; an unreachable database is ``maintenance``."""
        try:
            return await asyncio.to_thread(work)
        except DatabaseError as exc:
            log.warning("database: %s", exc)
            raise RelayError(ErrorCode.MAINTENANCE, "the relay's database is unavailable") from None


SERVER = web.AppKey("server", RelayServer)


def build_app(server: RelayServer) -> web.Application:
    app = web.Application(
        middlewares=[_guard], client_max_size=MAX_BODY_BYTES, handler_args={"max_field_size": 8190}
    )
    app[SERVER] = server
    for name, handler in (
        ("auth", _v6_auth),
        ("sign", _v6_sign),
        ("phone/auth", _v6_phone_auth),
        ("phone/sign", _v6_phone_sign),
        ("collect", _v6_collect),
        ("cancel", _v6_cancel),
    ):
        app.router.add_post(f"{v6.PATH}/{name}", handler)
    app.router.add_post("/agent/v1/phone/challenge", _agent_phone_challenge)
    app.router.add_post("/agent/v1/phone/orders", _agent_phone_orders)
    app.router.add_post("/agent/v1/order", _agent_order)
    app.router.add_post("/agent/v1/progress", _agent_progress)
    app.router.add_post("/agent/v1/complete", _agent_complete)
    app.router.add_post("/agent/v1/fail", _agent_fail)
    app.router.add_post("/agent/v1/status", _agent_status)
    app.router.add_get(CHANNEL_PATH, _agent_channel)
    app.on_response_prepare.append(_strip_server_header)
    app.cleanup_ctx.append(_watching)
    return app


CHANNEL_PATH = "/agent/v2/order"


def _compact(value: object) -> str:
    """JSON without the spaces ``json.dumps`` puts in: bytes the agent does not pay."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _watching(app: web.Application) -> AsyncIterator[None]:
    server = app[SERVER]
    task = asyncio.create_task(server.watch.run(server.clock))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _strip_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.popall("Server", None)


def _refused(request: web.Request, exc: ApiError) -> web.Response:
    response = error_response(exc)
    if exc.code is ErrorCode.TOO_MANY_REQUESTS:  # and no line for each call of a flood
        response.headers.update(_rate_limit_headers(request))
    else:
        log.info("refused %s %s: %s", request.method, request.path, exc)
    return response


_SHELL = ErrorShell(
    refused=_refused,
    from_http=lambda exc: RelayError(
        _HTTP_CODES.get(exc.status, ErrorCode.INVALID_PARAMETERS), exc.reason
    ),
    internal=lambda: RelayError(ErrorCode.INTERNAL_ERROR, "internal error"),
    log=log,
)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await _SHELL.answer(request, lambda: _pass(request, handler))


async def _pass(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Raises: RelayError, web.HTTPException (answered by the shell)."""
    if _over_budget(request):
        raise RelayError(ErrorCode.TOO_MANY_REQUESTS, "too many requests from this address")
    unmatched = request.match_info.http_exception
    if unmatched is not None:
        raise unmatched
    if request.path == CHANNEL_PATH:
        return await handler(request)  # a WebSocket upgrade: its messages are checked
    if request.content_type != "application/json":
        raise RelayError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RelayError(ErrorCode.REQUEST_TOO_LARGE, "request body too large")
    return await handler(request)


def _rate_limit_headers(request: web.Request) -> dict[str, str]:
    """When the address may call again, as ``Retry-After`` and the IETF RateLimit
    header fields (``RateLimit-Limit``: the burst; ``-Remaining``; ``-Reset``: seconds)."""
    server = request.app[SERVER]
    limiter = server.agent_limiter
    if limiter is None:
        return {"Retry-After": "1"}
    wait = limiter.wait(peer_key(request.remote or "?"), server.monotonic())
    seconds = str(max(1, math.ceil(wait)))
    return {
        "Retry-After": seconds,
        "RateLimit-Limit": str(int(limiter.capacity)),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": seconds,
    }


def _over_budget(request: web.Request) -> bool:
    """The agent API's budget per address (anyone may call it); the parties' API has
    none: they authenticate."""
    server = request.app[SERVER]
    limiter = server.agent_limiter
    if limiter is None or not request.path.startswith("/agent/"):
        return False
    return not limiter.allow(peer_key(request.remote or "?"), server.monotonic())


async def _body(request: web.Request) -> dict[str, Any]:
    """Raises: RelayError — too large, or not all there within BODY_DEADLINE (a body
    trickled a byte at a time would hold the connection and a handler for ever)."""
    try:
        async with asyncio.timeout(BODY_DEADLINE):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RelayError(ErrorCode.REQUEST_TOO_LARGE, "request body too large") from None
    except TimeoutError:
        raise RelayError(ErrorCode.REQUEST_TIMEOUT, "the body took too long") from None
    return parse_json(raw)


def _party(request: web.Request) -> Party:
    """The relying party whose TLS client certificate came with the request (checked in
    the handshake against ``--client-ca``). Raises: RelayError(unauthorized)."""
    certificate = _client_certificate(request)
    if certificate is None:
        raise RelayError(ErrorCode.UNAUTHORIZED, "a relying party's client certificate is required")
    party = request.app[SERVER].config.party_with(certificate)
    if party is None:
        raise RelayError(ErrorCode.UNAUTHORIZED, "this client certificate is no party's")
    return party


def _client_certificate(request: web.Request) -> bytes | None:
    """The DER certificate the client presented in the TLS handshake (checked there
    against ``--client-ca``), if it presented one."""
    transport = request.transport
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    if tls is None:
        return None
    der = tls.getpeercert(binary_form=True)
    return der if isinstance(der, bytes) and der else None


# -- the relying-party API: BankID's v6.0 (relay/v6.py) ---------------------------------


def _new_order(
    server: RelayServer, party: Party, kind: OrderKind, start: OrderStart
) -> tuple[RelayOrder, str]:
    token = server.new_token()
    order = RelayOrder(
        ref=server.new_ref(),
        party=party.id,
        kind=kind,
        nonce=secrets.token_bytes(32),
        token_hash=rules.token_hash(token),
        created=server.clock(),
        end_user_ip=start.end_user_ip,
        visible=start.visible,
        visible_format=start.visible_format,
        non_visible=start.non_visible,
        return_url=start.return_url,
        personal_number=start.personal_number,
        token_kinds=start.token_kinds,
        pin_pad=start.pin_pad,
    )
    return order, token


async def _own_order(request: web.Request) -> tuple[RelayOrder, Party]:
    """The party's order the body names. An unknown, another party's or forgotten order
    is ``invalidParameters``, as BankID's (404 is for a wrong path only): another party's
    order does not exist."""
    server = request.app[SERVER]
    party = _party(request)
    ref = parse_ref(await _body(request))
    order = await server.get(ref, server.clock())
    if order is None or order.party != party.id:
        raise RelayError(ErrorCode.INVALID_PARAMETERS, "no such order")
    return order, party


def collect_wire(order: RelayOrder) -> dict[str, object]:
    wire: dict[str, object] = {"orderRef": order.ref, "status": order.phase.status.value}
    hint = v6.hint_word(order.phase.hint, phone=order.phone)
    if hint is not None:
        wire["hintCode"] = hint
    if order.phase is Phase.COMPLETE and order.completion is not None:
        wire["completionData"] = json.loads(order.completion)
    return wire


async def _v6_auth(request: web.Request) -> web.Response:
    return await _v6_start(request, OrderKind.AUTH)


async def _v6_sign(request: web.Request) -> web.Response:
    return await _v6_start(request, OrderKind.SIGN)


async def _v6_start(request: web.Request, kind: OrderKind) -> web.Response:
    server = request.app[SERVER]
    party = _party(request)
    parsed = v6.parse_start(kind, await _body(request))
    start = parsed.start
    if start.return_url is not None and not party.may_return_to(start.return_url):
        raise RelayError(ErrorCode.INVALID_PARAMETERS, "returnUrl is not registered for this party")
    order, token = await _add(server, party, kind, parsed)
    return web.json_response(v6.started(order.ref, token))


async def _v6_phone_auth(request: web.Request) -> web.Response:
    return await _v6_phone(request, OrderKind.AUTH)


async def _v6_phone_sign(request: web.Request) -> web.Response:
    return await _v6_phone(request, OrderKind.SIGN)


async def _v6_phone(request: web.Request, kind: OrderKind) -> web.Response:
    """A phone order: no link; the person's agent finds it (``_agent_phone_orders``)."""
    server = request.app[SERVER]
    party = _party(request)
    order, _ = await _add(server, party, kind, v6.parse_phone(kind, await _body(request)))
    return web.json_response({"orderRef": order.ref})


async def _add(
    server: RelayServer, party: Party, kind: OrderKind, parsed: v6.StartV6
) -> tuple[RelayOrder, str]:
    """A new order for ``parsed``, unless one for the same person is pending (then that
    one is cancelled and this one refused, as BankID does). Raises: RelayError."""
    start = replace(parsed.start, token_kinds=v6.kinds(parsed, server.config.kind_policies))
    order, token = _new_order(server, party, kind, start)
    if parsed.call_initiator is not None:  # found by the agent, never by a link
        order = replace(order, call_initiator=parsed.call_initiator, token_hash=None)
    if parsed.unsupported is not None:  # as BankID's app that cannot: the order fails
        order = rules.advance(order, Event.NOT_SUPPORTED, server.clock())
        order = replace(order, token_hash=None)

    def cancel(o: RelayOrder) -> RelayOrder:
        return rules.advance(o, Event.RP_CANCEL, server.clock())

    busy = await server.run(lambda: server.store.add_alone(order, cancel, server.clock()))
    for ref in busy:
        server.watch.touch(ref)
    if busy:
        log.info("orders %s cancelled: %s started another for the same person", busy, party.id)
        raise RelayError(ErrorCode.ALREADY_IN_PROGRESS, "an order for this person is pending")
    phone = " by phone" if order.phone else ""
    log.info("order %s started for %s (%s%s)", order.ref, party.id, kind, phone)
    return order, token


async def _v6_collect(request: web.Request) -> web.Response:
    order, _ = await _own_order(request)
    return web.json_response(collect_wire(order))


async def _v6_cancel(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    order, _ = await _own_order(request)

    def cancel(o: RelayOrder) -> RelayOrder:
        return rules.advance(o, Event.RP_CANCEL, server.clock())

    try:
        await server.run(lambda: server.store.change(order.ref, cancel, server.clock()))
    except IllegalTransition:
        raise RelayError(ErrorCode.INVALID_PARAMETERS, "the order has ended") from None
    server.watch.touch(order.ref)
    return web.json_response({})


# -- the agent API -------------------------------------------------------------------------


async def _agent_order(request: web.Request) -> web.Response:
    server = request.app[SERVER]
    wire = await _fetch(server, parse_token(await _body(request)))
    return web.json_response(wire)


async def _fetch(server: RelayServer, token: str, *, v2: bool = False) -> dict[str, object]:
    """The agent, given an autostart token, fetches the order: once, within
    START_WITHIN; it gets a secret that binds the order's further calls to it.
    Raises: RelayError(notFound)."""
    secret = secrets.token_urlsafe(rules.TOKEN_BYTES)

    def fetch(o: RelayOrder) -> RelayOrder:
        fetched = rules.advance(o, Event.FETCHED, server.clock())
        return replace(fetched, token_hash=None, agent_hash=rules.token_hash(secret))

    try:
        order = await server.run(
            lambda: server.store.by_token(rules.token_hash(token), fetch, server.clock())
        )
    except IllegalTransition:
        order = None  # too late: the token was for 30 s
    if order is None:  # unknown, used or late: one answer, so a guess learns nothing
        raise RelayError(ErrorCode.NOT_FOUND, "no order for this autostart token")
    party = server.config.parties[order.party]
    log.info("order %s fetched by an agent", order.ref)
    return order_for_agent(order, party, server.config.origin, secret, v2=v2)


def order_for_agent(
    order: RelayOrder, party: Party, origin: str, secret: str, *, v2: bool = False
) -> dict[str, object]:
    """The order as the agent gets it; v2 leaves out what the agent does not use."""
    wire: dict[str, object] = {
        "orderRef": order.ref,
        "agentSecret": secret,
        "type": order.kind.value,
        "relay": origin,
        "party": {"id": party.id, "name": party.name},
        "nonce": b64url(order.nonce),
        "userVisibleDataFormat": order.visible_format,
    }
    if not v2:
        wire["expiresAt"] = order.deadline.isoformat()
    if order.return_url is not None:  # registered for the party: the agent opens only this
        wire["returnUrl"] = order.return_url
    if order.call_initiator is not None:  # a phone order: who called whom, to show
        wire["callInitiator"] = order.call_initiator
    if order.visible is not None:
        wire["userVisibleData"] = base64.b64encode(order.visible.encode()).decode()
    if order.non_visible is not None:
        wire["userNonVisibleData"] = base64.b64encode(order.non_visible).decode()
    requirement: dict[str, object] = {}
    if order.personal_number is not None:
        requirement["personalNumber"] = order.personal_number
    if order.token_kinds:
        requirement["tokenKinds"] = list(order.token_kinds)
    if order.pin_pad:
        requirement["pinPad"] = True
    if requirement:
        wire["requirement"] = requirement
    return wire


async def _agent_phone_challenge(request: web.Request) -> web.Response:
    """A one-time challenge an agent signs to show which BankIDs it holds (good for
    ``rules.CHALLENGE_TTL``, kept hashed)."""
    server = request.app[SERVER]
    if await _body(request):
        raise RelayError(ErrorCode.INVALID_PARAMETERS, "the body must be {}")
    challenge = secrets.token_urlsafe(rules.TOKEN_BYTES)
    expires = server.clock() + rules.CHALLENGE_TTL
    await server.run(lambda: server.store.add_challenge(rules.token_hash(challenge), expires))
    return web.json_response({"challenge": challenge, "expiresAt": expires.isoformat()})


async def _agent_phone_orders(request: web.Request) -> web.Response:
    """The phone orders waiting for the people whose identification keys signed the
    relay's challenge (``eidcore.phoneproof``), each with an autostart token the agent
    fetches it with. The challenge is spent by this call whatever the answer; one answer
    (404) for an unknown, used or late challenge."""
    server = request.app[SERVER]
    challenge, proofs = parse_proofs(await _body(request))
    now = server.clock()
    taken = await server.run(lambda: server.store.take_challenge(rules.token_hash(challenge), now))
    if not taken:
        raise RelayError(ErrorCode.NOT_FOUND, "no such challenge")
    signed = phoneproof.proof_bytes(server.config.origin, challenge)
    numbers = []
    for n, proof in enumerate(proofs):
        try:
            person = await asyncio.to_thread(
                rp.verify_possession,
                proof.chain,
                proof.signature,
                signed,
                trust_anchors=server.config.trust,
                now=now,
            )
        except rp.VerificationError as exc:
            log.info("a phone-order proof was refused: %s", type(exc).__name__)
            raise RelayError(
                ErrorCode.VERIFICATION_FAILED, f"proofs[{n}]: {type(exc).__name__}"
            ) from None
        numbers.append(person.personal_number)
    found = await server.run(
        lambda: server.store.waiting_for(numbers, server.new_token, server.clock())
    )
    orders = []
    for order, token in found:
        party = server.config.parties.get(order.party)
        if party is None:
            continue
        orders.append(
            {
                "autoStartToken": token,
                "type": order.kind.value,
                "party": {"id": party.id, "name": party.name},
                "callInitiator": order.call_initiator,
                "personalNumber": order.personal_number,
            }
        )
    log.info("%d phone orders shown to an agent", len(orders))
    return web.json_response({"orders": orders})


async def _agent_progress(request: web.Request) -> web.Response:
    return await _agent_report(request, "progress")


async def _agent_complete(request: web.Request) -> web.Response:
    return await _agent_report(request, "complete")


async def _agent_fail(request: web.Request) -> web.Response:
    return await _agent_report(request, "fail")


async def _agent_status(request: web.Request) -> web.Response:
    """Whether the order is still wanted (the site may have cancelled it, or it expired):
    the agent closes its dialog when not."""
    server = request.app[SERVER]
    report = parse_report("status", await _body(request))
    order = await server.get(report.order_ref, server.clock())
    if order is None or not rules.tokens_match(report.agent_secret, order.agent_hash):
        raise RelayError(ErrorCode.NOT_FOUND, "no such order for this agent")
    wire: dict[str, object] = {"orderRef": order.ref, "status": order.phase.status.value}
    if order.phase.hint is not None:
        wire["hintCode"] = order.phase.hint.value
    return web.json_response(wire)


async def _agent_report(request: web.Request, what: str) -> web.Response:
    server = request.app[SERVER]
    report = parse_report(what, await _body(request))
    order = await _report(server, report, what, request.remote or "")
    return web.json_response({"orderRef": order.ref, "status": order.phase.status.value})


# The v1 result is the whole document; v2's is rebuilt from the order (relay.channel).
Document = Callable[[RelayOrder], xmlsig.Built]


async def _report(
    server: RelayServer,
    report: AgentReport,
    what: str,
    remote: str,
    document: Document | None = None,
) -> RelayOrder:
    """Progress, fail or complete, from an agent that holds the order's secret. A result
    that does not verify ends the order all the same. Raises: RelayError."""
    now = server.clock()
    outcome: Event | tuple[rp.VerifiedXml, bytes | None] | None = None
    signature = report.signature
    if what == "complete":
        # verified, and the issuer asked, before the order's row is locked: the OCSP
        # answer may take its timeout, and nothing should wait on the row meanwhile
        order = await server.get(report.order_ref, now)
        if order is None or not rules.tokens_match(report.agent_secret, order.agent_hash):
            raise RelayError(ErrorCode.NOT_FOUND, "no such order for this agent")
        try:
            checked: str | xmlsig.Built | None = signature
            if document is not None:  # rebuilt here: verified without parsing it again
                checked = document(order)
                signature = base64.b64encode(checked.document).decode("ascii")
            assert checked is not None
            outcome = await asyncio.to_thread(_verify, order, checked, server.config, now)
        except rp.VerificationError as exc:
            log.warning(
                "order %s: the agent's result did not verify: %s: %s",
                order.ref,
                type(exc).__name__,
                exc,
            )
            reason = type(exc).__name__
            outcome = Event.NO_CREDENTIAL if isinstance(exc, _CERTIFICATE_REASONS) else None
            outcome = outcome or Event.AGENT_FAILED
        else:
            reason = ""

    def change(o: RelayOrder) -> RelayOrder:
        if not rules.tokens_match(report.agent_secret, o.agent_hash):
            raise RelayError(ErrorCode.NOT_FOUND, "no such order for this agent")
        now = server.clock()
        if what == "progress":
            return rules.advance(o, Event.USER_SIGN, now)
        if what == "fail":
            assert report.hint is not None
            return rules.advance(o, _FAILURE_EVENTS[report.hint], now)
        if isinstance(outcome, Event):  # did not verify: the order ends all the same
            return rules.advance(o, outcome, now)
        assert outcome is not None and signature is not None and report.uhi is not None
        verified, ocsp = outcome
        done = rules.advance(o, Event.COMPLETED, now)
        wire = completion_data(verified, signature, remote, report.uhi, ocsp)
        return replace(done, completion=json.dumps(wire, sort_keys=True))

    try:
        changed: RelayOrder | None = await server.run(
            lambda: server.store.change(report.order_ref, change, server.clock())
        )
    except IllegalTransition:
        raise RelayError(ErrorCode.NOT_FOUND, "the order has ended") from None
    if changed is None:
        raise RelayError(ErrorCode.NOT_FOUND, "no such order for this agent")
    server.watch.touch(changed.ref)
    if isinstance(outcome, Event):
        raise RelayError(ErrorCode.VERIFICATION_FAILED, reason)
    return changed


def completion_data(
    verified: rp.VerifiedXml, signature: str, agent_ip: str, uhi: str, ocsp: bytes | None
) -> dict[str, object]:
    """``completionData`` as BankID's v6.0 gives it: ``user`` read from the certificate
    the relay verified, ``device`` as the relay saw the agent (its address) and as the
    agent names itself to this party (``uhi``), the certificate's issue date, and the
    XML signature as verified, and the issuer's OCSP answer on the certificate, bound
    to the signature by its nonce. Nothing else an agent sent is passed on: a site might
    take it for the relay's word."""
    person = verified.person
    wire: dict[str, object] = {
        "user": {
            "personalNumber": person.personal_number,
            "name": person.name,
            "givenName": person.given_name,
            "surname": person.surname,
        },
        "device": {"ipAddress": agent_ip, "uhi": uhi},
        "bankIdIssueDate": verified.certificate.not_valid_before_utc.strftime("%Y-%m-%dZ"),
        "stepUp": {"mrtd": False},
        "signature": signature,
    }
    if ocsp is not None:
        wire["ocspResponse"] = base64.b64encode(ocsp).decode("ascii")
    return wire


def _verify(
    order: RelayOrder, signature: str | xmlsig.Built, config: RelayConfig, now: dt.datetime
) -> tuple[rp.VerifiedXml, bytes | None]:
    """The relay itself checks the agent's XML signature with the rp kit (the document,
    the chain, key usage, what was signed and for whom) and that it meets the order's
    requirements, then asks the issuer about the certificate (``_ocsp``). Blocking.
    Raises: rp.VerificationError."""
    party = config.parties[order.party]
    verified = rp.verify_xml_signature(
        signature,
        order_type=order.kind.value,
        expected_origin=config.origin,
        party=party.id,
        nonce=order.nonce,
        order_ref=order.ref,
        trust_anchors=list(config.trust),
        now=now,
        user_visible_data=order.visible,
        user_non_visible_data=order.non_visible,
        kind_policies=config.kind_policies,
    )
    content = verified.content
    if content.visible_format != order.visible_format:
        raise rp.DataMismatch("the text was shown in another format than the site asked")
    if content.party_name != party.name:
        raise rp.WrongParty("signed naming the party otherwise than the relay does")
    if (
        order.personal_number is not None
        and verified.person.personal_number != order.personal_number
    ):
        raise rp.MalformedResponse("signed by another person than the order required")
    if order.token_kinds and verified.token_kind not in order.token_kinds:
        # the kind is the certificate's policy; one without (issued before kinds were
        # written) meets no kind requirement
        raise rp.WrongTokenKind("signed with a kind of BankID the order did not allow")
    return verified, _ocsp(verified, config, now)


def _ocsp(verified: rp.VerifiedXml, config: RelayConfig, now: dt.datetime) -> bytes | None:
    """The issuer's answer on the certificate, asked with a nonce bound to the signature
    (``rp.ocsp_nonce``); None where it cannot be had and the relay does not require it.
    Raises: rp.CertificateRevoked, rp.RevocationUnknown (required), rp.UntrustedChain."""
    try:
        return rp.fetch_ocsp_evidence(verified, config.trust, config.ocsp.policy, now)
    except rp.RevocationUnknown as exc:
        if config.ocsp.required:
            raise
        log.info("no OCSP answer on a result (%s); not required here", exc)
        return None


# -- the agent API v2: one WebSocket per order (relay.channel, ADR 0023) --------------------


async def _agent_channel(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_STEP_BYTES, compress=False
    )
    if not ws.can_prepare(request).ok:
        raise RelayError(ErrorCode.INVALID_PARAMETERS, "a WebSocket upgrade is required")
    await ws.prepare(request)
    channel = _Channel(request.app[SERVER], ws, request.remote or "")
    try:
        await channel.run()
    except RelayError as exc:
        log.info("agent channel of %s: %s", channel.ref or "no order", exc)
        await channel.end({"errorCode": exc.code.value, "details": exc.details})
    except (TimeoutError, ConnectionError):
        pass  # the agent went; its order ends by time or by a new connection's resume
    except Exception:  # a fault of ours: said once, and the agent hears internalError
        log.exception("agent channel of %s failed", channel.ref or "no order")
        await channel.end({"errorCode": ErrorCode.INTERNAL_ERROR.value, "details": "internal"})
    await ws.close()
    return ws


_WOKEN = AgentStep(Step.PROGRESS)  # a marker, never taken as a message


class _Channel:
    """One agent's connection for one order, its messages taken as ``STAGES`` allow."""

    def __init__(self, server: RelayServer, ws: web.WebSocketResponse, remote: str) -> None:
        self._server, self._ws, self._remote = server, ws, remote
        self.stage = Stage.NEW
        self.ref, self._secret = "", ""
        self._result: AgentStep | None = None
        self._holding = contextlib.ExitStack()  # the watch's hold on the order, once known
        self._ended = asyncio.Event()

    async def run(self) -> None:
        """Raises: RelayError (answered, then the connection closes)."""
        with self._holding:
            async with asyncio.timeout(FIRST_MESSAGE_SECONDS):
                first = await self._next()
            if first is None or not await self._take(first):
                return
            async with asyncio.timeout(rules.ORDER_TTL.total_seconds() + 2 * FIRST_MESSAGE_SECONDS):
                while not self._ws.closed:
                    step = await self._next_or(self._ended)
                    if step is _WOKEN:  # the order changed: ended at the relay?
                        if await self._said_end():
                            return
                    elif step is None or not await self._take(step):
                        return

    def _hold(self, ref: str) -> None:
        """This connection holds ``ref``: a change to it here wakes it. Taken before the
        order goes to the agent — taken after, a site's cancel while the send was under
        way found nobody to tell (seen as a test waiting 10 s for the push)."""
        self.ref = ref
        self._ended = self._holding.enter_context(self._server.watch.held(ref))

    async def _next(self) -> AgentStep | None:
        """The agent's next message; None when the connection closed."""
        message = await self._ws.receive()
        if message.type is WSMsgType.TEXT:
            return parse_step(message.data.encode("utf-8", "surrogatepass"))
        if message.type is WSMsgType.BINARY:
            raise RelayError(ErrorCode.INVALID_PARAMETERS, "messages are JSON text")
        return None

    async def _next_or(self, ended: asyncio.Event) -> AgentStep | None:
        """The agent's next message, None when it went, or _WOKEN when ``ended`` is set."""
        receiving = asyncio.ensure_future(self._next())
        waiting = asyncio.ensure_future(ended.wait())
        try:
            done, _ = await asyncio.wait({receiving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if receiving in done:
            return receiving.result()
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
        ended.clear()
        return _WOKEN

    async def _take(self, step: AgentStep) -> bool:
        """Whether the connection stays. Raises: RelayError."""
        if step.step not in STAGES.get(self.stage, frozenset()):
            raise RelayError(ErrorCode.INVALID_PARAMETERS, f"{step.step.value} is not taken now")
        server = self._server
        if step.step is Step.FETCH:
            wire = await _fetch(server, step.token, v2=True)
            self._hold(str(wire["orderRef"]))
            self._secret, self.stage = str(wire["agentSecret"]), Stage.HELD
            await self._ws.send_json(dumps=_compact, data={"order": wire})
            return True
        if step.step is Step.RESUME:
            order = await server.get(step.order_ref, server.clock())
            if order is None or not rules.tokens_match(step.agent_secret, order.agent_hash):
                raise RelayError(ErrorCode.NOT_FOUND, "no such order for this agent")
            self._hold(order.ref)
            self._secret, self.stage = step.agent_secret, Stage.HELD
            if not order.phase.pending:
                await self.end(_end_wire(order))
                return False
            await self._ws.send_json(dumps=_compact, data=_end_wire(order))
            return True
        report = AgentReport(self.ref, self._secret, hint=step.hint)
        if step.step is Step.PROGRESS:
            try:
                await _report(server, report, "progress", self._remote)
            except RelayError:
                # ended meanwhile (a site's cancel crossing this hint): say how it ended,
                # not that the order is gone — the agent waits for an end, not an error
                if await self._said_end():
                    return False
                raise
            return True
        if step.step is Step.FAIL:
            await self.end(_end_wire(await _report(server, report, "fail", self._remote)))
            return False
        if step.step is Step.RESULT:
            chain = server.chains.get(step.chain_digest)
            if chain is None:
                self._result, self.stage = step, Stage.WANT_CHAIN
                await self._ws.send_json(dumps=_compact, data={"need": "chain"})
                return True
            await self._complete(step, chain)
            return False
        assert step.step is Step.CHAIN and self._result is not None
        if xmlsig.chain_digest(step.chain) != self._result.chain_digest:
            raise RelayError(ErrorCode.INVALID_PARAMETERS, "chain is not the one the result named")
        await self._complete(self._result, step.chain)
        return False

    async def _complete(self, result: AgentStep, chain: tuple[bytes, ...]) -> None:
        server = self._server

        def document(order: RelayOrder) -> xmlsig.Built:
            name = server.config.parties[order.party].name
            origin = server.config.origin
            return rebuilt(order, name, origin, result.version, chain, result.signature_value)

        report = AgentReport(self.ref, self._secret, uhi=result.uhi)
        order = await _report(server, report, "complete", self._remote, document)
        server.chains.put(result.chain_digest, chain)
        await self.end(_end_wire(order))

    async def _said_end(self) -> bool:
        """Whether the order ended (the agent is told so); a change of this
        connection's own making (its progress) leaves it pending."""
        server = self._server
        order = await server.get(self.ref, server.clock())
        if order is not None and order.phase.pending:
            return False
        if order is not None:
            await self.end(_end_wire(order))
        return True

    async def end(self, wire: dict[str, object]) -> None:
        if not self._ws.closed:
            with contextlib.suppress(ConnectionError):
                await self._ws.send_json(dumps=_compact, data=wire)


def _end_wire(order: RelayOrder) -> dict[str, object]:
    wire: dict[str, object] = {"status": order.phase.status.value}
    if order.phase.hint is not None:
        wire["hintCode"] = order.phase.hint.value
    return wire
