"""``eid-agent run``: the composition root.

Who owns what:
- one asyncio loop (the main thread) runs the bridge, the order service, the card
  monitor and, later, the updater; the monitor's PC/SC waits run in executor threads;
- blocking work (credential files, the KDF) runs in the loop's default executor;
- the console UI owns one daemon thread that reads stdin; the desktop UI (later) owns its
  toolkit's thread; both are reached only through the UI port;
- SIGTERM stops the agent; SIGINT cancels an open question, or stops the agent when none
  is open.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from aiohttp import web

from agent import __version__
from agent.bridge import BridgeConfig, OriginPolicy, build_app
from agent.messages import Language
from agent.orders import DEFAULT_TTL, OrderBook
from agent.service import OrderService
from agent.tokens import TokenStore
from agent.tokens.card.monitor import CardWatcher
from agent.ui.console import ConsoleUi

log = logging.getLogger(__name__)

DEFAULT_PORT = 24721  # fixed, below 32768 (outside Linux's ephemeral range), documented
HOSTS = ("127.0.0.1", "::1")  # loopback only, never 0.0.0.0 (BRIDGE-SECURITY 1)


class PortTaken(Exception):
    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use")
        self.port = port


@dataclass
class RunConfig:
    data_dir: Path
    port: int = DEFAULT_PORT
    order_ttl: dt.timedelta = DEFAULT_TTL
    language: Language = Language.EN
    policy: OriginPolicy = field(default_factory=OriginPolicy)
    cards: bool = True


async def serve(config: RunConfig, stdin: TextIO, stdout: TextIO) -> int:
    ui = ConsoleUi(stdin, stdout, config.language)
    watcher = CardWatcher() if config.cards else None
    watching = asyncio.create_task(watcher.run()) if watcher is not None else None
    service = OrderService(
        TokenStore(config.data_dir),
        ui,
        OrderBook(config.order_ttl),
        clock=lambda: dt.datetime.now(dt.UTC),
        new_ref=lambda: str(uuid.uuid4()),
        agent_version=__version__,
        cards=watcher,
    )
    app = build_app(service, BridgeConfig(port=config.port, policy=config.policy))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        bound = await _bind(runner, config.port)
    except PortTaken:
        await runner.cleanup()
        if watching is not None:
            watching.cancel()
        raise
    log.info("eid-agent %s listening on %s", __version__, ", ".join(bound))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def on_sigint() -> None:
        if not ui.interrupt():
            stop.set()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        await stop.wait()
    finally:
        log.info("eid-agent stopping")
        await service.aclose()
        if watching is not None:
            watching.cancel()
        await runner.cleanup()
    return 0


async def _bind(runner: web.AppRunner, port: int) -> list[str]:
    bound = []
    for host in HOSTS:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortTaken(port) from None
            if host == "::1" and exc.errno in {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}:
                log.warning("IPv6 loopback unavailable; listening on IPv4 only")
                continue
            raise
        bound.append(f"{'[::1]' if host == '::1' else host}:{port}")
    return bound
