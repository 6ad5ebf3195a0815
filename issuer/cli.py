"""``eid-issuer``: the issuer's command line: development credentials and cards, the
issuer service (``serve``) and orders from the command line (``order``)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from agent import __version__
from agent.credentials import fileformat
from agent.notices import Notice, format_notice, notice_for
from eidcore.atomicfile import atomic_write_bytes
from eidcore.logline import log_to, one_line
from eidcore.messages import Language, MessageCode, language_from_env
from eidcore.paths import default_issuer_dir
from eidcore.personal_number import PersonalNumber
from eidcore.prompt import read_new_password
from issuer.ca import CertificateAuthority, InvalidName, Person
from issuer.credentials import make_file_credential

log = logging.getLogger("issuer.cli")

DEV_CA_NAME = "eid-agent Development"
MAX_DAYS = 5 * 365


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eid-issuer", description="BankID issuer tools.")
    parser.add_argument("--version", action="version", version=f"eid-issuer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev-credential",
        help="write a development BankID on file (never for production use)",
    )
    dev.add_argument("--personal-number", required=True, help="12 digits, YYYYMMDDNNNC")
    dev.add_argument("--name", required=True, help='full name, e.g. "Anna Andersson"')
    dev.add_argument("--out", required=True, type=Path, help="the credential file to write")
    dev.add_argument(
        "--ca-dir",
        type=Path,
        help="development CA folder, created on first use (default: per-user issuer folder)",
    )
    dev.add_argument("--days", type=_days, default=2 * 365, help=f"validity in days (1–{MAX_DAYS})")
    card = commands.add_parser(
        "personalise-card",
        help="make a virtual BankID card (keys generated in the card) for development",
    )
    card.add_argument("--personal-number", required=True, help="12 digits, YYYYMMDDNNNC")
    card.add_argument("--name", required=True, help='full name, e.g. "Anna Andersson"')
    card.add_argument("--card", required=True, type=Path, help="the card file to write")
    card.add_argument("--serial", default=None, help="card serial (default: random)")
    card.add_argument("--ca-dir", type=Path, help="development CA folder (as dev-credential)")
    card.add_argument(
        "--days", type=_days, default=2 * 365, help=f"validity in days (1–{MAX_DAYS})"
    )
    piv = commands.add_parser(
        "personalise-piv",
        help="make a virtual PIV card holding a BankID (keys in 9A and 9C), for development",
    )
    piv.add_argument("--personal-number", required=True, help="12 digits, YYYYMMDDNNNC")
    piv.add_argument("--name", required=True, help='full name, e.g. "Anna Andersson"')
    piv.add_argument("--card", required=True, type=Path, help="the card file to write")
    piv.add_argument("--serial", default=None, help="card serial (default: random)")
    piv.add_argument("--ca-dir", type=Path, help="development CA folder (as dev-credential)")
    piv.add_argument("--days", type=_days, default=2 * 365, help=f"validity in days (1–{MAX_DAYS})")
    tok = commands.add_parser(
        "personalise-token",
        help="put a BankID on a PKCS#11 token (keys made on it) at the bank's desk",
    )
    tok.add_argument("--personal-number", required=True, help="12 digits, YYYYMMDDNNNC")
    tok.add_argument("--name", required=True, help='full name, e.g. "Anna Andersson"')
    tok.add_argument("--module", required=True, type=Path, help="the token's PKCS#11 module")
    tok.add_argument("--token-label", help="the token's label (default: the only token)")
    tok.add_argument("--ca-dir", type=Path, help="CA folder (as dev-credential)")
    tok.add_argument("--days", type=_days, default=2 * 365, help=f"validity in days (1–{MAX_DAYS})")
    tok.add_argument(
        "--admin-key-file",
        type=Path,
        help="a PIV card's management key, 48 hex digits (default: the "
        "well-known key cards ship with)",
    )
    from issuer.servecli import add_commands

    add_commands(commands)
    return parser


def _days(text: str) -> int:
    # Bounded so a person certificate can never outlive the issuing CA (10 years).
    value = int(text)
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DAYS}")
    return value


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    args = _parser().parse_args(argv)
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    # a service logs what it does; a one-shot command says only what went wrong
    log_to(stderr, logging.INFO if args.command == "serve" else logging.ERROR)
    language = language_from_env(os.environ)
    if args.command in ("serve", "order"):
        return _service(args, stdout, stderr)
    try:
        # Validated before anything else: a wrong format never reaches the CA.
        pnr = PersonalNumber.parse(args.personal_number)
        person = Person.from_full_name(pnr, args.name)
        ca = _dev_ca(args.ca_dir or default_issuer_dir() / "dev-ca")
        now = dt.datetime.now(dt.UTC)
        if args.command == "personalise-card":
            return _personalise(args, ca, person, now, stdin, stdout, stderr)
        if args.command == "personalise-token":
            from agent.credentials.pkcs11 import DEFAULT_ADMIN_KEY
            from eidcore.prompt import read_secret
            from issuer.tokens import personalise_token

            admin = DEFAULT_ADMIN_KEY
            if args.admin_key_file:
                admin = bytes.fromhex(args.admin_key_file.read_text().strip())
            pin = read_secret("PIN of the token: ", stdin, stderr)
            token_id = personalise_token(
                ca,
                person,
                now,
                module=args.module,
                pin=pin,
                label=args.token_label,
                days=args.days,
                admin_key=admin,
            )
            stdout.write(
                f"{token_id}  {person.name}  BankID put on token {args.token_label or ''}\n"
            )
            return 0
        if args.command == "personalise-piv":
            ca_dir = args.ca_dir or default_issuer_dir() / "dev-ca"
            return _personalise_piv(args, ca, ca_dir, person, now, stdin, stdout, stderr)
        password = read_new_password("Password: ", "Repeat password: ", stdin, stderr)
        token = make_file_credential(ca, person, password, now, days=args.days)
        atomic_write_bytes(args.out, fileformat.dumps(token), mode=0o600)
    except OSError as exc:
        log.info("cannot write: %s", exc.strerror)
        _tell(stderr, MessageCode.FILE_NOT_SAVED, language)
        return 1
    except InvalidName as exc:
        stderr.write(f"eid-issuer: --name: {exc}\n")
        return 2
    except BrokenPipeError:
        raise  # the reader went away: nothing to tell it (eidcore/entry.py)
    except Exception as exc:
        notice = notice_for(exc)
        if notice.code is MessageCode.INTERNAL_ERROR:
            log.error("unexpected failure: %s", one_line(exc))  # a person reads this
        _tell(stderr, notice.code, language, **notice.params)
        return 1
    stdout.write(f"{token.id}  {person.name}  development credential written to {args.out}\n")
    return 0


def _personalise(
    args: argparse.Namespace,
    ca: CertificateAuthority,
    person: Person,
    now: dt.datetime,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    import secrets

    from issuer.cards import personalise_card
    from issuer.vcard.vpcd import CardFile

    pins = [
        read_new_password(f"{label}: ", f"Repeat {label}: ", stdin, stderr)
        for label in (
            "Identification PIN (4-12 digits)",
            "Signature PIN (5-12 digits)",
            "PUK (8-12 digits)",
        )
    ]
    serial = args.serial or secrets.token_hex(4).upper()
    try:
        state = personalise_card(
            ca,
            person,
            now,
            serial=serial,
            identification_pin=pins[0],
            signature_pin=pins[1],
            puk=pins[2],
            days=args.days,
        )
    except ValueError as exc:
        stderr.write(f"eid-issuer: {exc}\n")
        return 2
    CardFile(args.card).save(state)
    stdout.write(f"card {serial}  {person.name}  development card written to {args.card}\n")
    return 0


def _personalise_piv(
    args: argparse.Namespace,
    ca: CertificateAuthority,
    ca_dir: Path,
    person: Person,
    now: dt.datetime,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    import secrets

    from issuer.cards import personalise_piv_card

    pin, puk = (
        read_new_password(f"{label}: ", f"Repeat {label}: ", stdin, stderr)
        for label in ("PIN (6-8 digits)", "PUK (6-8 digits)")
    )
    serial = args.serial or secrets.token_hex(4).upper()
    try:
        state = personalise_piv_card(
            ca, person, now, serial=serial, pin=pin, puk=puk, days=args.days
        )
    except ValueError as exc:
        stderr.write(f"eid-issuer: {exc}\n")
        return 2
    atomic_write_bytes(args.card, state.to_json(), mode=0o600)
    stdout.write(
        f"PIV card {serial}  {person.name}  development card written to {args.card}\n"
        f"the agent completes its chain with {ca_dir / 'issuing.crt'} "
        "([pkcs11] intermediates in config.toml)\n"
    )
    return 0


def _service(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from eidcore.personal_number import InvalidPersonalNumber
    from issuer.db import DatabaseError
    from issuer.servecli import order_command, serve_command

    logging.getLogger().setLevel(logging.INFO if args.command == "serve" else logging.ERROR)
    ca_dir = args.ca_dir or default_issuer_dir() / "dev-ca"
    try:
        ca = _dev_ca(ca_dir)
        if args.command == "serve":
            return serve_command(args, ca_dir, ca, stderr)
        return order_command(args, ca_dir, ca, stdout)
    except (InvalidPersonalNumber, DatabaseError, ValueError) as exc:
        stderr.write(f"eid-issuer: {exc}\n")
        return 1


def _dev_ca(directory: Path) -> CertificateAuthority:
    if CertificateAuthority.exists(directory):
        return CertificateAuthority.load(directory)
    ca = CertificateAuthority.create(DEV_CA_NAME, dt.datetime.now(dt.UTC))
    ca.save(directory)
    log.info("created development CA in %s", directory)
    return ca


def _tell(stream: TextIO, code: MessageCode, language: Language, **params: object) -> None:
    stream.write(format_notice(Notice(code, params), language))


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
