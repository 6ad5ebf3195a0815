"""What a dialog shows, decided without a display: the requesting site and the text to
sign. Pure; the desktop UI only draws what these functions return, and the tests check
the security rules here.

The site: the registrable domain (from the Public Suffix List) is what a person must
read, so it is emphasised and never shortened; the subdomains before it are shortened
from the left when long (``…`` first), since a long prefix is how
``bank.se.login.evil.example`` hides its real domain. An internationalised name is shown
in Unicode only when every label is plain Latin script (å, ä, ö, é, ü …); otherwise the
ASCII form (``xn--…``) is shown and the dialog warns, because a Cyrillic ``аррӏе`` looks
like ``apple``. The only importer of publicsuffixlist.

The text: ``simpleMarkdownV1`` (BankID's formatted-text guideline) — headings (``#``,
``##``, ``###``), ``*italic*`` and ``**bold**``, list items (``+ ``, also ``- ``/``* ``),
tables (``| a | b |`` with a ``|---|`` separator row), a rule (``---``), and ``\\`` before
a special character for the character itself. Whatever is not this syntax is shown as
typed: the dialog never hides a character of what is signed (a property test checks).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from eidcore.messages import Term

__all__ = [
    "ATTENTION_SECONDS",
    "CALL_TERMS",
    "KEEP_ORDER",
    "RTL_MARK",
    "Block",
    "BlockKind",
    "OriginView",
    "Run",
    "display_lines",
    "format_text",
    "has_rtl",
    "origin_view",
    "plain_text",
]

# A phone order's second sentence, by who called whom (both UIs say it under the lead):
# the party calling the person is how phone fraud goes, so that one says to stop.
CALL_TERMS = {"user": Term.CALL_YOU_CALLED, "RP": Term.CALL_THEY_CALLED}

# A new question this soon after one was closed under the person may meet fingers still
# typing the old answer (seconds: a password is typed in a few). Both UIs then make the
# person acknowledge the new question before it can take an answer.
ATTENTION_SECONDS = 10.0

MAX_PREFIX = 24  # characters of subdomains shown before the registrable domain


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@dataclass(frozen=True)
class OriginView:
    scheme: str  # "https"
    prefix: str  # subdomains, maybe shortened: "…ogin.secure."
    registrable: str  # emphasised: "bank.se"
    port: str  # ":8443" or ""
    lookalike: bool  # non-Latin letters: shown as xn--, with a warning

    @property
    def host_text(self) -> str:
        return f"{self.prefix}{self.registrable}{self.port}"


def _latin_only(label: str) -> bool:
    for ch in label:
        if ch.isascii():
            continue
        if not ch.isalpha() or not unicodedata.name(ch, "").startswith("LATIN "):
            return False
    return True


def _display_labels(host: str) -> tuple[list[str], bool]:
    labels = host.split(".")
    shown, lookalike = [], False
    for label in labels:
        if label.startswith("xn--"):
            try:
                decoded = label.encode("ascii").decode("idna")
            except UnicodeError:
                decoded = None
            if decoded is not None and _latin_only(decoded):
                shown.append(decoded)
                continue
            lookalike = True
        shown.append(label)
    return shown, lookalike


def origin_view(origin: str) -> OriginView:
    """How to show ``origin`` (``scheme://host[:port]``, as the bridge received it)."""
    parts = urlsplit(origin)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # the bridge admits no such origin; show what came, never raise
        port = ""
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if is_ip or "." not in host:
        shown = f"[{host}]" if ":" in host else host
        return OriginView(parts.scheme, "", shown, port, False)
    labels, lookalike = _display_labels(host)
    registrable = _psl().privatesuffix(host) or host  # e.g. a bare public suffix
    count = registrable.count(".") + 1
    head = ".".join(labels[:-count])
    prefix = f"{head}." if head else ""
    if len(prefix) > MAX_PREFIX:
        prefix = "…" + prefix[-(MAX_PREFIX - 1) :]
    return OriginView(parts.scheme, prefix, ".".join(labels[-count:]), port, lookalike)


# -- the text to sign ------------------------------------------------------------------------


class BlockKind(enum.StrEnum):
    PARAGRAPH = "paragraph"
    HEADING1 = "heading1"
    HEADING2 = "heading2"
    HEADING3 = "heading3"
    ITEM = "item"
    ROW = "row"
    HEADER_ROW = "headerRow"
    RULE = "rule"


@dataclass(frozen=True)
class Run:
    text: str
    bold: bool = False
    italic: bool = False


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    cells: tuple[tuple[Run, ...], ...]  # one cell except in table rows; empty for a rule
    rtl: bool = False  # has right-to-left script: drawn inside KEEP_ORDER, and said so


# Right-to-left letters (R, AL) and Arabic digits (AN) make the Unicode bidirectional
# algorithm reorder a line even without any control character: in "שלום 1234 5678" the
# digits join the Hebrew run and show as "5678 1234". A line holding one is drawn inside a
# left-to-right override, after a left-to-right mark so the line's base direction is LTR
# too: every glyph then stands in the order of its character, as it is signed. Hebrew and
# Arabic words then read backwards, which is why the dialog says so (Term.RTL_NOTE). The
# bridge refuses these controls in the text itself (eidcore/visibletext.py), so the only
# ones on screen are ours.
KEEP_ORDER = ("\u200e\u202d", "\u202c")
_RTL_CLASSES = frozenset({"R", "AL", "AN"})


def has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in _RTL_CLASSES for ch in text)


