"""``eid-rp demo``: the demo website's command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from aiohttp import web

from demo.relaydoor import RelayDoor
from demo.site import DemoConfig, build_demo, load_anchors
from eidcore.logline import log_to
from eidcore.paths import default_issuer_dir
from rp import OcspPolicy, RelayApi, http_fetch

DEFAULT_AGENT_PORT = 24721


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eid-rp", description="Relying-party kit.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo website")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--agent-port", type=int, default=DEFAULT_AGENT_PORT)
    demo.add_argument("--origin", help="the site's origin (default http://localhost:PORT)")
    demo.add_argument(
        "--ca-dir", type=Path, help="CA whose root to trust (default: the development CA)"
    )
    demo.add_argument(
        "--ocsp", action="store_true", help="also ask the issuer's OCSP responder (fail closed)"
    )
    demo.add_argument(
        "--ocsp-ca",
        type=Path,
        help="trust only this certificate for an https responder (development)",
    )
    demo.add_argument(
        "--relay",
        metavar="URL",
        help="also the second door: the site's order relay (https://host:port)",
    )
    demo.add_argument(
        "--relay-cert", type=Path, help="the site's client certificate at the relay (PEM)"
    )
    demo.add_argument("--relay-key", type=Path, help="its key (PEM, owner-only)")
    demo.add_argument("--relay-party", default="demo", help="the site's party id at the relay")
    demo.add_argument(
        "--relay-ca", type=Path, help="trust only this certificate for the relay (development)"
    )
    args = parser.parse_args(argv)
    log_to(sys.stderr, logging.INFO)
    ca_dir = args.ca_dir or default_issuer_dir() / "dev-ca"
    try:
        anchors = load_anchors(ca_dir)
    except OSError:
        print(
            f"eid-rp: no CA root at {ca_dir}/root.crt (make a development credential "
            "first: eid-issuer dev-credential)",
            file=sys.stderr,
        )
        return 2
    origin = (args.origin or f"http://localhost:{args.port}").rstrip("/")
    revocation = None
    if args.ocsp:
        revocation = (
            OcspPolicy(fetch=http_fetch(str(args.ocsp_ca))) if args.ocsp_ca else OcspPolicy()
        )
    relay = None
    if args.relay:
        if not (args.relay_cert and args.relay_key):
            print("eid-rp: --relay needs --relay-cert and --relay-key", file=sys.stderr)
            return 2
        try:
            api = RelayApi(args.relay, (args.relay_cert, args.relay_key), ca_file=args.relay_ca)
        except (OSError, ValueError) as exc:
            print(f"eid-rp: the relay cannot be used: {exc}", file=sys.stderr)
            return 2
        relay = RelayDoor.for_site(api, args.relay, args.relay_party, origin)
    config = DemoConfig(
        origin=origin,
        agent_port=args.agent_port,
        trust_anchors=anchors,
        revocation=revocation,
        relay=relay,
    )
    doors = f"agent port {args.agent_port}" + (f", relay {args.relay}" if relay else "")
    print(f"eid-rp demo on {origin} ({doors})", file=sys.stderr, flush=True)
    web.run_app(build_demo(config), host="127.0.0.1", port=args.port, print=None, access_log=None)
    return 0


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
