"""``eid-agent card …``: the card's PINs from the command line. A thin driver over the
card session; every failure reaches the person through the catalogue (agent/cli/main.py)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.cli.io import Io
from agent.credentials import AmbiguousId, KeyPurpose
from agent.credentials.card import CardError, CardSession, NoCard, NoReader, PinRef, PinsDiffer
from agent.notices import PIN_TERMS
from eidcore.messages import Term, catalogue
from eidcore.prompt import read_secret

__all__ = ["add_arguments", "run"]

PINS = {"identification": PinRef.IDENTIFICATION, "signature": PinRef.SIGNATURE}


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", parents=[common], help="readers, card, PINs")
    status.add_argument("--reader", help="the reader's name (default: the one with a card)")
    for name, text in (
        ("change-pin", "change a PIN"),
        ("unblock-pin", "unblock a PIN with the PUK"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument(
            "--pin",
            required=True,
            choices=["identification", "signature", "token"],
            help="which PIN: a BankID card has one for identification and one for signing; "
            "a PKCS#11 token (PIV card, USB key) has one",
        )
        action.add_argument("--reader", help="the reader's name (default: the one with a card)")
        action.add_argument(
            "--token",
            help="with --pin token: the BankID's id (eid-agent "
            "credentials list), when there is more than one",
        )
        action.add_argument("--config", type=Path, help="settings naming PKCS#11 modules")
        if name == "unblock-pin":
            action.add_argument(
                "--keep",
                action="store_true",
                help="unblock and keep the current PIN instead of setting a new one",
            )


def run(io: Io, args: argparse.Namespace) -> int:
    stdin, stdout, stderr, language = io.stdin, io.stdout, io.stderr, io.language

    def term(t: Term, **values: object) -> str:
        return catalogue().term(t, language).format(**values)

    def pin_name(ref: PinRef) -> str:
        return term(PIN_TERMS[ref])

    def ask(prompt: str) -> str:
        return read_secret(prompt, stdin, stderr)

    if getattr(args, "pin", None) == "token":
        if getattr(args, "keep", False):  # PKCS#11 sets a new PIN with every unblocking
            stderr.write(term(Term.CLI_KEEP_NOT_ON_TOKENS) + "\n")
            return 2
        return _token_pin(args, ask, stdout, term)
    with _session(args.reader) as (reader, session):
        if args.action == "status":
            return _status(stdout, reader, session, pin_name, term)
        pin = PINS[args.pin]
        name = pin_name(pin)
        if args.action == "change-pin":
            old = ask(term(Term.PROMPT_CURRENT_PIN, pin=name))
            new = ask(term(Term.PROMPT_NEW_PIN, pin=name))
            if ask(term(Term.PROMPT_REPEAT_PIN, pin=name)) != new:
                raise PinsDiffer()
            session.change_pin(pin, old, new)
            stdout.write(_cap(term(Term.PIN_CHANGED, pin=name)) + "\n")
            return 0
        puk = ask(term(Term.PROMPT_PUK))
        new_pin: str | None = None
        if not args.keep:
            new_pin = ask(term(Term.PROMPT_NEW_PIN, pin=name))
            if ask(term(Term.PROMPT_REPEAT_PIN, pin=name)) != new_pin:
                raise PinsDiffer()
        session.unblock_pin(pin, puk, new_pin)
        stdout.write(_cap(term(Term.PIN_UNBLOCKED, pin=name)) + "\n")
        return 0


def _token_pin(
    args: argparse.Namespace, ask: Callable[[str], str], stdout: TextIO, term: Callable[..., str]
) -> int:
    """The PIN of a BankID on a PKCS#11 token, through the modules the agent loads."""
    from agent.config import load_config
    from agent.credentials.pkcs11 import chain_authorities, find_modules, tokens_open
    from eidcore.paths import default_config_file, default_data_dir

    settings = load_config(args.config or default_config_file())
    modules = find_modules(settings.pkcs11_modules, use_p11kit=settings.p11kit)
    name = term(Term.TOKEN_PIN)
    data_dir = args.data_dir or default_data_dir()
    with tokens_open(
        modules, authorities=chain_authorities(settings.intermediates, data_dir), conf_dir=data_dir
    ) as tokens:
        found = [
            c for c in tokens.credentials() if not args.token or c.id.startswith(args.token.lower())
        ]
        if len(found) != 1:
            raise NoCard() if not found else AmbiguousId(args.token or "")
        credential_id = found[0].id
        if args.action == "change-pin":
            old = ask(term(Term.PROMPT_CURRENT_PIN, pin=name))
            new = ask(term(Term.PROMPT_NEW_PIN, pin=name))
            if ask(term(Term.PROMPT_REPEAT_PIN, pin=name)) != new:
                raise PinsDiffer()
            tokens.change_pin(credential_id, PinRef.USER, old, new)
            stdout.write(_cap(term(Term.PIN_CHANGED, pin=name)) + "\n")
            return 0
        puk = ask(term(Term.PROMPT_PUK))
        new_pin = ask(term(Term.PROMPT_NEW_PIN, pin=name))
        if ask(term(Term.PROMPT_REPEAT_PIN, pin=name)) != new_pin:
            raise PinsDiffer()
        tokens.unblock_pin(credential_id, PinRef.USER, puk, new_pin)
        stdout.write(_cap(term(Term.PIN_UNBLOCKED, pin=name)) + "\n")
        return 0


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@contextlib.contextmanager
def _session(reader: str | None) -> Iterator[tuple[str, CardSession]]:
    from agent.credentials.card import PcscContext

    with PcscContext() as context:
        names = context.readers()
        if not names:
            raise NoReader()
        candidates = [reader] if reader else names
        last: CardError = NoCard()
        for name in candidates:
            if name not in names:
                raise NoReader()
            try:
                connection = context.connect(name)
            except NoCard as exc:
                last = exc
                continue
            with connection:
                yield name, CardSession(connection)
            return
        raise last


def _status(
    stdout: TextIO,
    reader: str,
    session: CardSession,
    pin_name: Callable[[PinRef], str],
    term: Callable[..., str],
) -> int:
    chains = session.chains()
    leaf = x509.load_der_x509_certificate(chains[KeyPurpose.IDENTIFICATION][0])

    def attr(oid: x509.ObjectIdentifier) -> str:
        values = leaf.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    info = session.card_info()
    rows = [
        (term(Term.CARD_READER), reader),
        (
            term(Term.CARD_CARD),
            term(
                Term.CARD_SERIAL, serial=info.get("serial", "?"), profile=info.get("profile", "?")
            ),
        ),
        (term(Term.CARD_OWNER), f"{attr(NameOID.COMMON_NAME)} ({attr(NameOID.SERIAL_NUMBER)})"),
        (term(Term.CARD_VALID_UNTIL), leaf.not_valid_after_utc.date().isoformat()),
    ]
    for ref in (PinRef.IDENTIFICATION, PinRef.SIGNATURE):
        state = session.pin_status(ref)
        shown = (
            term(Term.CARD_PIN_BLOCKED)
            if state.blocked
            else term(Term.CARD_TRIES_LEFT, tries=state.tries_left)
        )
        rows.append((pin_name(ref), shown))
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        stdout.write(f"{label + ':':<{width}}{value}\n")
    return 0
