"""One order's connection to its relay: the agent API v2, a WebSocket (ADR 0023).

The agent fetches the order on it, says when the person is asked, and posts the end; the
relay tells it on the same connection the moment the order ends there (``ended``), so
nothing is asked every second while a dialog is open. The result is the signature value
and the name of the chain that made it (``xmlsig.chain_digest``): the relay rebuilds the
XML document from what it holds and asks for the chain only when it has not seen it.

Everything the relay sends is hostile input, as at ``client``: bounded, strict JSON, one
of the few messages this API has. A connection that drops while the person is asked is
made again when the end is posted (``resume``, with the order's secret); a cancel the
relay sent meanwhile is then learnt from the resume's answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from agent.autostart.errors import (
    RelayAnswerInvalid,
    RelayNotAllowed,
    RelayOrderGone,
    RelayUnreachable,
)
from eidcore import strictjson, xmlsig

__all__ = ["CHANNEL_PATH", "OrderChannel"]

log = logging.getLogger(__name__)

CHANNEL_PATH = "/agent/v2/order"
MAX_MESSAGE = 512 * 1024  # the order's texts at their limits, with room
ANSWER_SECONDS = 20.0  # a relay that trickles or says nothing is given up on
_DROPPED: dict[str, Any] = {}  # the reader's word for a connection that went


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class OrderChannel:
    """Opened by ``RelayClient.channel``; ``fetch`` first, then ``progress``, and one
    of ``complete`` or ``fail``. ``ended`` is set when the relay says the order ended."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        relay: str,
        *,
        proxy: str | None,
        proxy_auth: aiohttp.BasicAuth | None,
    ) -> None:
        self._session, self._relay = session, relay
        self._proxy, self._proxy_auth = proxy, proxy_auth
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._resume: dict[str, str] | None = None
        self.ended = asyncio.Event()
        self.end: dict[str, Any] | None = None  # the relay's last word on the order

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()

    async def fetch(self, token: str) -> dict[str, Any]:
        """The relay's order for ``token`` (checked by the caller, as v1's).
        Raises: RelayNotAllowed, RelayUnreachable, RelayOrderGone, RelayAnswerInvalid."""
        await self._connect()
        reply = await self._ask({"fetch": token})
        order = reply.get("order")
        if not isinstance(order, dict):
            raise self._refusal(reply)
        ref, secret = order.get("orderRef"), order.get("agentSecret")
        if not isinstance(ref, str) or not isinstance(secret, str):
            raise RelayAnswerInvalid(self._relay, "orderRef or agentSecret")
        self._resume = {"orderRef": ref, "agentSecret": secret}
        self._reader = asyncio.create_task(self._read())
        return order

    async def progress(self) -> None:
        """The person is asked (``userSign``): a hint only, lost with a dropped connection."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self._ws.send_str(_compact({"progress": "userSign"}))

    async def complete(
        self, signature_value: bytes, chain: Sequence[bytes], version: str, uhi: str
    ) -> None:
        """The result; the chain goes only when the relay asks for it.
        Raises: RelayUnreachable, RelayOrderGone, RelayAnswerInvalid (it did not verify)."""
        result = {
            "signatureValue": base64.b64encode(signature_value).decode("ascii"),
            "chain": xmlsig.chain_digest(chain),
            "version": version,
            "uhi": uhi,
        }
        reply = await self._post({"result": result})
        if reply.get("need") == "chain":
            reply = await self._ask({"chain": [base64.b64encode(der).decode() for der in chain]})
        self._final(reply, "complete")

    async def fail(self, hint: str) -> None:
        """Why the order ended here. Raises: as ``complete``."""
        self._final(await self._post({"fail": hint}), "failed")

    # -- the connection ---------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            self._ws = await self._session.ws_connect(
                self._relay + CHANNEL_PATH,
                max_msg_size=MAX_MESSAGE,
                compress=0,
                autoping=True,
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
            )
        except (RelayNotAllowed, RelayUnreachable):
            raise
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 429:
                raise RelayUnreachable(self._relay, "HTTP 429") from None
            raise RelayUnreachable(self._relay, f"no agent API v2 (HTTP {exc.status})") from None
        except aiohttp.ClientConnectorCertificateError:
            raise RelayUnreachable(self._relay, "its certificate is not trusted") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RelayUnreachable(self._relay, type(exc).__name__) from None

    async def _post(self, message: Mapping[str, object]) -> dict[str, Any]:
        """Send the end of the order, on a new connection (``resume``) when the first one
        went. Raises: as ``complete``."""
        if self._ws is None or self._ws.closed or self._reader is None or self._reader.done():
            await self._reconnect()
        if self.end is not None:  # ended at the relay meanwhile
            raise RelayOrderGone()
        return await self._ask(message)

    async def _reconnect(self) -> None:
        assert self._resume is not None, "fetch first"
        if self._reader is not None:
            self._reader.cancel()
        self._reader, self._replies = None, asyncio.Queue()
        if self._ws is not None:
            await self._ws.close()
        log.info("the relay's connection went; resuming the order")
        await self._connect()
        reply = await self._ask({"resume": self._resume})
        if reply.get("status") != "pending":
            self._final(reply, "pending")  # raises: it ended there
        self._reader = asyncio.create_task(self._read())

    async def _ask(self, message: Mapping[str, object]) -> dict[str, Any]:
        """Send, and the next message back. Raises: RelayUnreachable, RelayAnswerInvalid."""
        assert self._ws is not None
        try:
            await self._ws.send_str(_compact(message))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise RelayUnreachable(self._relay, type(exc).__name__) from None
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                if self._reader is not None and not self._reader.done():
                    reply = await self._replies.get()
                else:
                    reply = await self._receive()
        except TimeoutError:
            raise RelayUnreachable(self._relay, "no answer in time") from None
        if reply is _DROPPED:
            raise RelayUnreachable(self._relay, "the connection closed")
        return reply

    async def _read(self) -> None:
        """Everything the relay sends while the order is the person's: an end is noted
        at once (``ended``); each message is also a reply for ``_ask``."""
        while True:
            try:
                message = await self._receive()
            except RelayAnswerInvalid as exc:
                log.info("the relay's message was refused: %s", exc)
                message = _DROPPED
            if message is _DROPPED:
                await self._replies.put(message)
                return
            if "status" in message and message["status"] != "pending":
                self.end = message
                self.ended.set()
            await self._replies.put(message)

    async def _receive(self) -> dict[str, Any]:
        """The next message, or _DROPPED. Raises: RelayAnswerInvalid."""
        assert self._ws is not None
        try:
            message = await self._ws.receive()
        except (ConnectionError, aiohttp.ClientError, TimeoutError):
            return _DROPPED
        if message.type is not aiohttp.WSMsgType.TEXT:
            return _DROPPED
        try:
            value = strictjson.loads(message.data.encode("utf-8", "surrogatepass"), max_depth=8)
        except strictjson.JsonRefused as exc:
            raise RelayAnswerInvalid(self._relay, f"not JSON ({exc.reason})") from None
        if not isinstance(value, dict):
            raise RelayAnswerInvalid(self._relay, "not a JSON object")
        return value

    def _final(self, reply: Mapping[str, Any], expected: str) -> None:
        """The relay's answer to the end: ``expected`` status, else why not.
        Raises: RelayOrderGone, RelayAnswerInvalid."""
        if reply.get("status") == expected:
            return
        if "status" in reply and reply["status"] in ("failed", "complete", "pending"):
            raise RelayOrderGone()  # it ended there first (cancelled, expired)
        raise self._refusal(reply)

    def _refusal(self, reply: Mapping[str, Any]) -> Exception:
        code = str(reply.get("errorCode"))[:40]
        if code == "notFound":
            return RelayOrderGone()
        if code in ("tooManyRequests", "maintenance", "internalError"):
            return RelayUnreachable(self._relay, code)
        return RelayAnswerInvalid(self._relay, code)
