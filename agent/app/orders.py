"""The order service with everything it signs with, composed once: the credential files,
and — unless switched off — the card readers and the PKCS#11 tokens, each watched by a
task of its own for as long as the service runs. The running agent and the console link
handler both use it, so an order is served alike whichever took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from agent import __version__
from agent.credentials import CredentialStore, Hardware
from agent.credentials.card import CardWatcher
from agent.credentials.pkcs11 import ModuleEntry, TokenWatcher
from agent.orders import DEFAULT_TTL, OrderBook, OrderService
from agent.ui import UiPort

__all__ = ["OrderSettings", "Orders", "running_orders"]


@dataclass(frozen=True)
class OrderSettings:
    """What orders may use and how long they live."""

    ttl: dt.timedelta = DEFAULT_TTL
    cards: bool = True  # card readers (PC/SC)
    pkcs11: tuple[ModuleEntry, ...] = ()  # the PKCS#11 modules to load (probed first)
    intermediates: tuple[bytes, ...] = ()  # issuing CAs (DER) completing tokens' chains


@dataclass(frozen=True)
class Orders:
    service: OrderService
    hardware: Hardware | None  # cards and tokens together, as the service sees them
    tokens: TokenWatcher | None  # the PKCS#11 side alone (the tray lists its modules)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.asynccontextmanager
async def running_orders(
    data_dir: Path, ui: UiPort, settings: OrderSettings
) -> AsyncIterator[Orders]:
    """The service and its watchers, running until the block ends; then the open orders
    are cancelled and the PKCS#11 modules finalised."""
    cards = CardWatcher() if settings.cards else None
    readers = (lambda: cards.generation) if cards is not None else None
    tokens = (
        TokenWatcher(
            settings.pkcs11,
            authorities=settings.intermediates,
            conf_dir=data_dir,
            readers_changed=readers,
        )
        if settings.pkcs11
        else None
    )
    hardware = Hardware(cards, tokens) if cards or tokens else None
    watching = [asyncio.create_task(w.run()) for w in (cards, tokens) if w is not None]
    service = OrderService(
        CredentialStore(data_dir),
        ui,
        OrderBook(settings.ttl),
        clock=_now,
        new_ref=lambda: str(uuid.uuid4()),
        agent_version=__version__,
        hardware=hardware,
    )
    try:
        yield Orders(service, hardware, tokens)
    finally:
        await service.aclose()
        for watch in watching:
            watch.cancel()
        await asyncio.gather(*watching, return_exceptions=True)  # modules finalised
