"""The Settings window's rules and the config file it writes, without a display."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bridge import OriginPolicy
from agent.bridge.errors import BridgeError
from agent.config import ConfigError, Settings, load_config, save_settings
from agent.ui.desktop.helper import blocked_reason
from agent.ui.settings import ProxyMode, SettingsInvalid, form_for, settings_from
from eidcore.messages import MessageCode

FORM = form_for(Settings())


def test_an_empty_config_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "absent.toml").settings == Settings()
    assert FORM.proxy_mode is ProxyMode.SYSTEM and FORM.language == ""


def test_saving_keeps_the_organisations_keys_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '# set by the bank\n[issuer]\nurl = "https://issuer.bank.example"  # ours\n'
        '[network]\nproxy = "none"\n'
    )
    settings = Settings(
        language="sv",
        proxy="http://anna:p%40ss@proxy.example:3128",
        block=("evil.example",),
        raise_dialogs=True,
    )
    save_settings(path, settings)
    text = path.read_text()
    assert "# set by the bank" in text and "# ours" in text
    config = load_config(path)
    assert config.issuer_url == "https://issuer.bank.example"
    assert config.settings == settings
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a proxy password may be inside
    save_settings(path, Settings())  # back to the defaults: the keys go, the rest stays
    assert load_config(path).settings == Settings()
    assert "issuer.bank.example" in path.read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[ui]\nlanguage = "de"\n', "ui.language"),
        ("[ui]\nraise_dialogs = 1\n", "true or false"),
        ('[bridge]\nallow = "bank.example"\n', "list of strings"),
        ("ui = 3\n", r"\[ui\] must be a table"),
    ],
)
def test_a_wrong_config_says_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_manual_proxy_with_credentials() -> None:
    form = replace(
        FORM,
        proxy_mode=ProxyMode.MANUAL,
        proxy_url="proxy.example:3128",
        proxy_user="anna@corp",
        proxy_password="p:ss/word",
    )
    settings = settings_from(form, Settings())
    assert settings.proxy == "http://anna%40corp:p%3Ass%2Fword@proxy.example:3128"
    shown = form_for(settings)  # what the window shows next time: never the password
    assert (shown.proxy_url, shown.proxy_user, shown.proxy_password) == (
        "http://proxy.example:3128",
        "anna@corp",
        "",
    )
    assert settings_from(shown, settings).proxy == settings.proxy  # empty keeps it
    other_user = replace(shown, proxy_user="bertil")
    assert settings_from(other_user, settings).proxy == "http://bertil@proxy.example:3128"
    assert settings_from(replace(FORM, proxy_mode=ProxyMode.NONE), settings).proxy == "none"
    assert settings_from(FORM, settings).proxy is None  # the system's


@pytest.mark.parametrize(
    "url",
    [
        "",
        "proxy.example",
        "ftp://proxy.example:21",
        "http://proxy.example:3128/path",
        "http://u@proxy.example:1",
        "proxy.example:99999",
        "http://:3128",
    ],
)
def test_a_wrong_proxy_points_at_its_field(url: str) -> None:
    form = replace(FORM, proxy_mode=ProxyMode.MANUAL, proxy_url=url)
    with pytest.raises(SettingsInvalid) as caught:
        settings_from(form, Settings())
    assert (caught.value.field, caught.value.code) == ("proxy_url", MessageCode.PROXY_INVALID)


def test_a_password_needs_a_user() -> None:
    form = replace(
        FORM, proxy_mode=ProxyMode.MANUAL, proxy_url="p.example:8080", proxy_password="secret"
    )
    with pytest.raises(SettingsInvalid, match="proxy_user"):
        settings_from(form, Settings())


def test_sites_are_read_as_the_bridge_reads_origins() -> None:
    form = replace(
        FORM,
        allow="Bank.Example\n\nhttps://login.bank.example:8443/\n bank.example ",
        block="bücher.example",
    )
    settings = settings_from(form, Settings())
    assert settings.allow == ("bank.example", "https://login.bank.example:8443")
    assert settings.block == ("xn--bcher-kva.example",)
    policy = OriginPolicy().with_person_sites(settings.allow, settings.block)
    assert policy.check("https://www.bank.example") == "https://www.bank.example"
    with pytest.raises(BridgeError):
        policy.check("https://other.example")
    with pytest.raises(BridgeError):
        OriginPolicy().with_person_sites((), settings.block).check(
            "https://shop.xn--bcher-kva.example"
        )


@pytest.mark.parametrize(
    "entry",
    [
        "http://bank.example",
        "bank example",
        "https://",
        "bank.example/login",
        "-bank.example",
        "a..b",
    ],
)
def test_a_wrong_site_is_named(entry: str) -> None:
    with pytest.raises(SettingsInvalid) as caught:
        settings_from(replace(FORM, block=f"good.example\n{entry}"), Settings())
    assert caught.value.code is MessageCode.SITE_ENTRY_INVALID
    assert (caught.value.field, caught.value.entry) == ("block", entry)


def test_a_person_cannot_widen_the_organisations_allow_list() -> None:
    base = OriginPolicy.of(allow=["bank.example"], block=["old.bank.example"])
    policy = base.with_person_sites(("other.example",), ("evil.example",))
    assert policy.allow == frozenset({"bank.example"})
    assert policy.block == frozenset({"old.bank.example", "evil.example"})


@given(st.text(max_size=200))
def test_any_site_text_is_an_answer_or_a_named_field(text: str) -> None:
    try:
        settings = settings_from(replace(FORM, allow=text), Settings())
    except SettingsInvalid as exc:
        assert exc.field == "allow" and exc.code is MessageCode.SITE_ENTRY_INVALID
    else:
        for entry in settings.allow:
            assert entry == entry.strip().lower() and entry.isascii()


def test_when_a_dialog_counts_as_blocked() -> None:
    assert blocked_reason(seen=False, reached=False, held_elsewhere=False) is not None
    assert blocked_reason(seen=True, reached=False, held_elsewhere=True) is not None
    # unfocused but free keyboard: the window manager's choice, a click fixes it
    assert blocked_reason(seen=True, reached=False, held_elsewhere=False) is None
    assert blocked_reason(seen=True, reached=True, held_elsewhere=True) is None
