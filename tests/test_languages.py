"""Every string a person can see, in Swedish and in English, with no internal name in it.

The surfaces are driven for real in both languages — the desktop dialogs' payloads as the
helper receives them, the tray menu, My BankIDs, the Diagnostics report, the console
dialog, ``tokens list``, the demo website's pages — and compared pair by pair: where the
Swedish and the English string are the same, what is left once the data (names, numbers,
dates, paths) is set aside must be nothing, or the string was never translated. Every
string is also searched for the words code uses: wire values, camelCase, Python's
``None``/``True``, exception class names, raw ISO timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import io
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.credentials import CredentialStore
from agent.credentials.card.errors import PinRef
from agent.credentials.model import CredentialInfo, CredentialKind
from agent.desktop.mybankids import MyBankIds
from agent.desktop.tray import Tray
from agent.notices import Notice
from agent.orders import OrderKind
from agent.ui.console import ConsoleUi
from agent.ui.desktop import DesktopUi
from agent.ui.port import PinRequest, Request
from demo.site import PAGE_TEXTS, STATIC, render_page
from eidcore.messages import Language, MessageCode, Term
from tests.agent_process import BIN
from tests.conftest import ANNA, FAST_KDF, MakeToken

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)

# What code says and a person must not read: wire values of states, kinds and updates,
# camelCase, Python's reprs, exception classes, ISO timestamps with their "T".
INTERNAL = re.compile(
    r"\b(?:None|True|False|unmanaged|notChecked|checkFailed|upToDate|notYetValid"
    r"|manualUpdateNeeded)\b"
    r"|\b[a-z]+[A-Z][a-z]+[A-Za-z]*\b"  # camelCase
    r"|\b[A-Z][a-z]+(?:[A-Z][a-z]+)+(?:Error|Exception|Refused|Unreachable)\b"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d"
)
# English that a Swedish string must not hold (the defects this test was written for).
ENGLISH = re.compile(r"\b(?:the|is|not|of|to|with|file|card|tries|usable|runs|answers)\b", re.I)
# Words that are the same in both languages by nature.
SAME_IN_BOTH = {"BankID", "eid-agent", "ID", "OK", "PUK", "PIN", "Python", "pcscd", "HTTP"}


def _data_free(text: str, data: set[str]) -> str:
    text = _strip(text.replace("_", ""), data)  # "_": GTK's mnemonic marks
    for word in SAME_IN_BOTH:
        text = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", " ", text)
    return re.sub(r"[\W\d_]+", "", text)


def _check_pair(where: str, sv: str, en: str, data: set[str]) -> None:
    for language, text in (("sv", sv), ("en", en)):
        found = INTERNAL.search(_strip(text, data))
        assert found is None, f"{where} ({language}) shows {found.group()!r}: {text!r}"
    english = ENGLISH.search(_strip(sv, data))
    assert english is None, f"{where} (sv) is English: {english.group()!r} in {sv!r}"
    if sv == en:
        assert not _data_free(sv, data), f"{where} is the same in both languages: {sv!r}"


def _strip(text: str, data: set[str]) -> str:
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return text


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """The strings of a helper request a person sees (not its op, ids or the text to sign,
    which is the site's and the same in every language)."""
    if isinstance(value, str):
        if not (".fields[" in path and value == "visible"):  # a field's flag, not a word
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in {
                "op",
                "ref",
                "id",
                "state",
                "blocks",
                "keep_order",
                "link",
                "present",
                "prefix",
                "registrable",
                "port",
            }:
                yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for number, item in enumerate(value):
            yield from _leaves(item, f"{path}[{number}]")


def _compare_leaves(where: str, sv: Any, en: Any, data: set[str]) -> None:
    sv_leaves, en_leaves = list(_leaves(sv)), list(_leaves(en))
    assert [p for p, _ in sv_leaves] == [p for p, _ in en_leaves], where
    for (path, sv_text), (_, en_text) in zip(sv_leaves, en_leaves, strict=True):
        _check_pair(f"{where}{path}", sv_text, en_text, data)


def _compare_lines(where: str, sv: str, en: str, data: set[str]) -> None:
    sv_lines, en_lines = sv.splitlines(), en.splitlines()
    assert len(sv_lines) == len(en_lines), (where, sv, en)
    for number, (a, b) in enumerate(zip(sv_lines, en_lines, strict=True), start=1):
        _check_pair(f"{where}:{number}", a, b, data)


class RecordingUi(DesktopUi):
    """The real desktop client, its helper replaced by a recorder: what is under test here
    is what the client asks the helper to show (the helper's drawing has its own tests)."""

    def __init__(self, language: Language) -> None:
        super().__init__(language)
        self.sent: list[dict[str, Any]] = []

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(request)
        return {"done": True}  # no choice, no secret: the person closed the window


@pytest.fixture
def world(tmp_path: Path, make_token: MakeToken) -> tuple[Path, CredentialInfo, CredentialInfo]:
    data = tmp_path / "data"
    file = CredentialStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    card = dataclasses.replace(file, id="card-0001", kind=CredentialKind.CARD, tries_left=2)
    return data, file, card


def _data(data_dir: Path, *credentials: CredentialInfo) -> set[str]:
    values = {str(data_dir), data_dir.name, "https://bank.example", "bank.example", "Demo CA"}
    for c in credentials:
        values |= {
            c.id,
            c.owner.name,
            c.owner.given_name,
            c.owner.surname,
            c.issuer,
            str(c.owner.personal_number),
            f"{c.not_after:%Y-%m-%d}",
            f"{c.not_before:%Y-%m-%d}",
        }
    return values


async def _desktop_session(
    language: Language, data_dir: Path, file: CredentialInfo, card: CredentialInfo
) -> list[dict[str, Any]]:
    ui = RecordingUi(language)
    auth = Request("ref-1", OrderKind.AUTH, "https://bank.example", None, "plaintext", (file, card))
    sign = Request(
        "ref-2",
        OrderKind.SIGN,
        "https://bank.example",
        "Betala 100 kr till שלום 1234",
        "plaintext",
        (file, card),
    )
    await ui.choose(auth)
    await ui.ask_secret(sign, file, Notice(MessageCode.WRONG_PASSWORD, {"tries_left": 4}))
    await ui.ask_secret(sign, card, None)
    await ui.ask_pins(PinRequest(PinRef.SIGNATURE, card), None)
    await ui.ask_pins(PinRequest(PinRef.IDENTIFICATION, card, unblock=True), None)
    await ui.ask_password(file, None)
    await ui.ask_password_change(file, None)
    await ui.ask_enrolment(None)
    await ui.tell(Notice(MessageCode.NO_BANKID_FOUND))
    tray = Tray(
        ui,
        data_dir,
        1,
        order_active=lambda: False,
        updater=None,
        stop=asyncio.Event(),
        clock=lambda: NOW,
    )
    await tray.refresh()
    await tray._chosen("diagnostics")  # the Diagnostics window: a real doctor report
    await tray._chosen("about")
    mine = MyBankIds(
        ui,
        CredentialStore(data_dir, kdf=FAST_KDF),
        hardware=None,
        issuer=lambda: None,
        clock=lambda: NOW,
    )
    await mine.show()
    await mine.act(f"details:{file.id}")
    await mine.act(f"remove:{file.id}")
    return ui.sent


@pytest.mark.slow
def test_desktop_dialogs_tray_diagnostics_and_my_bankids_speak_both_languages(
    world: tuple[Path, CredentialInfo, CredentialInfo],
) -> None:
    data_dir, file, card = world
    sv = asyncio.run(_desktop_session(Language.SV, data_dir, file, card))
    en = asyncio.run(_desktop_session(Language.EN, data_dir, file, card))
    assert [r["op"] for r in sv] == [r["op"] for r in en]
    ops = {r["op"] for r in sv}
    assert {"choose", "secret", "secrets", "tray", "report", "manager", "notice"} <= ops, ops
    data = _data(data_dir, file, card) | {"1"}
    for number, (a, b) in enumerate(zip(sv, en, strict=True)):
        where = f"{a['op']}#{number}"
        if a["op"] == "report":  # the Diagnostics window: one line per check
            _compare_lines(where, a["text"], b["text"], data | _platform_words(a["text"]))
            _compare_leaves(where, {**a, "text": ""}, {**b, "text": ""}, data)
        else:
            _compare_leaves(where, a, b, data)
    labels = [s for r in sv for _, s in _leaves(r) if "Anna Andersson —" in s]
    assert any("BankID på fil" in s for s in labels) and any("BankID på kort" in s for s in labels)
    dated = [s for s in labels if re.search(r"\d{4}-\d{2}-\d{2}", s)]  # My BankIDs' rows
    assert dated and all("giltigt till 20" in s for s in dated)  # a date says what it is


def _platform_words(report: str) -> set[str]:
    # the versions line names the platform as the OS reports it
    line = next(line for line in report.splitlines() if "Python" in line)
    return set(line.split(", ")[1:]) | {line.split()[-1]}


def _console_transcript(language: Language, file: CredentialInfo, card: CredentialInfo) -> str:
    out = io.StringIO()
    ui = ConsoleUi(io.StringIO(""), out, language)  # no answers: every question cancelled
    sign = Request(
        "ref-2",
        OrderKind.SIGN,
        "https://bank.example",
        "Betala 100 kr till שלום 1234",
        "plaintext",
        (file, card),
    )

    async def session() -> None:
        await ui.choose(sign)
        await ui.ask_secret(sign, card, None)
        await ui.tell(Notice(MessageCode.WRONG_PIN, {"pin": Term.SIGNATURE_PIN, "tries_left": 1}))

    asyncio.run(session())
    return out.getvalue()


def test_the_console_dialog_speaks_both_languages(
    world: tuple[Path, CredentialInfo, CredentialInfo],
) -> None:
    data_dir, file, card = world
    sv = _console_transcript(Language.SV, file, card)
    en = _console_transcript(Language.EN, file, card)
    data = _data(data_dir, file, card) | {"Betala 100 kr till שלום 1234"}
    _compare_lines("console", sv, en, data)
    assert "BankID på fil" in sv and "BankID on card" in en


@pytest.mark.slow
def test_tokens_list_speaks_both_languages(
    world: tuple[Path, CredentialInfo, CredentialInfo],
) -> None:
    data_dir, file, _ = world
    (data_dir / "tokens" / "broken.bankid").write_text("{")

    def listing(lang: str) -> str:
        env = {**os.environ, "LANG": lang, "LC_ALL": ""}
        return subprocess.run(
            [str(BIN / "eid-agent"), "credentials", "list", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        ).stdout

    sv, en = listing("sv_SE.UTF-8"), listing("C.UTF-8")
    _compare_lines("tokens list", sv, en, _data(data_dir, file) | {"broken.bankid"})
    assert "BankID på fil" in sv and "BankID on file" in en


@pytest.mark.parametrize("page", ["login.html", "sign.html"])
def test_the_demo_pages_speak_both_languages(page: str) -> None:
    assert PAGE_TEXTS["sv"].keys() == PAGE_TEXTS["en"].keys()
    template = (STATIC / page).read_text("utf-8")
    sv, en = render_page(template, "sv", 24721), render_page(template, "en", 24721)
    assert "{{" not in sv + en
    text = re.compile(r">([^<>]+)<|placeholder=\"([^\"]+)\"")
    sv_texts = [a or b for a, b in text.findall(sv) if (a or b).strip()]
    en_texts = [a or b for a, b in text.findall(en) if (a or b).strip()]
    data = {"198112189876", "1234-5678", "Svenska", "English"}
    for a, b in zip(sv_texts, en_texts, strict=True):
        _check_pair(page, a, b, data)


@pytest.mark.parametrize(
    "args",
    [
        ["messages", "99999"],
        ["run", "--port", "70000"],
        ["enrol", "--config", "/nonexistent/config.toml"],
    ],
)
def test_the_command_lines_refusals_speak_both_languages(args: list[str], tmp_path: Path) -> None:
    def said(lang: str) -> str:
        env = {**os.environ, "LANG": lang, "LC_ALL": "", "HOME": str(tmp_path)}
        result = subprocess.run(
            [str(BIN / "eid-agent"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0 and "Traceback" not in result.stderr
        return result.stderr

    _compare_lines(" ".join(args), said("sv_SE.UTF-8"), said("C.UTF-8"), {"99999", "70000"})


def _help_texts(parser: argparse.ArgumentParser) -> list[str]:
    from eidcore.messages.cli import _parsers

    found = []
    for each in _parsers(parser):
        found += [t for t in (each.description, each.epilog) if t]
        found += [g.title for g in each._action_groups if g.title]
        for action in each._actions:
            if action.help and action.help != argparse.SUPPRESS:
                found.append(action.help)
            if isinstance(action, argparse._SubParsersAction):
                found += [c.help for c in action._choices_actions if c.help]
    return found


def test_every_help_text_has_its_swedish() -> None:
    """A help text added in English must come with its Swedish (eidcore/messages/cli.toml);
    and none the parsers no longer use lingers there."""
    from agent.cli.main import parser as agent_parser
    from eidcore.messages.cli import texts
    from oidc.cli import _parser as oidc_parser
    from relay.cli import _parser as relay_parser

    swedish = texts(Language.SV)
    used = (
        set(_help_texts(agent_parser()))
        | set(_help_texts(relay_parser()))
        | set(_help_texts(oidc_parser()))
    )
    assert sorted(used - set(swedish)) == []
    argparse_own = {
        k
        for k in swedish
        if "%" in k
        or k
        in (
            "usage: ",
            "expected one argument",
            "expected at most one argument",
            "expected at least one argument",
        )
    }
    assert sorted(set(swedish) - used - argparse_own) == []


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["credentials", "remove"], ["card", "change-pin"]]
)
def test_help_and_usage_errors_speak_swedish(args: list[str], tmp_path: Path) -> None:
    def said(env: dict[str, str], *extra: str) -> str:
        result = subprocess.run(
            [str(BIN / "eid-agent"), *extra, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": str(tmp_path), **env},
            timeout=60,
            check=False,
        )
        assert "Traceback" not in result.stderr
        return result.stdout + result.stderr

    swedish = said({"LANG": "sv_SE.UTF-8", "LC_ALL": ""})
    assert swedish == said({"LANG": "C.UTF-8", "LC_ALL": ""}, "--lang", "sv")
    english = said({"LANG": "C.UTF-8", "LC_ALL": ""})
    assert "användning: eid-agent" in swedish and "usage: eid-agent" in english
    assert ("flaggor:" in swedish) == ("options:" in english)
    for word in ("usage:", "options:", "show this help", "arguments are required", "error:"):
        assert word not in swedish, (word, swedish)


def test_argparse_speaks_english_again_after_a_swedish_command_line() -> None:
    """A test process runs several command lines' main in turn: the Swedish of one must
    not leak into the next (or into argparse's users outside the project)."""
    import contextlib

    from agent.cli.main import main

    with contextlib.redirect_stderr(io.StringIO()) as said, pytest.raises(SystemExit):
        main(["--lang", "sv", "credentials", "remove"])
    assert "användning:" in said.getvalue()
    assert argparse.ArgumentParser(prog="x").format_usage().startswith("usage: x")
