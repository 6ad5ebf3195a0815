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
from agent.cli.options import add_link_options, door_settings, link_options, order_settings
from eidcore.messages import MessageCode, Term

if TYPE_CHECKING:
    from agent.autostart import Link
    from agent.config import AgentConfig

__all__ = ["add_arguments", "carry_out_here", "refusal_for", "run"]

START_WAIT = 15.0  # seconds an agent started for a link has to listen


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="eid-agent:///?autostarttoken=…&server=https://…")
    add_link_options(parser)


def run(io: Io, args: argparse.Namespace) -> int:
    """Raises: AutostartError, ConfigError (told by the command line's handler)."""
    from agent.autostart import hand_over, socket_path
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
    from agent.autostart import hand_over

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
    """No agent runs and there is no display: the order in this console."""
    from agent.autostart import parse_link
    from agent.config import load_config
    from eidcore.paths import default_config_file, default_data_dir

    link = parse_link(args.url)
    config = load_config(args.config or default_config_file())
    return carry_out_here(io, args, config, args.data_dir or default_data_dir(), link)


def carry_out_here(
    io: Io, args: argparse.Namespace, config: AgentConfig, data_dir: Path, link: Link
) -> int:
    """A link's order in this console, with the same order service and relay door as the
    running agent's (cards and tokens included): ``eid-agent open`` without an agent, and
    the order picked in ``eid-agent waiting``."""
    from agent.app import running_orders
    from agent.autostart import RelayDoor, UpdateNeeded, installation_key
    from agent.orders import DEFAULT_TTL, Phase
    from agent.ui import ConsoleUi

    orders = order_settings(args, config, data_dir, DEFAULT_TTL)

    async def run() -> Phase:
        ui = ConsoleUi(io.stdin, io.stderr, io.language)
        async with running_orders(data_dir, ui, orders) as running:
            door = RelayDoor(
                running.service,
                door_settings(args, config),
                refused=refusal_for(data_dir),
                device_key=lambda: installation_key(data_dir, os.urandom),
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


def refusal_for(data_dir: Path) -> Callable[[], MessageCode | None]:
    """An installed agent's updater state says whether it may take orders (blocked, too
    old, too long unchecked), as the running agent's does; a checkout takes them."""
    from agent.updater import load_state, refusal, running_layout, state_file

    def refused() -> MessageCode | None:
        if running_layout(data_dir) is None:
            return None
        return refusal(load_state(state_file(data_dir)), dt.datetime.now(dt.UTC))

    return refused
