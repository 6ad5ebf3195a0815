"""One order that came by link, from fetch to result: the relay's order becomes an order of
the agent's own machine (the same dialogs, credentials and signing as the bridge's), its
progress is reported so the website's ``collect`` shows hints, and its end is posted."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from agent.autostart.client import FetchedOrder, RelayClient
from agent.autostart.errors import AutostartError
from agent.orders import AlreadyInProgress, Order, OrderRequest, Phase
from agent.orders.service import OrderService
from agent.tokens.model import TokenKind

__all__ = ["POLL_SECONDS", "run_order"]

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often the order is looked at while it runs (only then)

# How an order that did not complete is reported (the relay's hint words).
_FAILURE_HINTS = {
    Phase.USER_CANCELLED: "userCancel",
    Phase.CERTIFICATE_ERR: "certificateErr",
}


def request_for(order: FetchedOrder) -> OrderRequest:
    return OrderRequest(
        kind=order.kind, origin=order.relay, nonce=order.nonce,
        personal_number=order.personal_number,
        token_kinds=frozenset(TokenKind(k) for k in order.token_kinds) or None,
        user_visible_data=order.visible, user_visible_format=order.visible_format,
        user_non_visible_data=order.non_visible, party=order.party,
        party_name=order.party_name,
    )  # fmt: skip


async def run_order(token: str, client: RelayClient, service: OrderService,
                    clock: Callable[[], dt.datetime]) -> Order:  # fmt: skip
    """Fetch, ask, sign, post. Raises: AutostartError (nothing was signed, or the relay
    could not be told; the person is told by the caller)."""
    fetched = await client.fetch(token)
    log.info("order %s fetched from %s for %s", fetched.ref, fetched.relay, fetched.party)
    try:
        order = service.start(request_for(fetched))
    except AlreadyInProgress:
        await client.fail(fetched, "startFailed")
        raise
    reported = False
    while True:
        order = service.book.get(order.ref, clock())
        if order.phase is Phase.USER_SIGN and not reported:
            reported = True
            try:
                await client.progress(fetched)
            except AutostartError as exc:  # a hint only: the order goes on
                log.info("order %s: progress not reported (%s)", order.ref, exc)
        if not order.phase.pending:
            break
        await asyncio.sleep(POLL_SECONDS)
    if order.phase is Phase.COMPLETE and order.completion is not None:
        await client.complete(fetched, order.completion.wire())
        log.info("order %s completed at %s", order.ref, fetched.relay)
    else:
        await client.fail(fetched, _FAILURE_HINTS.get(order.phase, "startFailed"))
        log.info("order %s ended %s", order.ref, order.phase.name)
    return order
