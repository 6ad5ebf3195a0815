"""How every command of the project ends: with its exit status, never a traceback.

Two ways out that are not failures of the command reach the person as a traceback unless
caught at the very top: Ctrl-C at a prompt (``KeyboardInterrupt``, a BaseException no
``except Exception`` sees) and a reader that went away (``eid-agent messages | head``:
``BrokenPipeError`` on a write, and again when Python flushes stdout at exit). Every
console script runs its ``main`` through ``run``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["EXIT_CLOSED_PIPE", "EXIT_INTERRUPTED", "run"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command it interrupted
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, what the shell reports for `yes | head`


def run(main: Callable[[], int]) -> NoReturn:
    """Run ``main`` and exit with its status.

    Ctrl-C: one line ("Cancelled.", in the person's language) on stderr, status 130.
    A closed stdout: nothing more is written (as for any tool that dies of SIGPIPE),
    status 141.
    """
    try:
        status = main()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except KeyboardInterrupt:
        _say_cancelled()
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        status = EXIT_CLOSED_PIPE
    if status == EXIT_CLOSED_PIPE:
        # Python flushes stdout once more at exit; point it at nothing so that flush has
        # nowhere to fail (the recipe in Python's signal documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(status)


def _say_cancelled() -> None:
    from eidcore.messages import Language, Term, catalogue, language_from_env

    language = _language(sys.argv[1:]) or language_from_env(os.environ)
    try:
        sys.stderr.write("\n" + catalogue().term(Term.CONSOLE_CANCELLED, Language(language)) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr is gone too: the status says it


def _language(argv: Sequence[str]) -> str | None:
    """``--lang sv|en`` from the command line, read without the parser (which may be what
    was interrupted)."""
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--lang" and i + 1 < len(argv) else None
        if arg.startswith("--lang="):
            value = arg.split("=", 1)[1]
        if value in ("sv", "en"):
            return value
    return None
