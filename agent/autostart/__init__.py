"""The second door, on the agent's side: an ``eid-agent://`` link names an order relay and
an autostart token; the agent fetches the order from the relay over HTTPS, asks the person
in its own dialog, signs an XML signature for the relay's origin, party and order, and
posts the result.

``link`` (what a link may say and which relays may be asked, pure), ``errors``,
``client`` (the relay's agent API over aiohttp), ``driver`` (one order, start to result),
``device`` (the per-installation, per-party ``uhi``), ``waiting`` (the phone orders
waiting for the person).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.autostart.client import WaitingOrder
    from agent.autostart.device import installation_key
    from agent.autostart.door import DoorSettings, RelayDoor, UpdateNeeded
    from agent.autostart.driver import accepting
    from agent.autostart.handoff import hand_over, serve_handoff, socket_path
    from agent.autostart.link import Link, parse_link, relay_link
    from agent.autostart.waiting import Prover, WaitingOrders, look_for_waiting

__all__ = [
    "DoorSettings",
    "Link",
    "Prover",
    "RelayDoor",
    "UpdateNeeded",
    "WaitingOrder",
    "WaitingOrders",
    "accepting",
    "hand_over",
    "installation_key",
    "look_for_waiting",
    "parse_link",
    "relay_link",
    "serve_handoff",
    "socket_path",
]

# Loaded on first use: the link handler hands a link to the running agent through
# ``handoff`` alone, and must not pay for aiohttp and cryptography (~0.3 s) to do it.
_WHERE = {
    "WaitingOrder": "agent.autostart.client",
    "installation_key": "agent.autostart.device",
    "DoorSettings": "agent.autostart.door",
    "RelayDoor": "agent.autostart.door",
    "UpdateNeeded": "agent.autostart.door",
    "accepting": "agent.autostart.driver",
    "hand_over": "agent.autostart.handoff",
    "serve_handoff": "agent.autostart.handoff",
    "socket_path": "agent.autostart.handoff",
    "Link": "agent.autostart.link",
    "parse_link": "agent.autostart.link",
    "relay_link": "agent.autostart.link",
    "Prover": "agent.autostart.waiting",
    "WaitingOrders": "agent.autostart.waiting",
    "look_for_waiting": "agent.autostart.waiting",
}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(where), name)
