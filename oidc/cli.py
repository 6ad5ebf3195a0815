"""``eid-oidc``: run the OpenID Provider (``serve``), add a client to its configuration
(``add-client``), or make a new signing key (``rotate-key``).

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
import ssl
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from eidcore.logline import log_to
from eidcore.messages import Term, catalogue
from eidcore.messages.cli import language_in, localise, speaking

if TYPE_CHECKING:
    from aiohttp import web

    from oidc.config import OidcConfig
    from oidc.store import OidcStore

Say = Callable[..., None]  # (stream, term, **values): one catalogue line

__all__ = ["entry", "main"]

log = logging.getLogger("oidc")

SWEEP_SECONDS = 60.0
KEEPALIVE_SECONDS = 15.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eid-oidc", description="eid-agent's OpenID Provider")
    parser.add_argument(
        "--lang", choices=["sv", "en"], help="the language to speak (default: the locale's)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the provider")
    serve.add_argument("--config", type=Path, required=True, help="oidc.toml")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8445, help="the port to listen on")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain for HTTPS")
    serve.add_argument("--tls-key", type=Path, help="PEM key for HTTPS")
    add = commands.add_parser("add-client", help="add a client with a fresh secret")
    add.add_argument("--config", type=Path, required=True, help="oidc.toml")
    add.add_argument("--client-id", required=True, help="the client's id")
    add.add_argument("--name", required=True, help="its name, shown on the login page")
    add.add_argument("--redirect-uri", required=True, help="its redirect URI (exact)")
    rotate = commands.add_parser("rotate-key", help="make a new signing key")
    rotate.add_argument("--config", type=Path, required=True, help="oidc.toml")
    rotate.add_argument("--alg", choices=["ES256", "RS256"], default="ES256", help="its algorithm")
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    language = language_in(argv, os.environ)
    with speaking(language):
        parser = _parser()
        localise(parser, language)
        args = parser.parse_args(argv)
    out, err = stdout or sys.stdout, stderr or sys.stderr

    def say(stream: TextIO, term: Term, **values: object) -> None:
        stream.write(catalogue().term(term, language).format(**values) + "\n")

    if args.command == "add-client":
        return _add_client(args, say, out, err)
    if args.command == "rotate-key":
        return _rotate(args, say, err)
    log_to(err, logging.INFO)
    return _serve(args, say, err)


def _add_client(args: argparse.Namespace, say: Say, out: TextIO, err: TextIO) -> int:
    import tomllib

    from oidc.config import ConfigError, client_block, config_from

    block, secret = client_block(args.client_id, args.name, args.redirect_uri)
    try:
        text = args.config.read_text(encoding="utf-8")
        config_from(tomllib.loads(text + block), args.config.parent, str(args.config))
    except (OSError, tomllib.TOMLDecodeError, ConfigError) as exc:
        say(err, Term.OIDC_BAD_CONFIG, detail=exc)
        return 1
    from eidcore.atomicfile import atomic_write_bytes

    mode = args.config.stat().st_mode & 0o777
    atomic_write_bytes(args.config, (text + block).encode(), mode=mode)
    say(out, Term.OIDC_NEW_CLIENT, client=args.client_id, config=args.config, secret=secret)
    return 0


def _rotate(args: argparse.Namespace, say: Say, err: TextIO) -> int:
    from eidcore.db import DatabaseError
    from oidc import jose
    from oidc.config import ConfigError, load_config
    from oidc.store import OidcStore

    try:
        config = load_config(args.config)
        store = OidcStore.open(config.database)
    except ConfigError as exc:
        say(err, Term.OIDC_BAD_CONFIG, detail=exc)
        return 1
    except DatabaseError as exc:
        say(err, Term.OIDC_DATABASE, detail=exc)
        return 1
    try:
        key = jose.new_key(uuid.uuid4().hex, args.alg, dt.datetime.now(dt.UTC))
        store.add_key(key, retire_others=True)
    finally:
        store.close()
    say(err, Term.OIDC_KEY_ROTATED, kid=key.kid, alg=key.alg)
    return 0


def _serve(args: argparse.Namespace, say: Say, err: TextIO) -> int:
    import rp
    from eidcore.db import DatabaseError
    from oidc.config import ConfigError, load_config
    from oidc.server import Provider, build_app
    from oidc.store import OidcStore

    if bool(args.tls_cert) != bool(args.tls_key):
        say(err, Term.OIDC_TLS_PAIR)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        say(err, Term.OIDC_BAD_CONFIG, detail=exc)
        return 1
    tls: ssl.SSLContext | None = None
    if args.tls_cert:
        try:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            say(err, Term.OIDC_TLS_UNREADABLE, detail=exc)
            return 1
    try:
        relay = rp.RelayApi(
            config.relay.url,
            (config.relay.client_cert, config.relay.client_key),
            ca_file=config.relay.ca_file,
        )
    except (OSError, ValueError, ssl.SSLError) as exc:
        say(err, Term.OIDC_RELAY_UNUSABLE, detail=exc)
        return 1
    try:
        store = OidcStore.open(config.database)
    except DatabaseError as exc:
        say(err, Term.OIDC_DATABASE, detail=exc)
        return 1
    try:
        _keys_for(config, store)
        provider = Provider(config, store, relay)
        return asyncio.run(_run(build_app(provider), store, args, tls, say, err, config))
    except DatabaseError as exc:
        say(err, Term.OIDC_DATABASE, detail=exc)
        return 1
    finally:
        store.close()


def _keys_for(config: OidcConfig, store: OidcStore) -> None:
    """A signing key for ES256 and for each algorithm a client asks, made before the
    first request rather than in it (a 3072-bit RSA key takes a second)."""
    from oidc import jose

    wanted = {"ES256"} | {c.id_token_alg for c in config.clients.values()}
    have = {k.alg for k in store.signing_keys() if k.retired is None}
    for alg in sorted(wanted - have):
        store.ensure_key(alg, jose.new_key(uuid.uuid4().hex, alg, dt.datetime.now(dt.UTC)))


async def _run(
    app: web.Application,
    store: OidcStore,
    args: argparse.Namespace,
    tls: ssl.SSLContext | None,
    say: Say,
    err: TextIO,
    config: OidcConfig,
) -> int:
    from eidcore.jsonapi import serve_until_stopped

    def listening(url: str) -> None:
        say(err, Term.OIDC_LISTENING, url=url, issuer=config.issuer, clients=len(config.clients))
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
        say(err, Term.OIDC_CANNOT_LISTEN, host=args.host, port=args.port, detail=exc.strerror)
        return 1
    return 0


def _busy(_why: str) -> bytes:
    body = b'{"error": "temporarily_unavailable"}'
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
    ) % (len(body), body)


async def _sweep(store: OidcStore) -> None:
    from eidcore.db import DatabaseError

    while True:
        with contextlib.suppress(DatabaseError):
            await asyncio.to_thread(store.sweep, dt.datetime.now(dt.UTC))
        await asyncio.sleep(SWEEP_SECONDS)


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
