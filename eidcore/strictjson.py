"""JSON from outside, with named limits on what the standard parser lets through. Pure.

``json.loads`` accepts nesting up to the interpreter's recursion limit (and then raises
``RecursionError`` from deep inside, or lets a later recursive walk raise it), integers of
up to 4,300 digits (and ``ValueError`` past them, which is not a ``JSONDecodeError``),
and ``NaN``/``Infinity``. Every door that parses a document someone else wrote (the bridge,
credential and sealed files, issuer and relying-party messages) goes through ``loads``
here, so each of those is one typed error, ``JsonRefused``, with a reason for the log.

The C decoder stops at the interpreter's recursion limit by itself (a ``RecursionError``
we turn into a refusal); what it returns is then measured by an iterative walk, so the
depth check cannot itself exhaust the stack.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_MAX_DEPTH", "MAX_NUMBER_CHARS", "JsonRefused", "loads"]

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
            longer than ``MAX_NUMBER_CHARS`` characters, or NaN/Infinity.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("not UTF-8") from None
    else:
        text = data
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except JsonRefused:
        raise
    except RecursionError:
        # The C decoder counts its own recursion and stops at the interpreter's limit.
        raise JsonRefused(f"nested deeper than {max_depth}") from None
    except ValueError:  # JSONDecodeError is one
        raise JsonRefused("not JSON") from None
    if _depth(value) > max_depth:
        raise JsonRefused(f"nested deeper than {max_depth}")
    return value


def _depth(value: object) -> int:
    """How deep ``value`` nests (a scalar is 0); iterative, so no input can exhaust the
    stack here."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


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
