"""What GTK actually draws of a text to sign: the real text view of the signing dialog,
laid out by Pango on a virtual screen, read back character by character.

Two properties, over attack texts and a seeded mix of scripts:
- every character of the signed text is in the view, and each that is not white space
  or a combining mark is drawn with a width (nothing hidden);
- on every line the characters stand left to right in the order they are signed, also
  where Hebrew or Arabic letters and digits would otherwise be reordered (the "1234 5678"
  shown as "5678 1234" attack), and a line that needed that is marked and explained.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import unicodedata

from tests.desktop_kit import Screen

# Runs in its own interpreter on the virtual screen: builds the dialog's text view from
# the same prepared fields the agent sends, and reports each buffer line as
# [[char, x, width], ...] in buffer coordinates.
_LAYOUT = """
import json, sys
from agent.ui.desktop.client import text_fields
from agent.ui.desktop import helper
from gi.repository import Gtk
texts, fmt, strip = json.loads(sys.stdin.read())
out = []
for text in texts:
    fields = text_fields(text, fmt, "note")
    keep = ["", "", ""] if strip else fields["keep_order"]
    view = helper.text_view(fields["blocks"], keep)
    window = Gtk.OffscreenWindow()
    window.set_default_size(4000, 200)
    view.set_wrap_mode(Gtk.WrapMode.NONE)
    window.add(view)
    window.show_all()
    while Gtk.events_pending():
        Gtk.main_iteration()
    buffer = view.get_buffer()
    lines = []
    for number in range(buffer.get_line_count() - 1):  # the last is after the final newline
        it = buffer.get_iter_at_line(number)
        line = []
        while not it.ends_line():
            rect = view.get_iter_location(it)
            line.append([it.get_char(), rect.x, rect.width])
            it.forward_char()
        lines.append(line)
    out.append({"lines": lines, "note": fields["rtl_note"]})
print(json.dumps(out))
"""

_CONTROLS = {"\u200e", "\u202d", "\u202c"}
_MARK = "⇄ "


def _layout(
    screen: Screen, texts: list[str], fmt: str = "plaintext", strip: bool = False
) -> list[dict]:  # type: ignore[type-arg]
    result = subprocess.run(
        [sys.executable, "-c", _LAYOUT],
        input=json.dumps([texts, fmt, strip]),
        capture_output=True,
        text=True,
        env=screen.env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def _signed_chars(line: list[list[object]]) -> tuple[str, list[list[object]]]:
    """The line without our own controls and mark: the characters that are signed."""
    text = "".join(str(c[0]) for c in line)
    skip = len(_MARK) if text.startswith(_MARK + "\u200e") else 0
    kept = [c for c in line[skip:] if c[0] not in _CONTROLS]
    return "".join(str(c[0]) for c in kept), kept


def _mark(ch: object) -> bool:
    return unicodedata.category(str(ch)) in {"Mn", "Me"}  # drawn on the character before


def _in_order(chars: list[list[object]]) -> bool:
    xs = [int(str(c[1])) for c in chars if not _mark(c[0])]
    return all(a < b for a, b in itertools.pairwise(xs))


def _drawn(chars: list[list[object]]) -> bool:
    return all(int(str(c[2])) > 0 for c in chars if not str(c[0]).isspace() and not _mark(c[0]))


ATTACKS = [
    "Betala till konto: שלום 1234 5678",
    "1234 5678 שלום",
    "Belopp: ١٢٣ kr till مرحبا 42",
    "עברית only",
    "Mix: abc אבג 123 דהו def 456",
    "Plain Latin: 1234 5678, åäö",
]


def test_every_line_keeps_the_order_of_its_characters(screen: Screen) -> None:
    for text, shown in zip(ATTACKS, _layout(screen, ATTACKS), strict=True):
        [line] = shown["lines"]
        signed, chars = _signed_chars(line)
        assert signed == text
        assert _in_order(chars), (text, chars)
        assert _drawn(chars), text
        rtl = any(unicodedata.bidirectional(c) in {"R", "AL", "AN"} for c in text)
        assert (shown["note"] is not None) == rtl
        assert "".join(str(c[0]) for c in line).startswith(_MARK) == rtl


def test_without_the_order_keeping_controls_the_attack_works(screen: Screen) -> None:
    # The property is not vacuous: Pango's own bidirectional layout reorders these lines.
    shown = _layout(screen, ATTACKS[:3], strip=True)
    for text, result in zip(ATTACKS[:3], shown, strict=True):
        _, chars = _signed_chars(result["lines"][0])
        assert not _in_order(chars), text


_ALPHABETS = [
    "abcXYZ",
    "åäöÅÄÖé",
    "0123456789",
    " .,:-+*#|()",
    "אבגדהוזחטשלום",
    "مرحبابكلم",
    "٠١٢٣٤٥",
    "日本語中文",
    "ελληνικά",
    "кириллица",
    "👍€£",
    "e\u0301a\u0308",
]


def _mixed_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        lines = []
        for _ in range(rng.randint(1, 3)):
            pieces = [rng.choice(rng.choice(_ALPHABETS)) for _ in range(rng.randint(1, 30))]
            lines.append("".join(pieces).strip() or "x")
        texts.append("\n".join(lines))
    return texts


def test_no_character_is_hidden_or_moved_in_what_gtk_draws(screen: Screen) -> None:
    texts = _mixed_texts(seed=15, count=150)
    for fmt in ("plaintext", "simpleMarkdownV1"):
        for text, shown in zip(texts, _layout(screen, texts, fmt), strict=True):
            drawn = [_signed_chars(line) for line in shown["lines"]]
            for _, chars in drawn:
                assert _in_order(chars), (text, chars)
                assert _drawn(chars), text
            if fmt == "plaintext":
                assert [signed for signed, _ in drawn] == text.split("\n")
            else:
                # formatting consumes markers, never a character of the content
                on_screen = "".join(signed for signed, _ in drawn)
                for ch in text:
                    if ch not in "*#|+-\\ \n":
                        assert ch in on_screen, (text, ch)
