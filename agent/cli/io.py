"""Where a command reads and writes, in which language, and the words it was given; tests
pass their own streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from eidcore.messages import Language, MessageCode, Term, catalogue

__all__ = ["YES", "Io", "Say", "answer", "sayer"]

YES = frozenset({"y", "yes", "j", "ja"})


class Io:
    """Where a command reads and writes; tests pass their own. ``argv``: the command line
    as given (``run`` restarts itself with it after an update)."""

    def __init__(
        self,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
        language: Language,
        argv: tuple[str, ...] = (),
    ):
        self.stdin, self.stdout, self.stderr, self.language = stdin, stdout, stderr, language
        self.argv = argv

    def term(self, term: Term, **values: object) -> str:
        return catalogue().term(term, self.language).format(**values)

    def tell(self, code: MessageCode, **params: object) -> None:
        from agent.notices import Notice, format_notice

        self.stderr.write(format_notice(Notice(code, params), self.language))


def answer(question: str, stdin: TextIO, stderr: TextIO) -> bool | None:
    """Ask a yes/no ``question`` on stderr: True for yes, False for anything else, None
    when the input ended without an answer (a pipe, ``</dev/null``)."""
    stderr.write(question)
    stderr.flush()
    line = stdin.readline()
    if not line:
        stderr.write("\n")  # the question is left without its line end
        return None
    return line.strip().lower() in YES


Say = Callable[..., str]  # a term in the person's language, its placeholders filled


def sayer(language: Language, end: str = "") -> Say:
    """``say(Term.X, name=value)``: the term in ``language``, filled, then ``end``."""

    def say(term: Term, **values: object) -> str:
        return catalogue().term(term, language).format(**values) + end

    return say
