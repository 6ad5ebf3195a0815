"""The localhost bridge: aiohttp application (API in docs/bridge-api.md and openapi.yaml).

The middleware applies BRIDGE-SECURITY.md in order, before any handler runs: Host first
(421, nothing else happens), then the peer's OS user, then — for anything that can change
state — Origin, content type, the custom header, size and rate. Handlers only translate
between the wire and the order service. Every refusal is ``{errorCode, details}``; an
unexpected exception becomes ``internalError`` with the trace in the log only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agent import __version__
from agent.bridge import limits
from agent.bridge.errors import BridgeError, ErrorCode
from agent.bridge.peer import peer_uid
from agent.bridge.requests import parse_json, parse_order, parse_ref
from agent.bridge.security import (
    CUSTOM_HEADER,
    OriginPolicy,
    cors_headers,
    host_allowed,
    preflight_headers,
)
from agent.orders import (
    AlreadyInProgress,
    IllegalTransition,
    Order,
    OrderKind,
    OrderService,
    UnknownOrder,
)
from eidcore.jsonapi import ApiError, ErrorShell, error_response
from eidcore.ratelimit import RateLimiter

log = logging.getLogger(__name__)

API_VERSION = 1
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class BridgeConfig:
    port: int
    policy: OriginPolicy = field(default_factory=OriginPolicy)
    check_peer_user: bool = True
    update_required: Callable[[], bool] = lambda: False
    refused: Callable[[], None] = lambda: None  # an order was refused: tell the person why
    update_state: Callable[[], str] = lambda: "notChecked"
    monotonic: Callable[[], float] = time.monotonic


SERVICE = web.AppKey("service", OrderService)
CONFIG = web.AppKey("config", BridgeConfig)
LIMITERS = web.AppKey("limiters", dict[str, RateLimiter])


def build_app(service: OrderService, config: BridgeConfig) -> web.Application:
    app = web.Application(
        middlewares=[_guard],
        client_max_size=limits.MAX_BODY_BYTES,
        handler_args={"max_field_size": 8190},
    )
    app[SERVICE] = service
    app[CONFIG] = config
    app[LIMITERS] = {
        "start": RateLimiter(*limits.START_BUCKET_PER_ORIGIN, limits.MAX_TRACKED_ORIGINS),
        "start-global": RateLimiter(*limits.START_BUCKET_GLOBAL, 1),
        "poll": RateLimiter(*limits.POLL_BUCKET_PER_ORIGIN, limits.MAX_TRACKED_ORIGINS),
    }
    app.router.add_get("/v1/info", _info)
    app.router.add_post("/v1/auth", _auth)
    app.router.add_post("/v1/sign", _sign)
    app.router.add_post("/v1/collect", _collect)
    app.router.add_post("/v1/cancel", _cancel)
    app.on_response_prepare.append(_strip_server_header)
    return app


async def _strip_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    # "Server: Python/3.x aiohttp/3.y" tells any page our library versions and costs
    # bytes on every response.
    response.headers.popall("Server", None)


def _error(exc: BridgeError, origin: str | None = None) -> web.Response:
    return error_response(exc, cors_headers(origin) if origin else None)


def _refused(request: web.Request, exc: ApiError) -> web.Response:
    log.info("refused %s %s: %s", request.method, request.path, exc)
    origins = request.headers.getall("Origin", [])  # one: the guard checked
    acceptable = _acceptable(request.app[CONFIG].policy, origins[0] if origins else None)
    return error_response(exc, cors_headers(acceptable) if acceptable else None)


def _from_http(exc: web.HTTPException) -> BridgeError:
    code = {404: ErrorCode.NOT_FOUND, 413: ErrorCode.REQUEST_TOO_LARGE}.get(
        exc.status, ErrorCode.INVALID_PARAMETERS
    )
    return BridgeError(code, exc.reason, status=exc.status)


_SHELL = ErrorShell(
    refused=_refused,
    from_http=_from_http,
    internal=lambda: BridgeError(ErrorCode.INTERNAL_ERROR, "internal error"),
    log=log,
)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[CONFIG]
    hosts = request.headers.getall("Host", [])
    if len(hosts) != 1 or not host_allowed(hosts[0], config.port):
        return _error(BridgeError(ErrorCode.FORBIDDEN_HOST, "Host must be localhost"))
    if config.check_peer_user and not _same_user(request):
        return _error(BridgeError(ErrorCode.FORBIDDEN_USER, "agent of another user"))
    origins = request.headers.getall("Origin", [])
    if len(origins) > 1:  # no browser sends two; which one counts would be a guess
        return _error(BridgeError(ErrorCode.FORBIDDEN_ORIGIN, "Origin given twice"))
    return await _SHELL.answer(request, lambda: _pass(request, handler, config, origins))


async def _pass(
    request: web.Request, handler: Handler, config: BridgeConfig, origins: list[str]
) -> web.StreamResponse:
    """The request from a host, user and origin header the bridge accepts: the origin
    policy, the method's checks and the rate, then the handler.

    Raises: BridgeError, web.HTTPException (answered by the shell)."""
    origin_header = origins[0] if origins else None
    unmatched = request.match_info.http_exception
    if unmatched is not None and request.method != "OPTIONS":
        raise unmatched  # no such path or method (the API is public): 404/405 first
    if request.method == "OPTIONS":
        return _preflight(request, config, origin_header)
    if request.method == "POST":
        origin = config.policy.check(origin_header)
        _check_post(request)
        bucket = "start" if request.path in {"/v1/auth", "/v1/sign"} else "poll"
        _rate(request, bucket, origin)
        response = await handler(request)
        response.headers.update(cors_headers(origin))
        return response
    response = await handler(request)
    acceptable = _acceptable(config.policy, origin_header)
    if acceptable is not None:  # otherwise no CORS headers: the page cannot read it
        response.headers.update(cors_headers(acceptable))
    return response


def _acceptable(policy: OriginPolicy, origin: str | None) -> str | None:
    try:
        return policy.check(origin)
    except BridgeError:
        return None


def _same_user(request: web.Request) -> bool:
    transport = request.transport
    if transport is None:
        return False
    peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
    if not peer or not local:
        return False
    uid = peer_uid((peer[0], peer[1]), (local[0], local[1]))
    if uid is None:
        # No row (connection gone) or no /proc: refuse on Linux, where it should exist.
        return not os.path.exists("/proc/net/tcp")
    return uid == os.getuid()


def _preflight(request: web.Request, config: BridgeConfig, origin: str | None) -> web.Response:
    try:
        accepted = config.policy.check(origin)
    except BridgeError as exc:
        # No CORS headers: the browser then refuses the real request itself.
        return _error(exc)
    asks_pna = request.headers.get("Access-Control-Request-Private-Network") == "true"
    return web.Response(status=204, headers=preflight_headers(accepted, asks_pna))


def _check_post(request: web.Request) -> None:
    """No simple requests (BRIDGE-SECURITY 4): JSON plus a custom header means a
    cross-origin page cannot send this without a preflight we answered."""
    if request.content_type != "application/json":
        raise BridgeError(
            ErrorCode.INVALID_PARAMETERS, "Content-Type must be application/json", status=415
        )
    if request.headers.get(CUSTOM_HEADER) != "1":
        raise BridgeError(ErrorCode.INVALID_PARAMETERS, f"header {CUSTOM_HEADER}: 1 is required")
    if request.content_length is not None and request.content_length > limits.MAX_BODY_BYTES:
        raise BridgeError(ErrorCode.REQUEST_TOO_LARGE, "request body too large")


def _rate(request: web.Request, bucket: str, origin: str) -> None:
    limiters = request.app[LIMITERS]
    now = request.app[CONFIG].monotonic()
    allowed = limiters[bucket].allow(origin, now)
    if allowed and bucket == "start":
        allowed = limiters["start-global"].allow("*", now)
    if not allowed:
        if bucket == "start":  # a site that keeps starting is not quiet (REPLACE_AFTER)
            request.app[SERVICE].tried(origin)
        raise BridgeError(ErrorCode.RATE_LIMITED, "too many requests")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BridgeError(ErrorCode.REQUEST_TOO_LARGE, "request body too large") from None
    return parse_json(raw)


async def _info(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return web.json_response(
        {
            "version": __version__,
            "apiVersion": API_VERSION,
            "updateRequired": config.update_required(),
            "updateState": config.update_state(),
        }
    )


async def _start(request: web.Request, kind: OrderKind) -> web.Response:
    origin = request.headers["Origin"]  # checked by the guard
    order_request = parse_order(kind, await _body(request), origin)
    if request.app[CONFIG].update_required():
        request.app[CONFIG].refused()
        raise BridgeError(ErrorCode.UPDATE_REQUIRED, "this agent must be updated first")
    try:
        order = request.app[SERVICE].start(order_request)
    except AlreadyInProgress:
        raise BridgeError(ErrorCode.ALREADY_IN_PROGRESS, "another order is active") from None
    return web.json_response({"orderRef": order.ref}, status=201)


async def _auth(request: web.Request) -> web.Response:
    return await _start(request, OrderKind.AUTH)


async def _sign(request: web.Request) -> web.Response:
    return await _start(request, OrderKind.SIGN)


async def _collect(request: web.Request) -> web.Response:
    ref = parse_ref(await _body(request)).order_ref
    try:
        order = request.app[SERVICE].collect(ref, request.headers["Origin"])
    except UnknownOrder:
        raise BridgeError(ErrorCode.NOT_FOUND, "no such order") from None
    return web.json_response(order_wire(order))


async def _cancel(request: web.Request) -> web.Response:
    ref = parse_ref(await _body(request)).order_ref
    try:
        request.app[SERVICE].cancel(ref, request.headers["Origin"])
    except UnknownOrder:
        raise BridgeError(ErrorCode.NOT_FOUND, "no such order") from None
    except IllegalTransition:
        pass  # already finished: cancelling is a no-op, as the page wanted it over anyway
    return web.json_response({})


def order_wire(order: Order) -> dict[str, object]:
    """The collect response. Status and hint come from the phase alone."""
    body: dict[str, object] = {"orderRef": order.ref, "status": order.phase.status.value}
    if order.phase.hint is not None:
        body["hintCode"] = order.phase.hint.value
    if order.completion is not None:
        body["completionData"] = order.completion.wire()
    return body
