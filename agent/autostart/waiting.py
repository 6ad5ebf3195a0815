"""Orders waiting for the person (phone orders): each relay asked in turn for a one-time
challenge, the person's BankIDs shown to it by ``prove`` (the caller's: it asks for the
passwords and signs ``eidcore.phoneproof.proof_bytes``), and the orders it then shows.
Only the relays the caller names are asked: the person's settings, never a page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from agent.autostart.client import RelayClient, WaitingOrder
from agent.autostart.door import DoorSettings
from agent.autostart.link import Link

__all__ = ["Prove", "look_for_waiting"]

# (relay origin, challenge) → the proofs for it; None: the person stopped (nothing asked)
Prove = Callable[[str, str], Awaitable[Sequence[Mapping[str, object]] | None]]


async def look_for_waiting(
    relays: Sequence[Link], settings: DoorSettings, prove: Prove
) -> list[WaitingOrder] | None:
    """The phone orders waiting at ``relays``, in their order; None when ``prove`` says
    the person stopped. Raises: AutostartError."""
    found: list[WaitingOrder] = []
    for link in relays:
        async with RelayClient(
            link,
            internal=settings.internal,
            allow_http=settings.allow_http,
            ca_file=settings.ca_file,
            proxy=settings.proxy,
        ) as client:
            challenge = await client.phone_challenge()
            proofs = await prove(link.relay, challenge)
            if proofs is None:
                return None
            if proofs:
                found += await client.phone_orders(challenge, proofs)
    return found
