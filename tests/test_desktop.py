"""The desktop dialogs as a person meets them: a real agent with ``--ui desktop`` on a
virtual screen, the real GTK dialog on a bridge order, xdotool typing into it."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import time
from pathlib import Path

import pytest

from agent.credentials import CredentialStore, KeyPurpose, select
from tests.agent_process import AgentProcess
from tests.conftest import ANNA, BERTIL, FAST_KDF, PASSWORD, MakeToken
from tests.desktop_kit import Screen, recorded
from tests.softhsm_kit import SoftHsm

pytestmark = pytest.mark.slow

ORIGIN = "https://login.secure.bank.se"


def _desktop_agent(data_dir: Path, screen: Screen) -> AgentProcess:
    # the later --ui wins over AgentProcess's own --ui console
    agent = AgentProcess(data_dir, "--no-cards", "-v", "--ui", "desktop", env=screen.env)
    agent.origin = ORIGIN
    return agent


def _sign(agent: AgentProcess, text: str) -> str:
    nonce = base64.b64encode(os.urandom(32)).decode()
    status, body = agent.request(
        "POST",
        "/v1/sign",
        {
            "nonce": nonce,
            "userVisibleData": base64.b64encode(text.encode()).decode(),
            "userVisibleDataFormat": "simpleMarkdownV1",
        },
        origin=ORIGIN,
    )
    assert status == 201, body
    return str(body["orderRef"])


def test_the_person_signs_in_the_dialog(data_dir: Path, screen: Screen) -> None:
    with _desktop_agent(data_dir, screen) as agent:
        agent.ready()
        assert "desktop dialogs ready" in agent.stderr
        ref = _sign(agent, "# Avtal\n**Belopp:** 1 000 kr\n+ leverans i maj")
        [window] = screen.wait_window()
        screen.screenshot(window, "sign-dialog")
        screen.type_into(window, "not the password")
        screen.key(window, "Return")
        screen.wait_gone(window)
        [again] = screen.wait_window()  # asked again, saying what was wrong
        screen.screenshot(again, "sign-dialog-wrong-password")
        assert agent.collect(ref)["status"] == "pending"
        screen.type_into(again, PASSWORD)
        screen.key(again, "Return")
        done = agent.wait_status(ref, "complete")
        assert done["completionData"]["user"]["personalNumber"] == "198112189876"
        screen.wait_gone(again)
    assert PASSWORD not in agent.stderr and "not the password" not in agent.stderr


def test_escape_cancels_and_the_page_can_close_the_dialog(data_dir: Path, screen: Screen) -> None:
    with _desktop_agent(data_dir, screen) as agent:
        agent.ready()
        ref = _sign(agent, "first")
        [window] = screen.wait_window()
        screen.key(window, "Escape")
        done = agent.wait_status(ref, "userCancel")
        assert done["status"] == "failed"
        screen.wait_gone(window)
        ref = _sign(agent, "second")
        [window] = screen.wait_window()
        status, _ = agent.request("POST", "/v1/cancel", {"orderRef": ref}, origin=ORIGIN)
        assert status == 200
        screen.wait_gone(window)  # the page cancelled: the dialog closes by itself


def test_a_question_right_after_one_closed_under_the_person_waits_for_them(
    data_dir: Path,
    screen: Screen,
) -> None:
    """Issue 15, item 5: a password typed just as one site's question closed must not
    answer the next site's question that appeared under the person's fingers."""
    with _desktop_agent(data_dir, screen) as agent:
        agent.ready()
        first = _sign(agent, "first")
        [window] = screen.wait_window()
        status, _ = agent.request("POST", "/v1/cancel", {"orderRef": first}, origin=ORIGIN)
        assert status == 200
        screen.wait_gone(window)
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request(
            "POST", "/v1/auth", {"nonce": nonce}, origin="https://other.example"
        )
        assert status == 201, body
        second = str(body["orderRef"])
        [attention] = screen.wait_window()
        screen.screenshot(attention, "attention-after-closed-question")
        screen.type_into(attention, PASSWORD)  # still typing for the closed question
        screen.key(attention, "Return")
        screen.wait_gone(attention)
        [question] = screen.wait_window()  # now the question itself, with an empty field
        time.sleep(0.5)
        agent.origin = "https://other.example"  # collect as the second site
        assert agent.collect(second)["status"] == "pending"
        screen.type_into(question, PASSWORD)  # typed knowing who asks
        screen.key(question, "Return")
        agent.wait_status(second, "complete")


def test_choosing_between_two_bankids(
    tmp_path: Path, make_token: MakeToken, screen: Screen
) -> None:
    store = CredentialStore(tmp_path / "data", kdf=FAST_KDF)
    store.add(make_token(ANNA))
    store.add(make_token(BERTIL))
    with _desktop_agent(tmp_path / "data", screen) as agent:
        agent.ready()
        ref = _sign(agent, "choose")
        [window] = screen.wait_window()
        screen.screenshot(window, "choose-dialog")
        screen.key(window, "Down", "Return")  # the second BankID, keyboard only
        screen.wait_gone(window)
        [secret] = screen.wait_window()
        screen.type_into(secret, PASSWORD)
        screen.key(secret, "Return")
        done = agent.wait_status(ref, "complete")
        # the dialog lists the choices in the order selection gives them
        choices = select(store.credentials(), KeyPurpose.SIGNATURE, dt.datetime.now(dt.UTC))
        second = str(choices[1].owner.personal_number)
        assert done["completionData"]["user"]["personalNumber"] == second


def test_without_a_display_the_console_answers(data_dir: Path) -> None:
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    with AgentProcess(data_dir, "--no-cards", "-v", "--ui", "desktop", env=env) as agent:
        agent.origin = ORIGIN
        agent.ready()
        assert "no desktop dialogs" in agent.stderr
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request("POST", "/v1/auth", {"nonce": nonce}, origin=ORIGIN)
        assert status == 201
        agent.wait_for_output("Password for Anna Andersson")
        agent.type(PASSWORD)
        agent.wait_status(body["orderRef"], "complete")


def test_a_notice_says_what_happened_and_goes_away_with_enter(
    tmp_path: Path, screen: Screen
) -> None:
    with _desktop_agent(tmp_path / "empty", screen) as agent:
        agent.ready()
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request("POST", "/v1/auth", {"nonce": nonce}, origin=ORIGIN)
        assert status == 201
        [notice] = screen.wait_window("No BankID found")
        screen.screenshot(notice, "notice-no-bankid")
        assert agent.collect(body["orderRef"])["status"] == "failed"
        screen.key(notice, "Return")
        screen.wait_gone(notice)


def test_the_tray_menu_works(data_dir: Path, screen: Screen) -> None:
    with _desktop_agent(data_dir, screen) as agent:
        agent.ready()
        screen.tray_docked()
        agent.wait_for_output("desktop dialogs ready", stream="stderr")
        screen.tray_click()
        time.sleep(0.3)  # the menu opens under the pointer
        screen.xdotool("key", "Down", "Down", "Down", "Down", "Down", "Return")  # About
        [about] = screen.wait_window("About eid-agent")
        screen.screenshot(about, "about")
        screen.key(about, "Return")
        screen.wait_gone(about)
        screen.tray_click()
        time.sleep(0.3)
        screen.xdotool("key", "Down", "Return")  # My BankIDs
        [mine] = screen.wait_window("My BankIDs")
        screen.key(mine, "Return")
        screen.tray_click()
        time.sleep(0.3)
        screen.xdotool("key", "Up", "Return")  # Quit, the last item
        assert agent.proc.wait(timeout=15) == 0
    assert "tray: about" in agent.stderr and "tray: bankids" in agent.stderr


async def test_update_notices_act_on_ok(
    screen: Screen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10007's OK starts the update; 10023's OK opens the signed install page in the
    person's browser (here a registered stand-in that writes down the address)."""
    from agent.notices import Notice
    from agent.ui.desktop import DesktopUi
    from eidcore.messages import Language, MessageCode

    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    apps = tmp_path / "share/applications"
    apps.mkdir(parents=True)
    (apps / "test-browser.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Test browser\n"
        f"Exec={browser} %u\nMimeType=x-scheme-handler/https;\n"
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config/mimeapps.list").write_text(
        "[Default Applications]\nx-scheme-handler/https=test-browser.desktop\n"
    )
    for key, value in {
        **screen.env,
        "XDG_DATA_HOME": str(tmp_path / "share"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }.items():
        monkeypatch.setenv(key, value)
    ui = DesktopUi(Language.EN)
    actions: list[str] = []

    async def on_action(action: str) -> None:
        actions.append(action)

    ui.on_action = on_action
    await ui.start()
    try:
        await ui.tell(Notice(MessageCode.UPDATE_REQUIRED))
        [notice] = await asyncio.to_thread(screen.wait_window, "Update required")
        screen.screenshot(notice, "notice-update-required")
        screen.key(notice, "Return")
        await asyncio.to_thread(screen.wait_gone, notice)
        for _ in range(100):
            if actions:
                break
            await asyncio.sleep(0.05)
        assert actions == ["startUpdate"]
        page = "https://install.example/eid-agent"
        await ui.tell(Notice(MessageCode.UPDATE_FAILED_REPEATEDLY, link=page))
        [notice] = await asyncio.to_thread(screen.wait_window, "failed")
        screen.key(notice, "Return")
        assert await asyncio.to_thread(recorded, opened) == [page]
        for _ in range(100):  # the helper reports the action after launching the browser
            if len(actions) > 1:
                break
            await asyncio.sleep(0.05)
        assert actions == ["startUpdate", "openLink"]
    finally:
        await ui.aclose()


def _fill(screen: Screen, window: str, *values: str) -> None:
    """Type into the fields in order (Tab between them) and press Enter."""
    for n, value in enumerate(values):
        if n:
            screen.key(window, "Tab")
        screen.type_into(window, value)
    screen.key(window, "Return")


def test_changing_a_password_from_my_bankids(data_dir: Path, screen: Screen) -> None:
    new_password = "a brand new password"
    with _desktop_agent(data_dir, screen) as agent:
        agent.ready()
        screen.tray_docked()
        screen.tray_click()
        time.sleep(0.3)
        screen.xdotool("key", "Down", "Return")  # My BankIDs
        [mine] = screen.wait_window("My BankIDs")
        screen.screenshot(mine, "my-bankids")
        screen.key(mine, "Return")  # the first row's "Change password …" has the focus
        [dialog] = screen.wait_window()
        screen.type_into(dialog, "not it")
        screen.key(dialog, "Tab")
        screen.type_into(dialog, new_password)
        screen.key(dialog, "Tab")
        screen.type_into(dialog, new_password)
        screen.key(dialog, "Return")
        screen.wait_gone(dialog)
        [again] = screen.wait_window()  # asked again: wrong current password
        screen.screenshot(again, "change-password-wrong")
        _fill(screen, again, PASSWORD, new_password, new_password)
        [done] = screen.wait_window("The password has been changed")
        screen.key(done, "Return")
    store = CredentialStore(data_dir, kdf=FAST_KDF)
    [info] = store.credentials()
    assert store.unlock(info.id, new_password)
    assert info.tries_left == 5  # the right password reset the count
    for secret in (PASSWORD, new_password, "not it"):
        assert secret not in agent.stderr


async def test_the_pin_dialog_names_the_pin_and_wants_it_twice(
    screen: Screen, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.credentials.card.errors import PinRef
    from agent.ui import PinRequest
    from agent.ui.desktop import DesktopUi
    from eidcore.messages import Language

    for key, value in screen.env.items():
        monkeypatch.setenv(key, value)
    ui = DesktopUi(Language.EN)
    card = make_token(ANNA).info()
    await ui.start()
    try:
        asking = asyncio.create_task(ui.ask_pins(PinRequest(PinRef.SIGNATURE, card), None))
        [dialog] = await asyncio.to_thread(screen.wait_window)
        screen.screenshot(dialog, "change-signing-pin")
        _fill(screen, dialog, "12345", "54321", "54320")  # the repeat differs: asked again
        await asyncio.to_thread(screen.wait_gone, dialog)
        [again] = await asyncio.to_thread(screen.wait_window)
        _fill(screen, again, "12345", "54321", "54321")
        answer = await asyncio.wait_for(asking, 15)
        assert answer is not None and (answer.secret, answer.new) == ("12345", "54321")
    finally:
        await ui.aclose()


def test_ordering_a_bankid_from_the_tray(tmp_path: Path, screen: Screen) -> None:
    from tests.issuer_kit import IssuerProcess

    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'i.db'}") as issuer:
        config = tmp_path / "config.toml"
        config.write_text(f'[issuer]\nurl = "{issuer.url}"\nca = "{issuer.tls_cert}"\n')
        _, code = issuer.order("198112189876")
        data = tmp_path / "data"
        with AgentProcess(
            data, "--no-cards", "-v", "--ui", "desktop", "--config", str(config), env=screen.env
        ) as agent:
            agent.ready()
            screen.tray_docked()
            screen.tray_click()
            time.sleep(0.3)
            screen.xdotool("key", "Down", "Down", "Return")  # Order BankID on file
            [dialog] = screen.wait_window()
            screen.screenshot(dialog, "order-dialog")
            _fill(screen, dialog, "198112189876", code, PASSWORD, PASSWORD)
            [done] = screen.wait_window("Order BankID on file", timeout=30)
            screen.key(done, "Return")
        [info] = CredentialStore(data).credentials()
        assert str(info.owner.personal_number) == "198112189876" and not info.development
        assert code not in agent.stderr and PASSWORD not in agent.stderr


async def test_behind_a_pin_pad_the_dialog_has_no_pin_field(
    screen: Screen, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is signed, the reader's keypad named, Continue and Cancel — nothing to type in."""
    from dataclasses import replace

    from agent.credentials.model import CredentialKind
    from agent.ui.desktop import DesktopUi
    from agent.ui.port import Request
    from eidcore.messages import Language
    from eidcore.signeddata import OrderKind

    for key, value in screen.env.items():
        monkeypatch.setenv(key, value)
    token = replace(make_token(ANNA).info(), kind=CredentialKind.TOKEN, pin_pad=True)
    request = Request(
        "pad-1", OrderKind.SIGN, ORIGIN, "Jag godkänner avtalet.", "plaintext", (token,)
    )
    ui = DesktopUi(Language.EN)
    await ui.start()
    try:
        asking = asyncio.create_task(ui.confirm_pin_pad(request, token, None))
        [dialog] = await asyncio.to_thread(screen.wait_window)
        screen.screenshot(dialog, "sign-on-a-pin-pad")
        screen.type_into(dialog, "123456")  # no field takes it: the PIN goes on the reader
        screen.key(dialog, "Return")
        assert await asyncio.wait_for(asking, 15) is True
        await asyncio.to_thread(screen.wait_gone, dialog)
        asking = asyncio.create_task(
            ui.confirm_pin_pad(replace(request, order_ref="pad-2"), token, None)
        )
        [dialog] = await asyncio.to_thread(screen.wait_window)
        screen.key(dialog, "Escape")
        assert await asyncio.wait_for(asking, 15) is False
    finally:
        await ui.aclose()


def test_ordering_a_bankid_onto_a_security_key_from_the_tray(
    tmp_path: Path,
    screen: Screen,
    softhsm: SoftHsm,
) -> None:
    """A blank security key in its reader: the tray offers "Order BankID on the security
    key …"; a wrong PIN is said in the dialog and asked again before the activation code is
    spent; then the keys are made on the key and the new BankID is listed."""
    import json
    import subprocess
    import sys

    from tests.issuer_kit import IssuerProcess
    from tests.softhsm_kit import MODULE, USER_PIN

    softhsm.init_token("anna")
    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'i.db'}") as issuer:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[issuer]\nurl = "{issuer.url}"\nca = "{issuer.tls_cert}"\n'
            f'[pkcs11]\nmodules = ["{MODULE}"]\np11kit = false\n'
        )
        _, code = issuer.order("198112189876")
        data = tmp_path / "data"
        env = {**screen.env, "SOFTHSM2_CONF": str(softhsm.conf)}
        with AgentProcess(data, "-v", "--ui", "desktop", "--config", str(config), env=env) as agent:
            agent.ready()
            agent.wait_for_output("PKCS#11 module", stream="stderr")
            screen.tray_docked()
            time.sleep(2.5)  # the tray's next refresh has the key in its menu
            screen.tray_click()
            time.sleep(0.3)
            screen.xdotool("key", "Down", "Down", "Down", "Return")  # … on the security key
            [dialog] = screen.wait_window()
            screen.screenshot(dialog, "order-on-a-security-key")
            _fill(screen, dialog, "198112189876", code, "000000")
            screen.wait_gone(dialog)
            [again] = screen.wait_window()  # the wrong PIN said, asked again
            _fill(screen, again, "198112189876", code, USER_PIN)
            [done] = screen.wait_window("Order BankID on the security key anna", timeout=30)
            screen.key(done, "Return")
        listing = subprocess.run(
            [
                str(Path(sys.executable).parent / "eid-agent"),
                "credentials",
                "list",
                "--json",
                "--data-dir",
                str(data),
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "SOFTHSM2_CONF": str(softhsm.conf)},
            timeout=60,
            check=False,
        )
        (entry,) = json.loads(listing.stdout)
        assert entry["kind"] == "token" and entry["personalNumber"] == "198112189876"
        assert b"never extractable" in softhsm.tool("anna", "--list-objects")
        for secret in (code, USER_PIN, "000000"):
            assert secret not in agent.stderr
