"""``eid-agent open URL``: carry out the order an ``eid-agent://`` link names — fetch it from
the order relay, ask in the console, sign, post the result.

This runs the order in its own process, in the console. Handing the link to the person's
running agent (its dialogs, a UNIX socket in the runtime folder) is the next step of the
relay door; until then the desktop entry's handler does not exist yet either.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import uuid

from agent import __version__
from agent.cli.io import Io

__all__ = ["open_command"]


def open_command(io: Io, args: argparse.Namespace) -> int:
    """Raises: AutostartError, ConfigError (told by the command line's handler)."""
    from agent.autostart.client import RelayClient
    from agent.autostart.driver import run_order
    from agent.autostart.link import parse_link
    from agent.config import load_config
    from agent.orders import OrderBook, Phase
    from agent.orders.service import OrderService
    from agent.tokens import TokenStore
    from agent.ui.console import ConsoleUi
    from eidcore.paths import default_config_file, default_data_dir

    link = parse_link(args.url)
    config = load_config(args.config or default_config_file())

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def run() -> Phase:
        ui = ConsoleUi(io.stdin, io.stderr, io.language)
        service = OrderService(TokenStore(args.data_dir or default_data_dir()), ui, OrderBook(),
                               clock=clock, new_ref=lambda: str(uuid.uuid4()),
                               agent_version=__version__)  # fmt: skip
        try:
            async with RelayClient(link, internal=config.relay_allow,
                                   allow_http=args.allow_http_relay,
                                   ca_file=args.relay_ca) as client:  # fmt: skip
                order = await run_order(link.token, client, service, clock)
        finally:
            await service.aclose()
        return order.phase

    phase = asyncio.run(run())
    return 0 if phase is Phase.COMPLETE else 1
