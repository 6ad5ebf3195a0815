from __future__ import annotations

import io
import string
import tomllib
from pathlib import Path

import pytest

from agent.cli import main
from eidcore import messages
from eidcore.messages import Action, Language, MessageCode, Term, catalogue, language_from_env

RAW = tomllib.loads((Path(messages.__file__).parent / "catalogue.toml").read_text("utf-8"))


def test_every_code_has_both_languages_and_nothing_extra() -> None:
    cat = catalogue()
    assert {e.code for e in cat} == set(MessageCode)
    for entry in cat:
        for language in Language:
            text = entry.texts[language]
            assert text.title.strip() and text.body.strip(), (entry.code, language)


def test_codes_the_seed_fixes_keep_their_numbers() -> None:
    assert int(MessageCode.INTERNAL_ERROR) == 10024
    assert int(MessageCode.ORDER_CANCELLED) == 10026
    assert int(MessageCode.ORDER_FAILED) == 10027
    assert all(10000 < code < 10100 for code in MessageCode)
    # the texts that quote their own code must quote the right one
    for code in (10024, 10026, 10027):
        for language in Language:
            assert str(code) in catalogue().entry(MessageCode(code)).texts[language].body


def _names(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_both_languages_use_the_same_placeholders() -> None:
    for entry in catalogue():
        sv, en = entry.texts[Language.SV], entry.texts[Language.EN]
        assert _names(sv.title) | _names(sv.body) == _names(en.title) | _names(en.body), entry.code


def test_every_term_exists_in_both_languages() -> None:
    for term in Term:
        for language in Language:
            assert catalogue().term(term, language)


@pytest.mark.parametrize("language", list(Language))
def test_render_fills_placeholders_and_names_the_pin(language: Language) -> None:
    cat = catalogue()
    ident = cat.render(MessageCode.WRONG_PIN, language, pin=Term.IDENTIFICATION_PIN, tries_left=2)
    sign = cat.render(MessageCode.WRONG_PIN, language, pin=Term.SIGNATURE_PIN, tries_left=2)
    assert ident != sign
    assert "2" in ident.body and "{" not in ident.body
    assert ident.title[0].isupper()
    assert cat.render(MessageCode.TECHNICAL_ERROR, language).body.count("10001") == 1


def test_render_refuses_missing_or_extra_values() -> None:
    with pytest.raises(TypeError):
        catalogue().render(MessageCode.WRONG_PASSWORD, Language.EN)
    with pytest.raises(TypeError):
        catalogue().render(MessageCode.NO_BANKID_FOUND, Language.EN, tries_left=1)


def test_actions_are_meaningful() -> None:
    cat = catalogue()
    assert cat.entry(MessageCode.UPDATE_REQUIRED).action is Action.START_UPDATE
    assert cat.entry(MessageCode.UPDATE_FAILED_REPEATEDLY).action is Action.MANUAL_UPDATE
    assert cat.entry(MessageCode.PIN_BLOCKED).action is Action.MANAGE_PIN
    assert cat.entry(MessageCode.FILE_LOCKED).action is Action.REMOVE_BANKID


# Every situation the seed documents describe, by a phrase from the seed; each must be the
# `seed` of some catalogue entry. Adding a seed situation without a message fails here.
SEED_SITUATIONS = [
    "Ett tekniskt fel har inträffat",
    "Giltigt BankID saknas",
    "BankID som går att använda för den här legitimeringen saknas",
    "BankID som går att använda för den här underskriften saknas",
    "Du har skrivit fel PIN 3 gånger i rad",
    "Kommunikationsfel",
    "Uppdatering krävs",
    "Kunde inte ta bort angivet BankID",
    "Kunde inte byta lösenord",
    "Kunde inte hitta något BankID",
    "Kunde inte byta PIN",
    "Kunde inte låsa upp PIN",
    "Filen kunde inte öppnas",
    "Filen kunde inte sparas",
    "Ett annat program hindrar",
    "Du har skrivit fel lösenord",
    "Uppdatering rekommenderas",
    "Det finns en senare version",
    "Automatisk uppdatering",
    "behöver inte uppdateras",
    "Uppdateringen kunde inte genomföras",
    "misslyckades med att uppdatera sig själv",
    "misslyckats flera gånger i rad med automatisk uppdatering. När du klickar",
    "misslyckats flera gånger i rad med automatisk uppdatering. Om du har problem",
    "Internt tekniskt fel",
    "BankID saknas",
    "Giltighetstiden för samtliga BankID",
    "Beställningen avbröts",
    "Beställningen misslyckades",
    "fel personnummer och/eller aktiveringskod",
    "Aktiveringskoden spärrades",
    "Beställningen tog för lång tid",
    "Ditt BankID på fil har låsts",
    "seed 003: personnummer i fel format",
    "seed 003: time-out",
    "seed 003: avbrutet",
    "seed 003: fel kod",
]


@pytest.mark.parametrize("phrase", SEED_SITUATIONS)
def test_every_seed_situation_has_a_message(phrase: str) -> None:
    seeds = [table["seed"] for key, table in RAW.items() if key.isdigit()]
    assert any(phrase in seed for seed in seeds), phrase


def test_language_follows_the_locale() -> None:
    assert language_from_env({"LANG": "sv_SE.UTF-8"}) is Language.SV
    assert language_from_env({"LANG": "sv_SE.UTF-8", "LC_ALL": "en_GB.UTF-8"}) is Language.EN
    assert language_from_env({}) is Language.EN


def test_cli_prints_one_message_in_swedish() -> None:
    out = io.StringIO()
    assert main(["messages", "--lang", "sv", "10033"], stdout=out) == 0
    assert out.getvalue().startswith("10033  fel  ")
    assert "låst" in out.getvalue()
    out = io.StringIO()
    assert main(["messages", "--lang", "sv", "10005"], stdout=out) == 0
    assert out.getvalue().startswith("10005  fel  PIN är spärrad"), out.getvalue()


def test_cli_prints_the_whole_catalogue_in_english() -> None:
    out = io.StringIO()
    assert main(["messages", "--lang", "en"], stdout=out) == 0
    listed = [line for line in out.getvalue().splitlines() if line[:5].isdigit()]
    assert [int(line[:5]) for line in listed] == sorted(MessageCode)
    assert "{" not in out.getvalue() and "}" not in out.getvalue()  # no raw placeholder
    assert "10001  error  " in out.getvalue()


def test_cli_unknown_code() -> None:
    err = io.StringIO()
    assert main(["messages", "99999"], stderr=err) == 2


def test_every_update_state_has_words_in_both_languages() -> None:
    """The tray and Settings show the updater's state: never its wire name."""
    from agent.updater.policy import StateName

    for name in StateName:
        for language in Language:
            text = catalogue().term(Term(f"update_state_{name}"), language)
            assert text and (language is Language.EN or text != name)
            assert not any(c.isupper() for c in text)  # words, not a camelCase wire name


def test_each_language_fills_every_value_of_its_message() -> None:
    """What the installed agent's self-test checks before a new version takes over, here
    too: a text in one language that leaves out a value the other one uses fails now,
    not as a refused update."""
    import string

    from eidcore.messages import catalogue

    for entry in catalogue():
        for language, text in entry.texts.items():
            parts = (text.title, text.body, text.console or "")
            used = {f for part in parts for _, f, _, _ in string.Formatter().parse(part) if f}
            assert used == entry.placeholders, (int(entry.code), language)
