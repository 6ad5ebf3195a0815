"""``eid-agent waiting``: "Orders waiting for me" — the phone orders (BankID's
``phone/auth``, ``phone/sign``) a website started for the person while on the phone with
them, found without a link. The agent asks only the relays the settings name
(``[relay] ask``) or ``--relay``: for each it gets a one-time challenge, the person types
each BankID's password once, and its identification key signs the challenge
(``eidcore.phoneproof``); the relay shows that person's phone orders only. The one the
person picks is then carried out as a link's order is: the same dialog, which says who
called whom, and the password again for the signature itself.

BankIDs on file only in this first version (a card's or a token's PIN is asked through
its own driver; ``eid-agent open`` handles their orders).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.io import Io
from agent.cli.options import add_door_options, door_settings
from eidcore.messages import Term

if TYPE_CHECKING:
    from agent.autostart import Link, WaitingOrder
    from agent.config import AgentConfig

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
    """The orders waiting at each relay for the person's BankIDs on file; None when the
    person gave no password. Raises: AutostartError."""
    from agent.autostart import look_for_waiting, proof_for
    from agent.credentials import (
        CredentialKind,
        CredentialState,
        CredentialStore,
        UnlockedCredential,
        WrongPassword,
    )
    from agent.notices import notice_for
    from eidcore import phoneproof
    from eidcore.prompt import NoInput, read_secret

    store = CredentialStore(data_dir)
    now = dt.datetime.now(dt.UTC)
    files = [
        c
        for c in await asyncio.to_thread(store.credentials)
        if c.kind is CredentialKind.FILE and c.state(now) is CredentialState.USABLE
    ][: phoneproof.MAX_PROOFS]

    opened: list[UnlockedCredential] | None = None  # asked once, for every relay's look

    async def prove(relay: str, challenge: str) -> list[dict[str, object]] | None:
        nonlocal opened
        if opened is None:
            opened = []
            for credential in files:
                prompt = io.term(Term.WAITING_PASSWORD, credential=credential.owner.name)
                try:
                    password = read_secret(prompt, io.stdin, io.stderr)
                except NoInput:
                    return None
                try:
                    opened.append(await asyncio.to_thread(store.unlock, credential.id, password))
                except WrongPassword as exc:  # its tries are counted as at any order
                    notice = notice_for(exc)
                    io.tell(notice.code, **notice.params)
                finally:
                    del password
        return [proof_for(unlocked, relay, challenge) for unlocked in opened]

    try:
        return await look_for_waiting(relays, door_settings(args, config), prove)
    finally:
        opened = None  # the keys go as soon as the look is over
