"""``eid-agent waiting``: "Orders waiting for me" — the phone orders (BankID's
``phone/auth``, ``phone/sign``) a website started for the person while on the phone with
them, found without a link. The agent asks only the relays the settings name
(``[relay] ask``) or ``--relay``: for each it gets a one-time challenge, the person types
each BankID's password once, and its identification key signs the challenge
(``eidcore.phoneproof``); the relay shows that person's phone orders only. The one the
person picks is then carried out as a link's order is: the same dialog, which says who
called whom, and the password again for the signature itself.

The BankIDs asked are those on file and on the cards and tokens the agent sees (the
identification PIN for a card, the PIN for a token); one behind a PIN pad is left out
(``agent.autostart.Prover`` says why).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.io import Io
from agent.cli.options import add_door_options, door_settings, order_settings
from eidcore.messages import Term

if TYPE_CHECKING:
    from agent.autostart import Link, WaitingOrder
    from agent.config import AgentConfig
    from agent.credentials import CredentialInfo

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--relay",
        action="append",
        metavar="URL",
        help="an order relay to ask (default: the settings' [relay] ask)",
    )
    parser.add_argument("--config", type=Path, help="the settings file (default: per-user)")
    add_door_options(parser)


def run(io: Io, args: argparse.Namespace) -> int:
    """Raises: AutostartError, ConfigError (told by the command line's handler)."""
    from agent.autostart import relay_link
    from agent.config import load_config
    from eidcore.paths import default_config_file, default_data_dir

    config = load_config(args.config or default_config_file())
    relays = [relay_link(url) for url in (args.relay or door_settings(args, config).ask)]
    if not relays:
        io.stderr.write(io.term(Term.WAITING_NO_RELAY) + "\n")
        return 2
    data_dir = args.data_dir or default_data_dir()
    found = asyncio.run(_look(io, args, config, data_dir, relays))
    if found is None:
        return 1
    if not found:
        shown = ", ".join(link.relay for link in relays)
        io.stderr.write(io.term(Term.WAITING_NONE, relays=shown) + "\n")
        return 0
    for number, order in enumerate(found, start=1):
        what = io.term(Term.WAITING_AUTH if order.kind.value == "auth" else Term.WAITING_SIGN)
        call = io.term(
            Term.CALL_YOU_CALLED if order.call_initiator == "user" else Term.CALL_THEY_CALLED,
            party=f"«{order.party_name}»",
        )
        io.stderr.write(f"  {number}) «{order.party_name}» ({order.relay}): {what}. {call}\n")
    io.stderr.write(io.term(Term.WAITING_CHOOSE, count=len(found)))
    io.stderr.flush()
    answer = io.stdin.readline().strip()
    if not answer.isdigit() or not 0 < int(answer) <= len(found):
        return 0  # none taken: the order waits until the party ends it, or time does
    chosen = found[int(answer) - 1]
    link = next(link for link in relays if link.relay == chosen.relay)
    from agent.cli.link import carry_out_here

    return carry_out_here(io, args, config, data_dir, dataclasses.replace(link, token=chosen.token))


async def _look(
    io: Io, args: argparse.Namespace, config: AgentConfig, data_dir: Path, relays: list[Link]
) -> list[WaitingOrder] | None:
    """The orders waiting at each relay for the person's BankIDs (on file, card, token);
    None when the person stopped at a password or PIN. Raises: AutostartError."""
    from agent.app import running_orders
    from agent.autostart import Prover, look_for_waiting
    from agent.credentials import CredentialStore, KeyPurpose, pin_for
    from agent.notices import PIN_TERMS, Notice
    from agent.orders import DEFAULT_TTL
    from agent.ui import ConsoleUi
    from eidcore.prompt import NoInput, read_secret

    async def ask(credential: CredentialInfo, problem: Notice | None) -> str | None:
        if problem is not None:
            io.tell(problem.code, **problem.params)
        pin = pin_for(credential.kind, KeyPurpose.IDENTIFICATION)
        name = credential.owner.name
        prompt = (
            io.term(Term.WAITING_PASSWORD, credential=name)
            if pin is None
            else io.term(Term.WAITING_PIN, pin=io.term(PIN_TERMS[pin]), credential=name)
        )
        try:
            return read_secret(prompt, io.stdin, io.stderr) or None
        except NoInput:
            return None

    async def tell(notice: Notice) -> None:
        io.tell(notice.code, **notice.params)

    settings = order_settings(args, config, data_dir, DEFAULT_TTL)
    ui = ConsoleUi(io.stdin, io.stderr, io.language)
    async with running_orders(data_dir, ui, settings) as running:
        prover = Prover(
            CredentialStore(data_dir), running.hardware, ask, tell, dt.datetime.now(dt.UTC)
        )
        return await look_for_waiting(relays, door_settings(args, config), prover)
