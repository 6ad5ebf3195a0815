"""JSON from outside, with named limits on what the standard parser lets through. Pure.

``json.loads`` accepts nesting up to the interpreter's recursion limit (and then raises
``RecursionError`` from deep inside, or lets a later recursive walk raise it), integers of
up to 4,300 digits (and ``ValueError`` past them, which is not a ``JSONDecodeError``),
``NaN``/``Infinity``, and lone surrogates written as escapes (``"\\ud800"``: plain ASCII on
the wire, but a ``str`` that no UTF-8 encoder, database driver or log file takes; it
raised ``UnicodeEncodeError`` deep inside the relay's store). Every door that parses a
document someone else wrote (the bridge, the relay, credential and sealed files, issuer
and relying-party messages) goes through ``loads`` here, so each of those is one typed
error, ``JsonRefused``, with a reason for the log.

The C decoder stops at the interpreter's recursion limit by itself (a ``RecursionError``
we turn into a refusal); what it returns is then walked once, iteratively (so the walk
cannot itself exhaust the stack), for its depth and for text that is not Unicode scalar
values — keys as well as values. Every string any door accepts has passed here, so no
field needs a rule of its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_MAX_DEPTH", "MAX_NUMBER_CHARS", "JsonRefused", "is_text", "loads"]

DEFAULT_MAX_DEPTH = 32  # our own formats nest at most 5 deep
MAX_NUMBER_CHARS = 40  # a 128-bit integer has 39 digits; nothing of ours is longer


class JsonRefused(ValueError):
    """Not JSON, or JSON past a limit. ``reason`` is short and safe to log or return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def loads(data: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The parsed value.

    Raises:
        JsonRefused: not UTF-8, not JSON, nested deeper than ``max_depth``, a number
            longer than ``MAX_NUMBER_CHARS`` characters, NaN/Infinity, a string (key
            or value) with a surrogate code point, or a key twice in one object.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("not UTF-8") from None
    else:
        text = data
    try:
        value = json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except JsonRefused:
        raise
    except RecursionError:
        # The C decoder counts its own recursion and stops at the interpreter's limit.
        raise JsonRefused(f"nested deeper than {max_depth}") from None
    except ValueError:  # JSONDecodeError is one
        raise JsonRefused("not JSON") from None
    # Surrogates reach a str only through a \u escape when the input was bytes (strict
    # UTF-8 decoding refuses encoded ones), so most documents skip that half of the walk.
    _check(value, max_depth, texts="\\u" in text or isinstance(data, str))
    return value


def _check(value: object, max_depth: int, *, texts: bool) -> None:
    """Raises JsonRefused: ``value`` nests deeper than ``max_depth`` (a scalar is 0), or,
    with ``texts``, holds a string that is not Unicode text. Iterative, so no input can
    exhaust the stack here."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if texts and not is_text(item):
                raise JsonRefused("a string that is not Unicode text (a lone surrogate)")
            continue
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
            if texts:
                stack.extend((key, depth) for key in item)
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > max_depth:
            raise JsonRefused(f"nested deeper than {max_depth}")
        stack.extend((child, depth + 1) for child in children)


def is_text(value: str) -> bool:
    """Whether ``value`` is Unicode scalar values only (no surrogate code point): what
    UTF-8 can encode. Also for text that reaches a door other than as JSON."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: ``{"a": 1, "a": 2}`` is 2 to Python, 1 to
    some other parsers, and either to whoever reads it next — a value one reader checks
    and another uses. Refused, not guessed."""
    value = dict(pairs)
    if len(value) != len(pairs):
        raise JsonRefused("a key appears twice in one object")
    return value


def _int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonRefused(f"a number longer than {MAX_NUMBER_CHARS} characters")
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonRefused(f"a number longer than {MAX_NUMBER_CHARS} characters")
    value = float(literal)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise JsonRefused("a number out of range")
    return value


def _constant(literal: str) -> Any:
    raise JsonRefused(f"{literal} is not a JSON number")
