"""``eid-agent open URL``: the handler a browser starts for an ``eid-agent://`` link. It
hands the link to the person's running agent (``agent.autostart.handoff``) and exits at
once; the agent fetches the order from the relay and asks in its own dialogs.

With a display and no agent running, it starts one (detached, so the browser does not
wait for it) and hands the link over when it listens. Without a display it carries the
order out itself, in the console.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from agent import __version__
from agent.cli.io import Io
from eidcore.messages import MessageCode, Term

__all__ = ["add_link_options", "link_options", "open_command"]

START_WAIT = 15.0  # seconds an agent started for a link has to listen


def add_link_options(parser: argparse.ArgumentParser) -> None:
    """What the link handler is run with, and starts an agent with when none runs."""
    parser.add_argument("--config", type=Path, help="the settings file (default: per-user)")
    parser.add_argument(
        "--no-bridge", action="store_true", help="an agent started for a link opens no port"
    )
    parser.add_argument(
        "--relay-ca", type=Path, help="development: also trust this certificate for the relay"
    )
    parser.add_argument(
        "--allow-http-relay",
        action="store_true",
        help="development: a relay on loopback over plain http",
    )


def link_options(args: argparse.Namespace) -> list[str]:
    """The link options of ``args``, as arguments again (for an entry or an agent)."""
    options = []
    if args.config:
        options += ["--config", str(args.config.resolve())]
    if args.no_bridge:
        options.append("--no-bridge")
    if args.relay_ca:
        options += ["--relay-ca", str(args.relay_ca.resolve())]
    if args.allow_http_relay:
        options.append("--allow-http-relay")
    return options


def open_command(io: Io, args: argparse.Namespace) -> int:
    """Raises: AutostartError, ConfigError (told by the command line's handler)."""
    from agent.autostart.handoff import hand_over, socket_path
    from eidcore.paths import default_data_dir

    data_dir = args.data_dir or default_data_dir()
    path = socket_path(data_dir)
    taken = hand_over(args.url, path)
    if taken is None and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        taken = _start_agent_and_hand_over(args, data_dir, path)
    if taken is True:
        return 0
    if taken is False:
        io.tell(MessageCode.ALREADY_IN_PROGRESS)
        return 1
    return _here(io, args)


def _start_agent_and_hand_over(args: argparse.Namespace, data_dir: Path, path: Path) -> bool | None:
    """An agent for this person, with the handler's own options (its settings file, no
    bridge, a development relay's certificate), detached from the browser."""
    from agent.autostart.handoff import hand_over

    url = args.url
    language = ["--lang", args.lang] if getattr(args, "lang", None) else []
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            "--data-dir",
            str(data_dir),
            *language,
            *link_options(args),
            "--log-file",
            str(data_dir / "agent.log"),
        ],  # as setup's
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        taken = hand_over(url, path)
        if taken is not None:
            return taken
        time.sleep(0.1)
    return None


def _here(io: Io, args: argparse.Namespace) -> int:
    from agent.autostart.client import RelayClient
    from agent.autostart.driver import UpdateNeeded, run_order
    from agent.autostart.link import parse_link
    from agent.config import load_config
    from agent.orders import OrderBook, Phase
    from agent.orders.service import OrderService
    from agent.tokens import TokenStore
    from agent.ui.console import ConsoleUi
    from eidcore.paths import default_config_file, default_data_dir

    link = parse_link(args.url)
    config = load_config(args.config or default_config_file())
    data_dir = args.data_dir or default_data_dir()

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def run() -> Phase:
        ui = ConsoleUi(io.stdin, io.stderr, io.language)
        service = OrderService(
            TokenStore(data_dir),
            ui,
            OrderBook(),
            clock=clock,
            new_ref=lambda: str(uuid.uuid4()),
            agent_version=__version__,
        )
        try:
            async with RelayClient(
                link,
                internal=config.relay_allow,
                allow_http=args.allow_http_relay,
                ca_file=args.relay_ca,
                proxy=config.proxy,
            ) as client:
                order, fetched = await run_order(
                    link.token, client, service, clock, _refusal(data_dir, clock)
                )
        finally:
            await service.aclose()
        if fetched.return_url is not None and link.go_back:  # a console has no browser
            io.stderr.write(io.term(Term.CONSOLE_RETURN_TO, url=fetched.return_url) + "\n")
        return order.phase

    try:
        phase = asyncio.run(run())
    except UpdateNeeded as exc:
        io.tell(exc.code)
        return 1
    return 0 if phase is Phase.COMPLETE else 1


def _refusal(data_dir: Path, clock: Callable[[], dt.datetime]) -> Callable[[], MessageCode | None]:
    """An installed agent's updater state says whether it may take orders (blocked, too
    old, too long unchecked), as the running agent's does; a checkout takes them."""
    from agent.updater.install import running_layout
    from agent.updater.policy import refusal
    from agent.updater.service import load_state, state_file

    def refused() -> MessageCode | None:
        if running_layout(data_dir) is None:
            return None
        return refusal(load_state(state_file(data_dir)), clock())

    return refused
