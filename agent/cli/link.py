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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.io import Io
from eidcore.messages import MessageCode, Term

if TYPE_CHECKING:
    from agent.app.orders import OrderSettings
    from agent.autostart.door import DoorSettings
    from agent.config import AgentConfig

__all__ = [
    "add_door_options",
    "add_link_options",
    "door_settings",
    "link_options",
    "open_command",
    "order_settings",
]

START_WAIT = 15.0  # seconds an agent started for a link has to listen


def add_door_options(parser: argparse.ArgumentParser) -> None:
    """What orders from links may use and which development relays they may reach: the
    same for the running agent (``run``) and the link handler (``open``)."""
    parser.add_argument(
        "--no-cards", action="store_true", help="do not watch card readers or PKCS#11 tokens"
    )
    parser.add_argument(
        "--relay-ca", type=Path, help="development: also trust this certificate for order relays"
    )
    parser.add_argument(
        "--allow-http-relay",
        action="store_true",
        help="development: order relays on loopback over plain http",
    )


def add_link_options(parser: argparse.ArgumentParser) -> None:
    """What the link handler is run with, and starts an agent with when none runs."""
    parser.add_argument("--config", type=Path, help="the settings file (default: per-user)")
    parser.add_argument(
        "--no-bridge", action="store_true", help="an agent started for a link opens no port"
    )
    add_door_options(parser)


def link_options(args: argparse.Namespace) -> list[str]:
    """The link options of ``args``, as arguments again (for an entry or an agent)."""
    options = []
    if args.config:
        options += ["--config", str(args.config.resolve())]
    if args.no_bridge:
        options.append("--no-bridge")
    if args.no_cards:
        options.append("--no-cards")
    if args.relay_ca:
        options += ["--relay-ca", str(args.relay_ca.resolve())]
    if args.allow_http_relay:
        options.append("--allow-http-relay")
    return options


def door_settings(args: argparse.Namespace, config: AgentConfig) -> DoorSettings:
    """The relay door's settings from the command line (``add_door_options``, and
    ``--proxy`` where the command has it) and the person's settings."""
    from agent.autostart.door import DoorSettings

    return DoorSettings(
        internal=config.relay_allow,
        allow_http=args.allow_http_relay,
        ca_file=args.relay_ca,
        proxy=getattr(args, "proxy", None) or config.proxy,
    )


def order_settings(
    args: argparse.Namespace, config: AgentConfig, data_dir: Path, ttl: dt.timedelta
) -> OrderSettings:
    """What orders may sign with: files, and unless ``--no-cards`` the card readers and
    the PKCS#11 modules the settings name (or p11-kit finds)."""
    from agent.app.orders import OrderSettings
    from agent.tokens.pkcs11.authorities import chain_authorities
    from agent.tokens.pkcs11.modules import find_modules

    if args.no_cards:
        return OrderSettings(ttl=ttl, cards=False)
    return OrderSettings(
        ttl=ttl,
        cards=True,
        pkcs11=tuple(find_modules(config.pkcs11_modules, use_p11kit=config.p11kit)),
        intermediates=chain_authorities(config.intermediates, data_dir),
    )


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
    """No agent runs and there is no display: the order in this console, with the same
    order service and relay door as the running agent's (cards and tokens included)."""
    from agent.app.orders import running_orders
    from agent.autostart.door import RelayDoor, UpdateNeeded
    from agent.autostart.link import parse_link
    from agent.config import load_config
    from agent.orders import DEFAULT_TTL, Phase
    from agent.ui.console import ConsoleUi
    from eidcore.paths import default_config_file, default_data_dir

    link = parse_link(args.url)
    config = load_config(args.config or default_config_file())
    data_dir = args.data_dir or default_data_dir()
    orders = order_settings(args, config, data_dir, DEFAULT_TTL)

    async def run() -> Phase:
        ui = ConsoleUi(io.stdin, io.stderr, io.language)
        async with running_orders(data_dir, ui, orders) as running:
            door = RelayDoor(
                running.service, door_settings(args, config), refused=_refusal(data_dir)
            )
            order, fetched = await door.carry_out(link)
        if fetched.return_url is not None and link.go_back:  # a console has no browser
            io.stderr.write(io.term(Term.CONSOLE_RETURN_TO, url=fetched.return_url) + "\n")
        return order.phase

    try:
        phase = asyncio.run(run())
    except UpdateNeeded as exc:
        io.tell(exc.code)
        return 1
    return 0 if phase is Phase.COMPLETE else 1


def _refusal(data_dir: Path) -> Callable[[], MessageCode | None]:
    """An installed agent's updater state says whether it may take orders (blocked, too
    old, too long unchecked), as the running agent's does; a checkout takes them."""
    from agent.updater.install import running_layout
    from agent.updater.policy import refusal
    from agent.updater.service import load_state, state_file

    def refused() -> MessageCode | None:
        if running_layout(data_dir) is None:
            return None
        return refusal(load_state(state_file(data_dir)), dt.datetime.now(dt.UTC))

    return refused
