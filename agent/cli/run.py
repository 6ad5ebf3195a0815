"""``eid-agent run``: start the agent (agent/app/daemon.py is the composition root); the
command line only turns options and settings into its frozen ``RunConfig``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
from pathlib import Path

from agent.cli.io import Io
from agent.cli.options import (
    add_door_options,
    add_issuer_options,
    door_settings,
    issuer_connection,
    order_settings,
)
from eidcore.messages import Language, Term, language_from_env

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="bridge port (default 24721)")
    parser.add_argument(
        "--ui",
        choices=["console", "desktop", "auto"],
        default="auto",
        help="where to ask the person (default: auto, the desktop when there is one)",
    )
    parser.add_argument(
        "--order-ttl", type=int, default=180, metavar="SECONDS", help="order lifetime"
    )
    parser.add_argument(
        "--allow-http-localhost",
        action="store_true",
        help="development: accept http://localhost and loopback origins",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN_OR_DOMAIN",
        help="only these may start orders (repeatable; enterprise setting)",
    )
    parser.add_argument(
        "--block-origin",
        action="append",
        default=[],
        metavar="ORIGIN_OR_DOMAIN",
        help="these may never start orders (repeatable)",
    )
    parser.add_argument(
        "--no-bridge",
        action="store_true",
        help="open no port: serve eid-agent:// links (order relays) only",
    )
    add_door_options(parser)
    parser.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="log here, owner-only, rotated at 1 MiB keeping 3 (default: stderr)",
    )
    add_issuer_options(parser)
    # Set by the previous version when it hands over after an update; not for people.
    parser.add_argument("--take-over", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--update-tick", type=float, default=30.0, help=argparse.SUPPRESS)
    parser.add_argument("--health-timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def run(io: Io, args: argparse.Namespace) -> int:
    import asyncio

    from agent.app import (
        AlreadyRunning,
        PortTaken,
        RunConfig,
        SelfTestFailed,
        UpdateSettings,
        serve,
    )
    from agent.bridge import DEFAULT_PORT, OriginPolicy
    from agent.config import load_config
    from eidcore.paths import default_config_file, default_data_dir

    if not 0 < (args.port or DEFAULT_PORT) < 65536 or args.order_ttl <= 0:
        io.stderr.write(io.term(Term.CLI_BAD_PORT_OR_TTL) + "\n")
        return 2
    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)  # a daemon says what it is doing
    if args.log_file is not None:
        from agent.cli.logfile import log_to_file

        log_to_file(args.log_file)
    settings_file = args.config or default_config_file()
    agent_config = load_config(settings_file)
    settings = agent_config.settings
    language = io.language
    if settings.language and not args.lang:  # the command line wins, then the settings
        language = Language(settings.language)
    data_dir = args.data_dir or default_data_dir()
    config = RunConfig(
        data_dir=data_dir,
        port=args.port or DEFAULT_PORT,
        language=language,
        session_language=Language(args.lang) if args.lang else language_from_env(os.environ),
        ui=args.ui,
        bridge=not args.no_bridge,
        policy=OriginPolicy.of(
            allow_http_localhost=args.allow_http_localhost,
            allow=args.allow_origin,
            block=args.block_origin,
        ),
        orders=order_settings(args, agent_config, data_dir, dt.timedelta(seconds=args.order_ttl)),
        door=door_settings(args, agent_config),
        updates=UpdateSettings(
            argv=io.argv,
            take_over=args.take_over,
            tick=args.update_tick,
            health_timeout=args.health_timeout,
        ),
        issuer=issuer_connection(args),
        settings_file=settings_file,
        settings=settings,
        fixed_proxy=bool(args.proxy),
    )
    try:
        return asyncio.run(serve(config, io.stdin, io.stdout))
    except SelfTestFailed:
        io.stderr.write(io.term(Term.CLI_SELF_TEST_FAILED) + "\n")
        return 3
    except AlreadyRunning as exc:
        io.stderr.write(io.term(Term.CLI_ALREADY_RUNNING, pid=exc.pid or "?") + "\n")
        return 1
    except PortTaken as exc:
        io.stderr.write(io.term(Term.CLI_PORT_TAKEN, port=exc.port) + "\n")
        return 1
