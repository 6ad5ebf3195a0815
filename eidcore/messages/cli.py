"""The command lines' own words — ``--help``, usage and argparse's errors — in the
person's language.

The message catalogue speaks Swedish and English, but ``eid-agent --help`` was English
under ``--lang sv`` and ``LANG=sv_SE.UTF-8``: argparse writes its own words ("usage:",
"options", "the following arguments are required") through ``gettext``, which finds no
translation for a program that ships none, and each option's help is a string in code.
``cli.toml`` beside the catalogue holds the Swedish for both, keyed by the English (as
gettext keys a message by its source text): a help string added in English without its
Swedish fails ``tests/test_languages.py``.

argparse looks its words up through its module's ``_`` and ``ngettext`` at the moment it
writes them; ``speaking`` points those at the table while a parser is built and used, and
puts argparse's own back afterwards (a test process calls several command lines' ``main``
in turn, each in its own language).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from eidcore.messages import Language

__all__ = ["language_in", "localise", "speaking", "texts"]


@functools.cache
def texts(language: Language) -> Mapping[str, str]:
    """English → ``language`` for the command lines (empty for English)."""
    if language is Language.EN:
        return {}
    raw = tomllib.loads(Path(__file__).with_name("cli.toml").read_text("utf-8"))
    table = raw.get(language.value, {})
    return {str(k): str(v) for k, v in table.items()}


@contextlib.contextmanager
def speaking(language: Language) -> Iterator[None]:
    """argparse's own words in ``language`` inside the block: build the parser and parse
    in it (group titles are named when a parser is made, errors when it parses)."""
    table = texts(language)

    def gettext(message: str) -> str:
        return table.get(message, message)

    def ngettext(singular: str, plural: str, n: int) -> str:
        return gettext(singular if n == 1 else plural)

    saved = argparse._, argparse.ngettext  # type: ignore[attr-defined]
    argparse._ = gettext  # type: ignore[attr-defined]
    argparse.ngettext = ngettext  # type: ignore[attr-defined]
    try:
        yield
    finally:
        argparse._, argparse.ngettext = saved  # type: ignore[attr-defined]


def localise(parser: argparse.ArgumentParser, language: Language) -> None:
    """Every description, help text and group title in ``parser`` and its subcommands,
    in ``language`` (what the table has; the rest stays English)."""
    table = texts(language)
    if not table:
        return

    def tr(text: str | None) -> str | None:
        return table.get(text, text) if text and text != argparse.SUPPRESS else text

    for each in _parsers(parser):
        each.description = tr(each.description)
        each.epilog = tr(each.epilog)
        for group in each._action_groups:
            group.title = tr(group.title)
            group.description = tr(group.description)
        for action in each._actions:
            action.help = tr(action.help)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    choice.help = tr(choice.help)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser below it, each once."""
    seen: set[int] = set()
    pending = [parser]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())


def language_in(argv: list[str], environ: Mapping[str, str]) -> Language:
    """``--lang sv|en`` (or ``--lang=…``) from a command line not parsed yet — the parser
    must speak it already — else the locale's."""
    from eidcore.messages import language_from_env

    for index, arg in enumerate(argv):
        value = None
        if arg == "--lang" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--lang="):
            value = arg.split("=", 1)[1]
        if value in (Language.SV.value, Language.EN.value):
            return Language(value)
    return language_from_env(environ)
