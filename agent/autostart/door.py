"""The relay door of one agent, composed once: its settings as one value, and what it does
with a link — fetch the order from the relay, refuse while updates require it, ask
through the order service, post the end. The running agent takes links handed to it
(``take``); the console link handler carries one out and is told what stopped it
(``carry_out``). Both go through here, with the same order service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agent.autostart.client import FetchedOrder, RelayClient
from agent.autostart.driver import UpdateNeeded, accepting, run_order
from agent.autostart.errors import AutostartError
from agent.autostart.link import Link, parse_link
from agent.notices import Notice, notice_for
from agent.orders import AlreadyInProgress, Order, OrderService, Phase
from eidcore.messages import MessageCode

__all__ = ["DoorSettings", "RelayDoor", "UpdateNeeded", "client_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DoorSettings:
    """Which relays this agent may be sent to and how it reaches them."""

    internal: tuple[str, ...] = ()  # internal relays the settings name (host:port)
    allow_http: bool = False  # development: a relay on loopback over plain http
    ca_file: Path | None = None  # development: trust this certificate for relays too
    proxy: str | None = None  # the settings' or --proxy; None: the environment's
    ask: tuple[str, ...] = ()  # relays "Orders waiting for me" asks ([relay] ask)


def client_for(link: Link, settings: DoorSettings) -> RelayClient:
    """The relay's agent API for ``link``, reached as ``settings`` say."""
    return RelayClient(
        link,
        internal=settings.internal,
        allow_http=settings.allow_http,
        ca_file=settings.ca_file,
        proxy=settings.proxy,
    )


async def _nowhere(_url: str) -> None:
    return None


class RelayDoor:
    """``refused``: why this agent may not take orders now (the updater's word), else
    None. ``tell``: how the person hears what stopped a link taken in the background.
    ``open_url``: how the person's browser goes back to the site. ``settings`` may be
    replaced as a whole (the Settings window saved a proxy); orders under way keep theirs.
    ``device_key``: this installation's key for the ``uhi`` (``agent.autostart.device``)."""

    def __init__(
        self,
        service: OrderService,
        settings: DoorSettings,
        *,
        refused: Callable[[], MessageCode | None] = accepting,
        tell: Callable[[Notice], Awaitable[None]] | None = None,
        open_url: Callable[[str], Awaitable[None]] = _nowhere,
        device_key: Callable[[], bytes] = lambda: b"",
    ) -> None:
        self.settings = settings
        self._device_key = device_key
        self._service, self._refused, self._tell, self._open_url = (
            service,
            refused,
            tell,
            open_url,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def carry_out(self, link: Link) -> tuple[Order, FetchedOrder]:
        """One link, fetch to posted end. Raises: AutostartError (nothing was signed, or
        the relay could not be told), UpdateNeeded, AlreadyInProgress."""
        async with client_for(link, self.settings) as client:
            return await run_order(
                link.token, client, self._service, self._refused, self._device_key
            )

    async def take(self, url: str) -> bool:
        """A link handed to the running agent: False while an order is active (one at a
        time; the handler says so), else True, and the order goes on in the background."""
        if self._service.busy():
            return False
        task = asyncio.create_task(self._in_background(url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _in_background(self, url: str) -> None:
        """Start to end; what stopped it is told to the person, never raised."""
        notice: Notice | None = None
        try:
            link = parse_link(url)
            order, fetched = await self.carry_out(link)
            going_back = link.go_back and order.phase is not Phase.CANCELLED
            if fetched.return_url is not None and going_back:
                await self._open_url(fetched.return_url)  # to the page, as BankID's app does
        except AutostartError as exc:
            log.info("a link was not carried out: %s: %s", type(exc).__name__, exc)
            notice = notice_for(exc)
        except AlreadyInProgress:  # the order machine's word; the table is below it
            notice = Notice(MessageCode.ALREADY_IN_PROGRESS)
        except UpdateNeeded as exc:
            log.info("a link was refused: %s", exc)
            notice = Notice(exc.code)
        except Exception:
            log.exception("a link failed unexpectedly")
            notice = Notice(MessageCode.INTERNAL_ERROR)
        if notice is not None and self._tell is not None:
            try:
                await self._tell(notice)
            except Exception:
                log.exception("a notice could not be shown")
