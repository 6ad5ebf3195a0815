"""``eid-agent messages [CODE]``: the message catalogue as a person reads it."""

from __future__ import annotations

import argparse

from agent.cli.io import Io
from eidcore.messages import MessageCode, Severity, Term, catalogue

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="?", type=int, help="one message code")


def run(io: Io, args: argparse.Namespace) -> int:
    entries = list(catalogue())
    if args.code is not None:
        try:
            entries = [catalogue().entry(MessageCode(args.code))]
        except ValueError:
            io.stderr.write(io.term(Term.CLI_NO_MESSAGE, code=args.code) + "\n")
            return 2
    severities = {
        Severity.INFO: Term.SEVERITY_INFO,
        Severity.WARNING: Term.SEVERITY_WARNING,
        Severity.ERROR: Term.SEVERITY_ERROR,
    }
    for entry in entries:
        # as a person would read it: the code filled in, a PIN named, the rest of what
        # is filled in at the time shown as "…" (never a raw {placeholder})
        values: dict[str, object] = {
            name: Term.TOKEN_PIN if name == "pin" else "…" for name in entry.placeholders - {"code"}
        }
        text = catalogue().render(entry.code, io.language, **values)
        io.stdout.write(
            f"{int(entry.code)}  {io.term(severities[entry.severity])}  {text.title}\n"
            f"    {text.body}\n\n"
        )
    return 0
