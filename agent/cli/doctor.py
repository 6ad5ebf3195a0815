"""``eid-agent doctor``: a report for support (agent/desktop/doctor.py writes it): no
secrets, no personal numbers."""

from __future__ import annotations

import argparse

from agent.cli.io import Io
from agent.cli.options import add_issuer_options, issuer_connection

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="the bridge port to look at")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_issuer_options(parser)


def run(io: Io, args: argparse.Namespace) -> int:
    from agent.bridge import DEFAULT_PORT
    from agent.config import load_config
    from agent.credentials.pkcs11 import find_modules
    from agent.desktop import run_doctor
    from agent.updater import Layout
    from eidcore.paths import default_config_file, default_data_dir

    data_dir = args.data_dir or default_data_dir()
    connection = issuer_connection(args)
    issuer = (connection.url, connection.ca_file, connection.proxy) if connection else None
    source = Layout.in_data_dir(data_dir).source()
    settings = load_config(args.config or default_config_file())
    modules = find_modules(settings.pkcs11_modules, use_p11kit=settings.p11kit)
    report, status = run_doctor(
        data_dir,
        args.port or DEFAULT_PORT,
        issuer,
        source.base_url if source else None,
        io.language,
        as_json=args.json,
        modules=modules,
    )
    io.stdout.write(report)
    return status
