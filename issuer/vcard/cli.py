"""``eid-vcard``: put a virtual BankID card into a virtual reader, for development.

    eid-issuer personalise-card --personal-number … --name … --card anna.vcard
    eid-vcard insert --card anna.vcard        # in the reader until Ctrl-C (= removed)
    eid-vcard show --card anna.vcard

Needs pcscd with Debian's vsmartcard-vpcd. vpcd listens on all network interfaces:
use it on development machines only, never on a machine people use their BankID on.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from cryptography import x509

from eidcore.atomicfile import atomic_write_bytes
from issuer.vcard.card import VirtualCard
from issuer.vcard.piv import SLOTS, PivCard, PivState
from issuer.vcard.vpcd import VPCD_PORTS, CardFile, VpcdLink


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eid-vcard", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    insert = commands.add_parser("insert", help="insert the card until Ctrl-C or SIGTERM")
    insert.add_argument("--card", type=Path, required=True)
    insert.add_argument(
        "--slot",
        type=int,
        choices=[0, 1],
        default=0,
        help="0 = 'Virtual PCD 00 00', 1 = 'Virtual PCD 00 01'",
    )
    insert.add_argument("--host", default="127.0.0.1", help="where pcscd's vpcd listens")
    show = commands.add_parser("show", help="owner and PIN counters of a card file")
    show.add_argument("--card", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        raw = args.card.read_bytes()
    except OSError as exc:
        print(f"eid-vcard: {args.card}: {exc.strerror}", file=sys.stderr)
        return 1
    if b'"eid-agent/virtual-piv-card"' in raw:
        return _piv(args, raw)
    file = CardFile(args.card)
    try:
        state = file.load()
    except (OSError, ValueError) as exc:
        print(f"eid-vcard: {args.card}: not a virtual card ({exc})", file=sys.stderr)
        return 1
    if args.command == "show":
        cert = state.files.get(0xC001)
        owner = x509.load_der_x509_certificate(cert).subject.rfc4514_string() if cert else "-"
        print(f"serial: {state.serial}\nowner:  {owner}")
        for ref, name in ((0x81, "identification PIN"), (0x82, "signature PIN"), (0x83, "PUK")):
            print(f"{name}: {state.pins[ref].tries_left} tries left")
        return 0
    return _serve(
        args,
        VpcdLink(VirtualCard(state, file.save), host=args.host, port=VPCD_PORTS[args.slot]),
        state.serial,
    )


def _piv(args: argparse.Namespace, raw: bytes) -> int:
    try:
        state = PivState.from_json(raw)
    except ValueError as exc:
        print(f"eid-vcard: {args.card}: not a virtual PIV card ({exc})", file=sys.stderr)
        return 1
    if args.command == "show":
        obj = state.objects.get(SLOTS[0x9A], b"")
        print(
            f"serial: {state.serial} (PIV)\nPIN: {state.pin.tries_left} tries left\n"
            f"PUK: {state.puk.tries_left} tries left\ncertificates: {len(state.objects)}"
            + ("" if obj else " (no 9A certificate)")
        )
        return 0

    def save(new: PivState) -> None:
        atomic_write_bytes(args.card, new.to_json(), mode=0o600)

    link = VpcdLink(PivCard(state, save), host=args.host, port=VPCD_PORTS[args.slot])
    return _serve(args, link, state.serial)


def _serve(args: argparse.Namespace, link: VpcdLink, serial: str) -> int:
    try:
        link.insert()
    except OSError as exc:
        print(
            f"eid-vcard: cannot reach vpcd at {args.host}:{VPCD_PORTS[args.slot]} "
            f"({exc.strerror}); is pcscd with vsmartcard-vpcd running?",
            file=sys.stderr,
        )
        return 1
    print(
        f"eid-vcard: card {serial} inserted in 'Virtual PCD 00 0{args.slot}'; Ctrl-C removes it",
        file=sys.stderr,
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def until_vpcd_goes() -> None:
        link.wait()
        stop.set()

    threading.Thread(target=until_vpcd_goes, daemon=True).start()
    stop.wait()
    link.remove()
    print("eid-vcard: card removed", file=sys.stderr)
    return 0


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
