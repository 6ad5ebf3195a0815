"""Which characters a text that a person is shown and then signs may contain. Pure.

What the dialog shows must be exactly what is signed. A text can break that without any
markup: a right-to-left override makes ``8765-4321`` display as ``1234-5678``, a
zero-width space or a Hangul filler draws as nothing, a line separator starts a line the
parser did not see. The rule is one function, used by every door that accepts such a text
(today the bridge), so no door can be laxer than another. What is refused and why is listed
in docs/bridge-api.md.

Refused, each with its position so the website learns which character broke the rule:
- control characters (category Cc) other than tab, line feed, and carriage return
  directly before a line feed; a lone CR is a line break to some renderers and not others;
- every format character (Cf): the bidirectional embeddings, overrides, isolates and marks
  (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C), zero-width space, joiner and
  non-joiner, word joiner, soft hyphen, the invisible operators, tag characters, BOM …;
- line and paragraph separators (U+2028, U+2029: category Zl, Zp);
- characters that draw as blank but are letters or symbols: the Hangul fillers (U+115F,
  U+1160, U+3164, U+FFA0), the Braille blank (U+2800), the Khmer inherent vowels (U+17B4,
  U+17B5), the combining grapheme joiner (U+034F), the Mongolian free variation selectors
  (U+180B–U+180F) and the variation selectors (U+FE00–U+FE0D, U+E0100–U+E01EF) other
  than the text/emoji presentation pair U+FE0E/U+FE0F;
- private-use and unassigned code points (Co, Cn): a font may draw anything for them, and
  what is unassigned today may be assigned a meaning tomorrow;
- more than ``MAX_COMBINING`` combining marks on one character: a tall stack draws over the
  lines above and below.
A text with nothing visible once white space is set aside is refused as empty.

Right-to-left letters themselves are allowed (Hebrew and Arabic are real text); how they
are drawn so that the screen keeps the order of the characters is the view's concern
(agent/ui/view.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

__all__ = [
    "MAX_COMBINING",
    "MAX_NAME",
    "EmptyText",
    "InvisibleCharacter",
    "NameRefused",
    "TextRefused",
    "check",
    "check_name",
    "from_base64",
]

MAX_COMBINING = 8  # Vietnamese needs 2, pointed Hebrew and Tibetan stacks a few more

_FILLERS = (0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x17B4, 0x17B5, 0x034F)
_BLANK_LETTERS = frozenset(
    [*_FILLERS, *range(0x180B, 0x1810), *range(0xFE00, 0xFE0E), *range(0xE0100, 0xE01F0)]
)
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"})
_COMBINING = frozenset({"Mn", "Me"})


class TextRefused(ValueError):
    """The text may not be shown and signed. ``details`` is for the website."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class InvisibleCharacter(TextRefused):
    """``char`` at ``index`` (counted in characters of the text) breaks the rule."""

    def __init__(self, char: str, index: int, why: str) -> None:
        name = unicodedata.name(char, "unnamed")
        super().__init__(f"U+{ord(char):04X} {name} at character {index}: {why}")
        self.char, self.index, self.why = char, index, why


class EmptyText(TextRefused):
    def __init__(self) -> None:
        super().__init__("nothing visible in the text")


def check(text: str) -> str:
    """``text`` itself, if a person can be shown it exactly.

    Raises:
        InvisibleCharacter: the first character that breaks the rule.
        EmptyText: nothing but white space.
    """
    combining = 0
    visible = False
    for index, ch in enumerate(text):
        why = _why_refused(text, index, ch)
        if why is not None:
            raise InvisibleCharacter(ch, index, why)
        if unicodedata.category(ch) in _COMBINING:
            combining += 1
            if combining > MAX_COMBINING:
                raise InvisibleCharacter(ch, index, f"more than {MAX_COMBINING} combining marks")
        else:
            combining = 0
        if not ch.isspace():
            visible = True
    if not visible:
        raise EmptyText()
    return text


