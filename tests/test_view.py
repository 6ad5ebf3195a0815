"""The dialogs' view logic without a display: which part of a site's name a person must
read, look-alike names, and the text to sign never losing a character."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.ui.view import BlockKind, Run, format_text, origin_view, plain_text


@pytest.mark.parametrize(
    ("origin", "prefix", "registrable", "lookalike"),
    [
        ("https://bank.se", "", "bank.se", False),
        ("https://login.secure.bank.se", "login.secure.", "bank.se", False),
        ("https://www.bank.co.uk", "www.", "bank.co.uk", False),
        ("https://anna.github.io", "", "anna.github.io", False),
        # the real domain is evil.example, however long the prefix
        (
            "https://bank.se.login.secure.verify.account.evil.example",
            "….secure.verify.account.",
            "evil.example",
            False,
        ),
        ("https://xn--bnk-qla.se", "", "bänk.se", False),  # Swedish letters stay readable
        ("https://xn--80ak6aa92e.com", "", "xn--80ak6aa92e.com", True),  # Cyrillic "apple"
        ("https://xn--pple-43d.com", "", "xn--pple-43d.com", True),  # Latin with one Cyrillic а
    ],
)
def test_registrable_domain_is_what_stands_out(
    origin: str, prefix: str, registrable: str, lookalike: bool
) -> None:
    view = origin_view(origin)
    assert (view.prefix, view.registrable, view.lookalike) == (prefix, registrable, lookalike)
    assert len(view.prefix) <= 24


def test_addresses_and_ports() -> None:
    assert origin_view("http://localhost:8080").host_text == "localhost:8080"
    assert origin_view("http://127.0.0.1:8080").registrable == "127.0.0.1"
    assert origin_view("http://[::1]:8080").host_text == "[::1]:8080"
    assert origin_view("https://bank.se:8443").port == ":8443"


def test_simple_markdown_blocks() -> None:
    text = (
        "# Avtal\n**Belopp:** 1 000 kr\n+ first\n+ *second*\n---\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    blocks = format_text(text, "simpleMarkdownV1")
    assert [b.kind for b in blocks] == [
        BlockKind.HEADING1,
        BlockKind.PARAGRAPH,
        BlockKind.ITEM,
        BlockKind.ITEM,
        BlockKind.RULE,
        BlockKind.HEADER_ROW,
        BlockKind.ROW,
    ]
    assert blocks[1].cells[0] == (Run("Belopp:", bold=True), Run(" 1 000 kr"))
    assert blocks[3].cells[0] == (Run("second", italic=True),)
    assert [c[0].text for c in blocks[5].cells] == ["a", "b"]


def test_plaintext_is_shown_as_typed() -> None:
    blocks = format_text("**not bold**\n# not a heading", "plaintext")
    assert plain_text(blocks) == "**not bold**\n# not a heading"
    assert all(b.kind is BlockKind.PARAGRAPH for b in blocks)


def test_escapes_and_unclosed_markers() -> None:
    [block] = format_text(r"5 \* 3 and *unclosed", "simpleMarkdownV1")
    assert plain_text([block]) == "5 * 3 and *unclosed"


_MARKUP = set("*#+|-\\ ")


@given(st.text(alphabet=st.sampled_from("ab *#+|-\\\n1"), max_size=60))
def test_no_character_of_the_text_is_hidden(text: str) -> None:
    """Whatever the markup, every letter and digit signed is shown, in order."""
    shown = plain_text(format_text(text, "simpleMarkdownV1"))
    letters = [c for c in text if c not in _MARKUP and c != "\n"]
    assert [c for c in shown if c not in _MARKUP and c != "\n"] == letters
