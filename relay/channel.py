"""The agent API v2's parts that are not HTTP: one WebSocket per order (ADR 0023).

An agent opens ``/agent/v2/order``, fetches its order with the autostart token, and keeps
the connection while the person decides: the relay tells it at once when the order ends
there (the site cancelled it, time ran out), so no status question is asked every second.
Its result is the signature value alone, with the name of the chain that made it: the
relay rebuilds the XML document byte for byte (``eidcore.xmlsig.prepare``, the agent's own
builder) from what it already holds, and asks for the chain only when it has not seen it.

- ``STAGES``: which message may come when (a table); anything else ends the connection;
- ``Watch``: which orders have an agent connected to this process, woken when one ends —
  at once when this process ended it, within ``WATCH_SECONDS`` when another process or
  time did (one read for all of them);
- ``ChainCache``: the chains this process has verified, by ``xmlsig.chain_digest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator

from cryptography import x509

import rp
from eidcore import xmlsig
from eidcore.signeddata import OrderKind
from relay.requests import Step
from relay.rules import RelayOrder

__all__ = ["STAGES", "WATCH_SECONDS", "ChainCache", "Stage", "Watch", "rebuilt"]

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0  # orders ended by another process or by time are seen this soon
HEARTBEAT_SECONDS = 30.0  # a ping keeps middleboxes from dropping an idle connection
FIRST_MESSAGE_SECONDS = 10.0  # a connection that says nothing is closed


class Stage(enum.Enum):
    NEW = "new"  # connected, no order yet
    HELD = "held"  # the order is the agent's; the person is asked
    WANT_CHAIN = "want chain"  # a result came naming a chain the relay has not seen


STAGES: dict[Stage, frozenset[Step]] = {
    Stage.NEW: frozenset({Step.FETCH, Step.RESUME}),
    Stage.HELD: frozenset({Step.PROGRESS, Step.RESULT, Step.FAIL}),
    Stage.WANT_CHAIN: frozenset({Step.CHAIN, Step.FAIL}),
}


class Watch:
    """Events for the orders whose agents are connected here. ``ended_among``: the
    store's read of which orders ended (blocking; run in a thread by ``run``)."""

    def __init__(
        self,
        ended_among: Callable[[list[str], dt.datetime], set[str]],
        every: float = WATCH_SECONDS,
    ) -> None:
        self._ended_among, self._every = ended_among, every
        self._events: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def held(self, ref: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events.setdefault(ref, set()).add(event)
        try:
            yield event
        finally:
            events = self._events.get(ref, set())
            events.discard(event)
            if not events:
                self._events.pop(ref, None)

    def touch(self, ref: str) -> None:
        """The order ``ref`` changed in this process: its connections look again."""
        for event in self._events.get(ref, ()):
            event.set()

    async def run(self, clock: Callable[[], dt.datetime]) -> None:
        """Every ``every`` seconds, the orders held here that ended elsewhere or by time."""
        while True:
            await asyncio.sleep(self._every)
            refs = list(self._events)
            if not refs:
                continue
            try:
                ended = await asyncio.to_thread(self._ended_among, refs, clock())
            except Exception as exc:  # the database away: the next round tries again
                log.warning("watching the agents' orders: %s", type(exc).__name__)
                continue
            for ref in ended:
                self.touch(ref)


class ChainCache:
    """Certificate chains verified here, by digest, the most recent ``size``. A chain
    is public; a miss costs one more message, never a wrong result (the digest names
    the bytes)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._chains: OrderedDict[str, tuple[bytes, ...]] = OrderedDict()

    def get(self, digest: str) -> tuple[bytes, ...] | None:
        chain = self._chains.get(digest)
        if chain is not None:
            self._chains.move_to_end(digest)
        return chain

    def put(self, digest: str, chain: tuple[bytes, ...]) -> None:
        self._chains[digest] = chain
        self._chains.move_to_end(digest)
        while len(self._chains) > self._size:
            self._chains.popitem(last=False)


_FUNC = {OrderKind.AUTH: xmlsig.FuncId.IDENTIFICATION, OrderKind.SIGN: xmlsig.FuncId.SIGNING}


def rebuilt(
    order: RelayOrder,
    party_name: str,
    origin: str,
    version: str,
    chain: tuple[bytes, ...],
    signature_value: bytes,
) -> xmlsig.Built:
    """The XML signature document the agent signed for ``order``, made again
    from what the relay holds, the agent's version and its chain: the agent builds it
    with the same ``xmlsig.prepare`` from what its dialog showed, so a signature value
    over anything else does not verify. Raises: rp.MalformedResponse (a chain whose leaf
    cannot sign a document, or one that is not DER)."""
    try:
        algorithm = xmlsig.algorithm_for(x509.load_der_x509_certificate(chain[0]))
    except (ValueError, xmlsig.XmlRefused):
        raise rp.MalformedResponse("the chain's leaf cannot have signed the result") from None
    content = xmlsig.SignedContent(
        func=_FUNC[order.kind],
        visible=order.visible,
        visible_format=order.visible_format,
        non_visible=order.non_visible,
        party_id=order.party,
        party_name=party_name,
        origin=origin,
        nonce=order.nonce,
        order_ref=order.ref,
        version=version,
    )
    try:
        return xmlsig.build(content, chain, algorithm, signature_value)
    except ValueError:
        raise rp.MalformedResponse("the chain is not one a document can hold") from None
