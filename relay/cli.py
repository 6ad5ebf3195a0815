"""``eid-relay``: run the order relay (``serve``), or make a relying party's development
client certificate (``party-cert``).

Exit status 0 = done, 1 = it could not run (said on stderr), 2 = the command line was
wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from eidcore.logline import log_to
from eidcore.messages import Term, catalogue
from eidcore.messages.cli import language_in, localise, speaking

if TYPE_CHECKING:
    from aiohttp import web

    from relay.store import OrderStore

Say = Callable[..., None]  # (stream, term, **values): one catalogue line

__all__ = ["entry", "main"]

log = logging.getLogger("relay")

SWEEP_SECONDS = 60.0
KEEPALIVE_SECONDS = 15.0  # an idle kept-alive connection; also bounds a trickled request


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eid-relay", description="eid-agent's order relay")
    parser.add_argument(
        "--lang", choices=["sv", "en"], help="the language to speak (default: the locale's)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the relying-party and agent APIs")
    serve.add_argument("--config", type=Path, required=True, help="relay.toml")
    serve.add_argument(
        "--db",
        help="sqlite:///FILE or postgresql://... (default: relay.db beside the configuration)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8444, help="the port to listen on")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain for HTTPS")
    serve.add_argument("--tls-key", type=Path, help="PEM key for HTTPS")
    serve.add_argument(
        "--client-ca",
        type=Path,
        help="PEM: the CAs of relying parties' client certificates (required)",
    )
    cert = commands.add_parser(
        "party-cert", help="make a development client certificate for a relying party"
    )
    cert.add_argument("--config", type=Path, required=True, help="relay.toml (rp-ca/ beside it)")
    cert.add_argument("--party", required=True, help="the party's id")
    cert.add_argument("--out", type=Path, required=True, help="the folder to write it to")
    cert.add_argument("--password", help="for the PKCS#12 file (default: one is made)")
    cert.add_argument("--days", type=int, default=365, help="how long it is valid")
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    language = language_in(argv, os.environ)  # the parser speaks it before it reads --lang
    with speaking(language):
        parser = _parser()
        localise(parser, language)
        args = parser.parse_args(argv)
    out, err = stdout or sys.stdout, stderr or sys.stderr

    def say(stream: TextIO, term: Term, **values: object) -> None:
        stream.write(catalogue().term(term, language).format(**values) + "\n")

    if args.command == "party-cert":
        return _party_cert(args, say, out, err)
    log_to(err, logging.INFO)
    return _serve(args, say, err)


def _party_cert(args: argparse.Namespace, say: Say, out: TextIO, err: TextIO) -> int:
    from relay.config import PARTY_ID
    from relay.partycert import make_party_certificate

    if not PARTY_ID.match(args.party) or args.days <= 0:
        say(err, Term.RELAY_BAD_PARTY_CERT)
        return 2
    password = args.password or secrets.token_urlsafe(12)
    try:
        made = make_party_certificate(
            args.config.parent, args.party, args.out, password, dt.datetime.now(dt.UTC), args.days
        )
    except (OSError, ValueError) as exc:
        say(err, Term.RELAY_TLS_UNREADABLE, detail=exc)
        return 1
    say(
        out,
        Term.RELAY_NEW_PARTY_CERT,
        party=args.party,
        cert=made.certificate,
        key=made.key,
        p12=made.pkcs12,
        password=password,
        digest=made.sha256,
        ca=made.ca,
    )
    return 0


def _serve(args: argparse.Namespace, say: Say, err: TextIO) -> int:
    from eidcore.db import DatabaseError
    from relay.config import ConfigError, load_config
    from relay.server import RelayServer, build_app
    from relay.store import OrderStore

    if bool(args.tls_cert) != bool(args.tls_key) or (args.client_ca and not args.tls_cert):
        say(err, Term.RELAY_TLS_PAIR)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        say(err, Term.RELAY_BAD_CONFIG, detail=exc)
        return 1
    if not args.client_ca:  # parties are known by their client certificates, and only so
        say(err, Term.RELAY_CLIENT_CA)
        return 2
    if not config.ocsp.required:
        say(err, Term.RELAY_OCSP_OPTIONAL)
    tls: ssl.SSLContext | None = None
    if args.tls_cert:
        try:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(args.tls_cert, args.tls_key)
            if args.client_ca:
                # Asked for, not required: agents on the same listener present none.
                # One that does not chain to these CAs, or has expired, ends the
                # handshake; one that chains but is no party's is answered 401.
                tls.load_verify_locations(cafile=args.client_ca)
                tls.verify_mode = ssl.CERT_OPTIONAL
        except (OSError, ssl.SSLError) as exc:
            say(err, Term.RELAY_TLS_UNREADABLE, detail=exc)
            return 1
    try:
        store = OrderStore(args.db or f"sqlite:///{args.config.parent / 'relay.db'}")
    except DatabaseError as exc:
        say(err, Term.RELAY_DATABASE, detail=exc)
        return 1
    try:
        return asyncio.run(
            _run(
                build_app(RelayServer(config, store)),
                store,
                args,
                tls,
                say,
                err,
                len(config.parties),
                config.origin,
            )
        )
    finally:
        store.close()


async def _run(
    app: web.Application,
    store: OrderStore,
    args: argparse.Namespace,
    tls: ssl.SSLContext | None,
    say: Say,
    err: TextIO,
    parties: int,
    origin: str,
) -> int:
    from eidcore.jsonapi import serve_until_stopped

    def listening(url: str) -> None:
        say(err, Term.RELAY_LISTENING, url=url, parties=parties, origin=origin)
        err.flush()

    try:
        await serve_until_stopped(
            app,
            args.host,
            args.port,
            tls=tls,
            listening=listening,
            refusal=_busy,
            keepalive=KEEPALIVE_SECONDS,
            background=[lambda: _sweep(store)],
        )
    except OSError as exc:
        say(err, Term.RELAY_CANNOT_LISTEN, host=args.host, port=args.port, detail=exc.strerror)
        return 1
    return 0


def _busy(_why: str) -> bytes:
    """What a plain (development) listener answers a connection over its caps; a TLS
    listener closes it without a word."""
    body = b'{"errorCode": "tooManyRequests", "details": "too many connections"}'
    return (
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
    ) % (len(body), body)


async def _sweep(store: OrderStore) -> None:
    """Forget old orders now and then, so the table holds minutes, not history."""
    from eidcore.db import DatabaseError

    while True:
        with contextlib.suppress(DatabaseError):
            removed = await asyncio.to_thread(store.sweep, dt.datetime.now(dt.UTC))
            if removed:
                log.info("forgot %d old orders", removed)
        await asyncio.sleep(SWEEP_SECONDS)


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
