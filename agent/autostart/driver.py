"""One order that came by link, from fetch to result: the relay's order becomes an order of
the agent's own machine (the same dialogs, credentials and signing as the bridge's), its
progress is reported so the website's ``collect`` shows hints, and its end is posted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from agent.autostart.channel import OrderChannel
from agent.autostart.client import FetchedOrder, RelayClient
from agent.autostart.device import uhi
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
    """Fetch, ask, sign, post, on one connection to the relay. ``refused``: why this
    agent may not take orders now (the updater's word), else None. ``device_key``: this
    installation's key (``device``), for the ``uhi`` the relay passes on to the party;
    read only when a result is posted.

    Raises: AutostartError (nothing was signed, or the relay could not be told; the
    person is told by the caller), UpdateNeeded."""
    async with client.order(token) as (fetched, channel):
        log.info("order %s fetched from %s for %s", fetched.ref, fetched.relay, fetched.party)
        return await _carry_out(fetched, channel, service, refused, device_key)


async def _carry_out(
    fetched: FetchedOrder,
    channel: OrderChannel,
    service: OrderService,
    refused: Callable[[], MessageCode | None],
    device_key: Callable[[], bytes],
) -> tuple[Order, FetchedOrder]:
    code = refused()
    if code is not None:  # blocked, too old or too long unchecked: as the bridge refuses
        await channel.fail("updateRequired")
        raise UpdateNeeded(code)
    try:
        order = service.start(request_for(fetched))
    except AlreadyInProgress:
        await channel.fail("startFailed")
        raise
    reported = False
    ended = asyncio.ensure_future(channel.ended.wait())
    try:
        while order.phase.pending:
            phase = asyncio.ensure_future(service.next_phase(order.ref, order.phase))
            await asyncio.wait({phase, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not phase.done():  # the relay ended it (the site cancelled it, or time)
                phase.cancel()
                with contextlib.suppress(IllegalTransition, UnknownOrder):
                    service.cancel(order.ref, order.request.origin)  # its dialog closes
                log.info("order %s ended at %s: its dialog is closed", order.ref, fetched.relay)
                return service.order(order.ref), fetched  # nothing to post
            order = phase.result()
            if order.phase is Phase.USER_SIGN and not reported:
                reported = True
                await channel.progress()
    finally:
        ended.cancel()
    completion = order.completion
    if order.phase is Phase.COMPLETE and completion is not None:
        # the signature value of the XML document; the relay builds the document again
        mine = uhi(device_key(), fetched.relay, fetched.party)
        chain = completion.certificate_chain
        await channel.complete(completion.signature, chain, service.agent_version, mine)
        log.info("order %s completed at %s", order.ref, fetched.relay)
    else:
        await channel.fail(_FAILURE_HINTS.get(order.phase, "startFailed"))
        log.info("order %s ended %s", order.ref, order.phase.name)
    return order, fetched