def _why_refused(text: str, index: int, ch: str) -> str | None:
    if ch in "\t\n":
        return None
    if ch == "\r":
        return (
            None if text.startswith("\n", index + 1) else "a carriage return not before a line feed"
        )
    code = ord(ch)
    if code in _BLANK_LETTERS:
        return "draws as blank"
    category = unicodedata.category(ch)
    if category in _REFUSED_CATEGORIES:
        return _CATEGORY_WHY[category]
    return None


_CATEGORY_WHY = {
    "Cc": "a control character",
    "Cf": "an invisible format character (bidirectional control, zero-width, tag …)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
    "Cs": "a surrogate",
}


def from_base64(value: object, max_chars: int) -> str:
    """The text a base64 field carries (``userVisibleData`` at the bridge, at the relay and
    in what a relay hands the agent), if a person can be shown it exactly.

    Raises:
        TextRefused: not a base64 string of at most ``max_chars``, not UTF-8, or the rule's
            own reason; ``details`` says which, never echoing the text.
    """
    if not isinstance(value, str):
        raise TextRefused("not a base64 string")
    if len(value) > max_chars:
        raise TextRefused(f"longer than {max_chars} characters of base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise TextRefused("not valid base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TextRefused("not base64 of UTF-8 text") from None
    return check(text)


# -- names shown in quotes ------------------------------------------------------------------

MAX_NAME = 100

# Every Quotation_Mark (Unicode PropList) but the two apostrophes a company name uses
# ("McDonald's"), and the look-alikes of the guillemets the dialogs put around a name.
_QUOTES = frozenset('"«»‘‚‛“”„‟‹›⹂「」『』〝〞〟﹁﹂﹃﹄＂＇｢｣≪≫⟪⟫《》〈〉❮❯❝❞❛❜')
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])")
# Scripts that may share a name (UTS #39's "highly restrictive" level): Latin with
# Japanese, Chinese or Korean writing, the way their companies write their names.
_SCRIPT_SETS = (
    frozenset({"LATIN", "CJK", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"}),
    frozenset({"LATIN", "CJK", "IDEOGRAPHIC", "BOPOMOFO"}),
    frozenset({"LATIN", "CJK", "IDEOGRAPHIC", "HANGUL"}),
)


class NameRefused(TextRefused):
    """A name that may not stand between the quotes a dialog puts around it."""


def check_name(name: str) -> str:
    """``name`` itself, if a dialog can show it in quotes as the requesting party's name
    (beside the domain, never instead of it) without it forging anything: one line of at
    most ``MAX_NAME`` characters under the text rule, no quotation mark or look-alike of
    the guillemets (``Shop», vill att du skriver under. «Bank`` forged a second sentence),
    nothing that reads as a web address (the domain the person checks is shown beside
    it), and letters of one script (``Bаnk`` with a Cyrillic а is not ``Bank``).

    Raises:
        NameRefused: saying which rule, never echoing the name.
        TextRefused: the text rule's own reasons.
    """
    if not 0 < len(name) <= MAX_NAME:
        raise NameRefused(f"a name is 1 to {MAX_NAME} characters")
    check(name)
    if "\n" in name or "\t" in name or "\r" in name:
        raise NameRefused("a name is one line")
    for index, ch in enumerate(name):
        if ch in _QUOTES:
            raise NameRefused(f"U+{ord(ch):04X} at character {index}: a quotation mark")
    if "://" in name or "www." in name.lower() or _DOMAIN.search(name):
        raise NameRefused("a name may not read as a web address")
    scripts = {_script(ch) for ch in name if ch.isalpha()}
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_SETS):
        raise NameRefused(f"letters of several scripts: {', '.join(sorted(scripts)).lower()}")
    return name


def _script(letter: str) -> str:
    """The script of a letter, as the first word of its Unicode name says (``LATIN``,
    ``CYRILLIC``, ``CJK`` …): the standard library has no Script property."""
    words = unicodedata.name(letter, "UNKNOWN").split()
    if words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1:
        words = words[1:]
    return words[0]
