"""The error shell of the two JSON APIs websites call — the bridge's and the order relay's:
whatever a handler raises is answered as ``{"errorCode", "details"}`` with an HTTP status,
never as a traceback, and logged in one line (anyone can send a request, so nothing they
send may multiply into pages of log: eidcore/logline.py).

Each API keeps its own codes (an ``ApiError`` subclass with its ``StrEnum``) and says how
its refusals are answered (the bridge adds CORS headers for an origin it accepts, the
relay a ``Retry-After`` when it is flooded) and how aiohttp's own 404, 405 and 413 read in
its words. The one module of the kernel that speaks HTTP: the servers' shared shell —
also how each of them runs (``serve_until_stopped``: through the kernel's connection gate
until SIGTERM or SIGINT).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from eidcore.logline import one_line

__all__ = ["ApiError", "ErrorShell", "error_response", "serve_until_stopped"]


class ApiError(Exception):
    """A refusal: ``code`` (the API's ``StrEnum``), ``details`` (names the field, never
    echoes a value) and the HTTP ``status``."""

    def __init__(self, code: enum.StrEnum, details: str, status: int) -> None:
        super().__init__(f"{code}: {details}")
        self.code, self.details, self.status = code, details, status


def error_response(exc: ApiError, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"errorCode": exc.code.value, "details": exc.details}, status=exc.status, headers=headers
    )


@dataclass(frozen=True)
class ErrorShell:
    """``refused``: the answer to the API's own errors; ``from_http``: aiohttp's
    exceptions (no such path or method, a body too large) as the API's error;
    ``internal``: the error anything else is answered with."""

    refused: Callable[[web.Request, ApiError], web.StreamResponse]
    from_http: Callable[[web.HTTPException], ApiError]
    internal: Callable[[], ApiError]
    log: logging.Logger

    async def answer(
        self, request: web.Request, respond: Callable[[], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await respond()
        except ApiError as exc:
            return self.refused(request, exc)
        except web.HTTPException as exc:
            response = error_response(self.from_http(exc))
            if "Allow" in exc.headers:  # a 405 says what is allowed (RFC 9110, 15.5.6)
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception as exc:  # one line: any peer can send a request
            self.log.error(
                "internal error in %s %s: %s", request.method, request.path, one_line(exc)
            )
            return error_response(self.internal())


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    listening: Callable[[str], None],
    refusal: Callable[[str], bytes] | None = None,
    keepalive: float = 15.0,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> None:
    """``app`` on ``host:port`` through the kernel's gate for servers facing the internet
    (``listener.serve_public``) until SIGTERM or SIGINT; ``listening`` is called with the
    URL once it accepts, and each of ``background`` runs beside it until the end. ``keepalive``: an
    idle kept-alive connection's life (it also bounds a trickled request).

    Raises: OSError (it cannot listen; nothing is left running)."""
    from eidcore import listener

    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=keepalive)
    await runner.setup()
    assert runner.server is not None
    try:
        gate = await listener.serve_public(runner.server, host, port, tls=tls, refusal=refusal)
    except OSError:
        await runner.cleanup()
        raise
    shown = f"[{host}]" if ":" in host else host
    listening(f"{'https' if tls else 'http'}://{shown}:{port}")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(job()) for job in background]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        gate.close()
        await runner.cleanup()
