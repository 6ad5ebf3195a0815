"""One order that came by link, from fetch to result: the relay's order becomes an order of
the agent's own machine (the same dialogs, credentials and signing as the bridge's), its
progress is reported so the website's ``collect`` shows hints, and its end is posted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from agent.autostart.client import FetchedOrder, RelayClient
from agent.autostart.device import uhi
from agent.autostart.errors import AutostartError
from agent.credentials import CredentialKind
from agent.orders import (
    AlreadyInProgress,
    IllegalTransition,
    Order,
    OrderRequest,
    OrderService,
    Phase,
    UnknownOrder,
)
from eidcore.messages import MessageCode

__all__ = ["UpdateNeeded", "accepting", "run_order"]

log = logging.getLogger(__name__)

ASK_RELAY_SECONDS = 1.0  # how often the relay is asked whether the site still wants it

# How an order that did not complete is reported (the relay's hint words).
_FAILURE_HINTS = {
    Phase.USER_CANCELLED: "userCancel",
    Phase.CERTIFICATE_ERR: "certificateErr",
}


def request_for(order: FetchedOrder) -> OrderRequest:
    return OrderRequest(
        kind=order.kind,
        origin=order.relay,
        nonce=order.nonce,
        personal_number=order.personal_number,
        token_kinds=frozenset(CredentialKind(k) for k in order.token_kinds) or None,
        user_visible_data=order.visible,
        user_visible_format=order.visible_format,
        user_non_visible_data=order.non_visible,
        party=order.party,
        party_name=order.party_name,
        order_ref=order.ref,
        call_initiator=order.call_initiator,
        pin_pad=order.pin_pad,
    )


class UpdateNeeded(Exception):
    """The agent refuses orders until it is updated (``code`` says why); the relay was
    told ``updateRequired``."""

    def __init__(self, code: MessageCode) -> None:
        super().__init__(f"orders refused until updated ({int(code)})")
        self.code = code


def accepting() -> MessageCode | None:
    """Orders are taken: no updater says otherwise (a checkout, a test)."""
    return None


async def run_order(
    token: str,
    client: RelayClient,
    service: OrderService,
    refused: Callable[[], MessageCode | None] = accepting,
    device_key: Callable[[], bytes] = lambda: b"",
) -> tuple[Order, FetchedOrder]:
    """Fetch, ask, sign, post. ``refused``: why this agent may not take orders now (the
    updater's word), else None. ``device_key``: this installation's key (``device``), for
    the ``uhi`` the relay passes on to the party; read only when a result is posted.

    Raises: AutostartError (nothing was signed, or the relay could not be told; the
    person is told by the caller), UpdateNeeded."""
    fetched = await client.fetch(token)
    log.info("order %s fetched from %s for %s", fetched.ref, fetched.relay, fetched.party)
    code = refused()
    if code is not None:  # blocked, too old or too long unchecked: as the bridge refuses
        await client.fail(fetched, "updateRequired")
        raise UpdateNeeded(code)
    try:
        order = service.start(request_for(fetched))
    except AlreadyInProgress:
        await client.fail(fetched, "startFailed")
        raise
    reported = False
    ended_at_relay = False
    asked = time.monotonic()
    while order.phase.pending:
        wait = max(0.0, ASK_RELAY_SECONDS - (time.monotonic() - asked))
        try:
            order = await asyncio.wait_for(service.next_phase(order.ref, order.phase), wait)
        except TimeoutError:
            asked = time.monotonic()
            try:
                wanted = await client.still_wanted(fetched)
            except AutostartError:  # the order is gone there, or the relay is away: the
                wanted = True  # person's dialog stays; the result is posted or refused
            if not wanted:
                ended_at_relay = True
                with contextlib.suppress(IllegalTransition, UnknownOrder):
                    service.cancel(order.ref, order.request.origin)  # its dialog closes
                log.info("order %s ended at %s: its dialog is closed", order.ref, fetched.relay)
            order = service.order(order.ref)
            continue
        if order.phase is Phase.USER_SIGN and not reported:
            reported = True
            try:
                await client.progress(fetched)
            except AutostartError as exc:  # a hint only: the order goes on
                log.info(
                    "order %s: progress not reported (%s: %s)", order.ref, type(exc).__name__, exc
                )
    if ended_at_relay:
        return order, fetched  # nothing to post: the relay ended it
    if order.phase is Phase.COMPLETE and order.completion is not None:
        # the XML signature; the relay names the person from the certificate in it
        mine = uhi(device_key(), fetched.relay, fetched.party)
        wire = order.completion.wire() | {"uhi": mine}
        await client.complete(fetched, wire)
        log.info("order %s completed at %s", order.ref, fetched.relay)
    else:
        await client.fail(fetched, _FAILURE_HINTS.get(order.phase, "startFailed"))
        log.info("order %s ended %s", order.ref, order.phase.name)
    return order, fetched
