"""Options more than one command takes: what orders may use and which relays they may
reach (``run`` and ``open``, and what an agent started for a link gets), and where the
bank's issuer is (``run``, ``doctor``, ``enrol``, ``credentials remove``). Light to import:
the settings are built inside the functions."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.app import OrderSettings
    from agent.autostart import DoorSettings
    from agent.config import AgentConfig
    from agent.enrol import IssuerConnection

__all__ = [
    "add_door_options",
    "add_issuer_options",
    "add_link_options",
    "door_settings",
    "issuer_connection",
    "link_options",
    "order_settings",
]


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
    from agent.autostart import DoorSettings

    return DoorSettings(
        internal=config.relay_allow,
        allow_http=args.allow_http_relay,
        ca_file=args.relay_ca,
        proxy=getattr(args, "proxy", None) or config.proxy,
        ask=config.relay_ask,
    )


def order_settings(
    args: argparse.Namespace, config: AgentConfig, data_dir: Path, ttl: dt.timedelta
) -> OrderSettings:
    """What orders may sign with: files, and unless ``--no-cards`` the card readers and
    the PKCS#11 modules the settings name (or p11-kit finds)."""
    from agent.app import OrderSettings
    from agent.credentials.pkcs11 import chain_authorities, find_modules

    if args.no_cards:
        return OrderSettings(ttl=ttl, cards=False)
    return OrderSettings(
        ttl=ttl,
        cards=True,
        pkcs11=tuple(find_modules(config.pkcs11_modules, use_p11kit=config.p11kit)),
        intermediates=chain_authorities(config.intermediates, data_dir),
    )


def add_issuer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--issuer", metavar="URL", help="the bank's issuer (default: config)")
    parser.add_argument(
        "--issuer-ca",
        metavar="PEM",
        help="trust only this certificate for the issuer (development)",
    )
    parser.add_argument(
        "--proxy",
        metavar="URL",
        help="proxy for the issuer, or 'none' (default: config, then HTTPS_PROXY/NO_PROXY)",
    )
    parser.add_argument("--config", type=Path, help="settings file (default: per-user)")


def issuer_connection(args: argparse.Namespace) -> IssuerConnection | None:
    """From the command line, then the config file. Raises: ConfigError."""
    from agent.config import load_config
    from agent.enrol import IssuerConnection
    from eidcore.paths import default_config_file

    config = load_config(args.config or default_config_file())
    url = args.issuer or config.issuer_url
    if not url:
        return None
    return IssuerConnection(url, args.issuer_ca or config.issuer_ca, args.proxy or config.proxy)
