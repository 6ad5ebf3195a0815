"""``eid-agent``: the command line. A thin driver: it parses, hands the command to its
module, and renders failures through the catalogue. Exit status 0 = done, 1 = a failure
the person was told about, 2 = the command line itself was wrong.

Each command is a module with ``add_arguments(parser, common)`` (its own options) and
``run(io, args) -> int``; ``COMMANDS`` names them. A module is imported only when its
command is given (or for ``--help``'s whole parser), so ``--version`` and ``credentials
list`` start quickly (listing 50 credentials is benchmarked at well under 300 ms).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, Protocol, TextIO, cast

from agent import __version__
from agent.cli.io import Io
from eidcore.logline import log_to, one_line
from eidcore.messages import Language, MessageCode, Term
from eidcore.messages.cli import language_in, localise, speaking

__all__ = ["COMMANDS", "Command", "entry", "main", "parser"]

log = logging.getLogger("agent.cli")


class CommandModule(Protocol):
    def add_arguments(
        self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser
    ) -> None: ...

    def run(self, io: Io, args: argparse.Namespace) -> int: ...


@dataclasses.dataclass(frozen=True)
class Command:
    module: str
    help: str
    renamed_to: str | None = None  # an old name: said so, then run as the new one

    def load(self) -> CommandModule:
        return cast(CommandModule, importlib.import_module(self.module))


COMMANDS: dict[str, Command] = {
    "run": Command("agent.cli.run", "start the agent"),
    "credentials": Command(
        "agent.cli.credentials", "your BankIDs: list them, manage BankIDs on file"
    ),
    "enrol": Command(
        "agent.cli.enrolment",
        "order a BankID with an activation code, on file or on a PKCS#11 token",
    ),
    "card": Command("agent.cli.card", "BankID on card: PINs and PUK"),
    "open": Command("agent.cli.link", "carry out the order an eid-agent:// link names"),
    "waiting": Command(
        "agent.cli.waiting", "orders waiting for me: a website's, while on the phone with it"
    ),
    "update": Command("agent.cli.update", "updates of this agent"),
    "install": Command(
        "agent.cli.install",
        "install (or repair) this agent for this user from an update repository",
    ),
    "uninstall": Command(
        "agent.cli.setup",
        "stop the agent and remove it; your BankIDs and settings stay unless asked",
    ),
    "self-test": Command("agent.cli.selftest", "check this installation works"),
    "doctor": Command("agent.cli.doctor", "a report for support: no secrets, no personal numbers"),
    "desktop": Command("agent.cli.desktopentry", "menu and autostart entries for this user"),
    "messages": Command("agent.cli.messages", "show the catalogue"),
    # old names, kept for one release
    "order": Command("agent.cli.enrolment", "", renamed_to="enrol"),
    "tokens": Command("agent.cli.credentials", "", renamed_to="credentials"),
}
_VALUED = frozenset({"--data-dir", "--lang"})  # the options before a command that take a value


def _common(*, on_subcommand: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand. On subcommands their defaults
    are suppressed, or argparse would overwrite a value given before the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if on_subcommand else None
    common.add_argument(
        "--data-dir",
        type=Path,
        help="where credentials are kept (default: the per-user data folder)",
        default=default,
    )
    common.add_argument(
        "--lang",
        choices=[lang.value for lang in Language],
        default=default,
        help="the language to speak (default: the locale's)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="log more (-vv for debug); secrets are never logged",
        default=argparse.SUPPRESS if on_subcommand else 0,
    )
    return common


def chosen(argv: Sequence[str]) -> str | None:
    """The command word in ``argv``: the first word that is neither an option nor an
    option's value."""
    words = iter(argv)
    for word in words:
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) with just that command's options (``""``:
    none): the other commands are still named, so a wrong word is answered as argparse
    does and ``--help`` lists them all."""
    common = _common(on_subcommand=True)
    top = argparse.ArgumentParser(
        prog="eid-agent",
        parents=[_common(on_subcommand=False)],
        description="E-identification agent.",
    )
    top.add_argument("--version", action="version", version=f"eid-agent {__version__}")
    shown = [name for name, command in COMMANDS.items() if not command.renamed_to]
    commands = top.add_subparsers(
        dest="command", required=True, metavar="{" + ",".join(shown) + "}"
    )
    for name, command in COMMANDS.items():
        extra = {"help": command.help} if not command.renamed_to else {}
        sub = commands.add_parser(name, parents=[common], **extra)  # type: ignore[arg-type]
        if only is None or only == name:
            command.load().add_arguments(sub, common)
    return top


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the parser speaks the person's language before it has read --lang itself
    language = language_in(argv, os.environ)
    word = chosen(argv)
    with speaking(language):
        whole = parser(word if word in COMMANDS else "")
        localise(whole, language)
        args = whole.parse_args(argv)
    io = Io(stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr, language, tuple(argv))
    _configure_logging(args.verbose, io.stderr)
    command = COMMANDS[args.command]
    if command.renamed_to:
        io.stderr.write(io.term(Term.CLI_RENAMED, old=args.command, new=command.renamed_to) + "\n")
    try:
        return command.load().run(io, args)
    except BrokenPipeError:
        raise  # the reader went away: nothing to tell it (eidcore/entry.py)
    except Exception as exc:
        from agent.notices import notice_for

        notice = notice_for(exc)
        if notice.code is MessageCode.INTERNAL_ERROR:
            # one line for the person's terminal; the traceback with -vv (never by default)
            log.error("unexpected failure: %s", one_line(exc))
            log.debug("unexpected failure", exc_info=True)
        else:
            log.info("%s: %s", type(exc).__name__, exc)
        io.tell(notice.code, **notice.params)
        return 1


def _configure_logging(verbosity: int, stream: TextIO) -> None:
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    log_to(stream, level)


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