_HEADING = re.compile(r"^(#{1,3}) (.*)$")
_ITEM = re.compile(r"^[+*-] (.*)$")
_RULE = re.compile(r"^-{3,}\s*$")
_SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$")


def format_text(text: str, fmt: str) -> list[Block]:
    """Blocks to draw, one per line of ``text`` (a table's separator row aside). The console
    and the desktop dialog both draw these, so they cannot disagree."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [Block(b.kind, b.cells, has_rtl(line)) for b, line in _blocks(lines, fmt)]


def _blocks(lines: list[str], fmt: str) -> list[tuple[Block, str]]:
    if fmt != "simpleMarkdownV1":
        return [(Block(BlockKind.PARAGRAPH, ((Run(line),),)), line) for line in lines]
    blocks: list[tuple[Block, str]] = []
    for i, line in enumerate(lines):
        next_line = lines[i + 1] if i + 1 < len(lines) else ""
        if _SEPARATOR.match(line):
            continue  # drawn as the header row's underline
        if heading := _HEADING.match(line):
            kind = (BlockKind.HEADING1, BlockKind.HEADING2, BlockKind.HEADING3)[
                len(heading.group(1)) - 1
            ]
            blocks.append((Block(kind, (_runs(heading.group(2)),)), line))
        elif _RULE.match(line):
            blocks.append((Block(BlockKind.RULE, ()), line))
        elif item := _ITEM.match(line):
            blocks.append((Block(BlockKind.ITEM, (_runs(item.group(1)),)), line))
        elif line.startswith("|") and line.rstrip().endswith("|") and len(line.strip()) > 1:
            cells = tuple(_runs(c.strip()) for c in _split_cells(line.strip()[1:-1]))
            header = bool(_SEPARATOR.match(next_line))
            kind = BlockKind.HEADER_ROW if header else BlockKind.ROW
            blocks.append((Block(kind, cells), line))
        else:
            blocks.append((Block(BlockKind.PARAGRAPH, (_runs(line),)), line))
    return blocks


def _split_cells(inner: str) -> list[str]:
    cells, current, escaped = [], "", False
    for ch in inner:
        if escaped:
            current += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "|":
            cells.append(current)
            current = ""
        else:
            current += ch
    cells.append(current + ("\\" if escaped else ""))
    return cells


def _runs(text: str) -> tuple[Run, ...]:
    """``**bold**`` and ``*italic*`` spans; an unclosed marker is shown as typed."""
    runs: list[Run] = []
    buffer = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "\\*+#|-":
            buffer += text[i + 1]
            i += 2
            continue
        if ch == "*":
            marker = "**" if text.startswith("**", i) else "*"
            end = text.find(marker, i + len(marker))
            if end > i + len(marker):
                if buffer:
                    runs.append(Run(buffer))
                    buffer = ""
                inner = text[i + len(marker) : end]
                runs.append(Run(inner, bold=marker == "**", italic=marker == "*"))
                i = end + len(marker)
                continue
        buffer += ch
        i += 1
    if buffer or not runs:
        runs.append(Run(buffer))
    return tuple(runs)


RTL_MARK = "⇄ "  # before each line drawn inside KEEP_ORDER, which Term.RTL_NOTE explains


def display_lines(blocks: list[Block], escape: Callable[[str], str] = str) -> list[str]:
    """Each block as one line of plain text for a terminal, ``escape``d, then inside
    KEEP_ORDER and marked when it has right-to-left script, as the desktop dialog draws
    it."""
    lines = []
    for block in blocks:
        text = escape(plain_text([block])) if block.kind is not BlockKind.RULE else "──────"
        lines.append(f"{RTL_MARK}{KEEP_ORDER[0]}{text}{KEEP_ORDER[1]}" if block.rtl else text)
    return lines


def plain_text(blocks: list[Block]) -> str:
    """Every character the blocks show, in order (for tests and screen readers)."""
    out = []
    for block in blocks:
        out.append(" ".join("".join(r.text for r in cell) for cell in block.cells))
    return "\n".join(out)
