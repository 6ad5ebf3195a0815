"""The virtual PIV card as OpenSC sees it, and the agent's PKCS#11 path through the real
OpenSC, pcscd and vpcd: listing, both keys, three wrong PINs, the PUK, a new PIN."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import rp
from agent.credentials.card.errors import PinBlocked, PinRef, WrongCurrentPin, WrongPin, WrongPuk
from agent.credentials.card.monitor import CardWatcher
from agent.credentials.hardware import Hardware, pins_of
from agent.credentials.model import CredentialState, KeyPurpose
from agent.credentials.pkcs11.modules import ModuleEntry
from agent.credentials.pkcs11.watcher import TokenWatcher
from agent.desktop.pins import PinManager
from agent.ui.port import PinAnswer
from eidcore.messages import MessageCode, Term
from issuer import CertificateAuthority
from tests.bridge_kit import ORIGIN, Bridge, ScriptedUi, b64, new_nonce, running_bridge
from tests.card_kit import personalised_card, wait_no_card
from tests.piv_kit import OPENSC, PIV_PIN, PIV_PUK, PivInReader, personalised_piv
from tests.test_pkcs11 import _verify

pytestmark = pytest.mark.slow


def _tool(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def test_opensc_sees_a_piv_card(piv: PivInReader) -> None:
    assert "Personal Identity Verification Card" in _tool("/usr/bin/opensc-tool", "-r", "1", "-n")
    objects = _tool(
        "/usr/bin/pkcs11-tool", "--module", OPENSC, "--slot-index", "1", "--list-objects"
    )
    for shown in (
        "Certificate for PIV Authentication",
        "Certificate for Digital Signature",
        "serialNumber=198112189876",
        "PIV AUTH pubkey",
        "SIGN pubkey",
    ):
        assert shown in objects, objects
    certificates = _tool("/usr/bin/pkcs15-tool", "--reader", "1", "--list-certificates")
    assert "X.509 Certificate [Certificate for PIV Authentication]" in certificates
    keys = _tool(
        "/usr/bin/pkcs11-tool",
        "--module",
        OPENSC,
        "--slot-index",
        "1",
        "--login",
        "--pin",
        PIV_PIN,
        "--list-objects",
        "--type",
        "privkey",
    )
    assert "always authenticate" in keys  # 9C, as on a real PIV card


@contextlib.asynccontextmanager
async def _watching(piv: PivInReader, tmp_path: Path) -> AsyncIterator[TokenWatcher]:
    watcher = TokenWatcher(
        [ModuleEntry("opensc", Path(OPENSC), "config")],
        poll=0.1,
        authorities=[piv.ca.issuing_certificate.public_bytes(serialization.Encoding.DER)],
        conf_dir=tmp_path / "opensc",
    )
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.ready.wait(), 20)
        for _ in range(100):
            if watcher.credentials():
                break
            await asyncio.sleep(0.05)
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_piv_bankid_through_opensc(piv: PivInReader, tmp_path: Path) -> None:
    async with _watching(piv, tmp_path) as watcher:
        (info,) = watcher.credentials()
        assert info.owner.name == "Anna Andersson" and info.issuer.endswith("Issuing CA")
        held = watcher.card(info.id)
        assert held is not None and len(held.chains[KeyPurpose.IDENTIFICATION]) == 2
        for purpose in KeyPurpose:
            raw = await asyncio.to_thread(watcher.sign, info.id, purpose, b"data", PIV_PIN)
            _verify(held.chains[purpose], b"data", raw)


async def test_three_wrong_pins_block_and_the_puk_unblocks(
    piv: PivInReader,
    tmp_path: Path,
) -> None:
    async with _watching(piv, tmp_path) as watcher:
        (info,) = watcher.credentials()

        async def sign(pin: str) -> bytes:
            return await asyncio.to_thread(watcher.sign, info.id, KeyPurpose.SIGNATURE, b"x", pin)

        with pytest.raises(WrongPin) as first:
            await sign("000000")
        # OpenSC's flags say nothing at two left; the card, asked through PC/SC, does
        assert first.value.tries_left == 2
        assert (await asyncio.to_thread(watcher.pin_status, info.id, PinRef.USER)).tries_left == 2
        with pytest.raises(WrongPin) as second:
            await sign("000000")
        assert second.value.tries_left == 1  # the final try
        with pytest.raises(PinBlocked):
            await sign("000000")
        assert piv.card.state.pin.tries_left == 0
        for _ in range(50):  # the snapshot follows the token's flags
            if watcher.credentials()[0].locked:
                break
            await asyncio.sleep(0.05)
        assert watcher.credentials()[0].state(info.not_before) is CredentialState.LOCKED
        with pytest.raises(PinBlocked):
            await sign(PIV_PIN)
        with pytest.raises(WrongPuk):
            await asyncio.to_thread(watcher.unblock_pin, info.id, PinRef.USER, "87654321", "654321")
        assert piv.card.state.puk.tries_left == 2
        await asyncio.to_thread(watcher.unblock_pin, info.id, PinRef.USER, PIV_PUK, "654321")
        assert piv.card.state.pin.tries_left == 3 and piv.card.state.puk.tries_left == 3
        assert len(await sign("654321")) == 64
        # and a PIN change, which costs no PUK try even under OpenSC's unblock setting
        with pytest.raises(WrongCurrentPin):
            await asyncio.to_thread(watcher.change_pin, info.id, PinRef.USER, "000000", "111111")
        await asyncio.to_thread(watcher.change_pin, info.id, PinRef.USER, "654321", "111111")
        assert piv.card.state.puk.tries_left == 3
        assert len(await sign("111111")) == 64


# -- orders through the bridge, with the real order service --------------------------------


@contextlib.asynccontextmanager
async def _piv_bridge(piv: PivInReader, tmp_path: Path) -> AsyncIterator[Bridge]:
    der = piv.ca.issuing_certificate.public_bytes(serialization.Encoding.DER)
    tokens = TokenWatcher(
        [ModuleEntry("opensc", Path(OPENSC), "config")],
        poll=0.1,
        authorities=[der],
        conf_dir=tmp_path / "opensc",
    )
    async with running_bridge(tmp_path / "files", hardware=Hardware(tokens), runs=[tokens]) as b:
        for _ in range(200):
            if tokens.credentials():
                break
            await asyncio.sleep(0.05)
        yield b


async def test_identification_and_signature_with_the_piv_card(
    piv: PivInReader,
    tmp_path: Path,
) -> None:
    async with _piv_bridge(piv, tmp_path) as b:
        nonce = new_nonce()
        _, body = await b.post("/v1/auth", {"nonce": nonce, "tokenKinds": ["token"]})
        ref = body["orderRef"]
        await b.wait_for(ref, "userSign")
        await b.ui.secrets.put("000000")
        await b.ui.secrets.put(PIV_PIN)
        data = (await b.wait_for(ref, "complete"))["completionData"]
        problem = b.ui.problems[-1]  # the exact count, from the card (not in PKCS#11)
        assert problem is not None and problem.code is MessageCode.WRONG_PIN
        assert problem.params == {"pin": Term.TOKEN_PIN, "tries_left": 2}
        assert [c.tries_left for c in b.ui.asked] == [3, 2]
        verified = rp.verify_auth(
            data,
            expected_origin=ORIGIN,
            nonce=nonce,
            trust_anchors=[piv.ca.root_certificate],
            now=dt.datetime.now(dt.UTC),
        )
        assert verified.person.personal_number == "198112189876"
        assert data["token"] == {"kind": "token"}
        ref = await b.start("sign", userVisibleData=b64("Jag godkänner."))
        await b.ui.secrets.put(PIV_PIN)
        data = (await b.wait_for(ref, "complete"))["completionData"]
        assert json.loads(base64.b64decode(data["signedData"]))["type"] == "sign"
        assert piv.card.state.pin.tries_left == 3


async def test_three_wrong_pins_in_an_order_end_with_the_seeds_message(
    piv: PivInReader,
    tmp_path: Path,
) -> None:
    async with _piv_bridge(piv, tmp_path) as b:
        ref = await b.start()
        for _ in range(3):
            await b.ui.secrets.put("000000")
        assert (await b.wait_for(ref, "failed"))["hintCode"] == "certificateErr"
        told = b.ui.told[-1]
        assert told.code is MessageCode.PIN_BLOCKED  # "you typed the wrong PIN 3 times"
        assert told.params == {"pin": Term.TOKEN_PIN}
        second = b.ui.problems[-1]  # before the third: the card's final try, said so
        assert second is not None and second.code is MessageCode.WRONG_PIN
        assert second.params == {"pin": Term.TOKEN_PIN, "tries_left": 1}


async def test_the_card_removed_before_the_pin_waits_and_goes_on(
    piv: PivInReader,
    tmp_path: Path,
) -> None:
    async with _piv_bridge(piv, tmp_path) as b:
        ref = await b.start()
        await b.wait_for(ref, "userSign")
        await asyncio.to_thread(piv.remove)  # the dialog is open, no PIN typed yet
        await asyncio.sleep(0.5)  # the watcher has seen it
        await b.ui.secrets.put(PIV_PIN)
        assert (await b.wait_for(ref, "noClient"))["status"] == "pending"
        assert b.ui.told[-1].code is MessageCode.CARD_REMOVED
        assert piv.card.state.pin.tries_left == 3  # nothing spent
        await asyncio.to_thread(piv.insert)
        await b.wait_for(ref, "userSign")
        await b.ui.secrets.put(PIV_PIN)
        assert (await b.wait_for(ref, "complete"))["completionData"]["token"]["kind"] == "token"


async def test_the_card_removed_after_the_pin_ends_the_order(
    piv: PivInReader,
    tmp_path: Path,
) -> None:
    async with _piv_bridge(piv, tmp_path) as b:
        pulled = threading.Event()

        def pull(command: bytes, response: bytes) -> None:
            if command[1] == 0x20 and len(command) > 5 and not pulled.is_set():  # the VERIFY
                pulled.set()
                piv.link.remove()

        piv.link._on_apdu = pull
        ref = await b.start()
        await b.wait_for(ref, "userSign")
        await b.ui.secrets.put(PIV_PIN)
        body = await b.wait_for(ref, "failed")
        assert body["hintCode"] == "startFailed" and pulled.is_set()
        assert b.ui.told[-1].code is MessageCode.CARD_REMOVED


async def test_manage_pin_on_a_piv_card_as_my_bankids_runs_it(
    piv: PivInReader,
    tmp_path: Path,
) -> None:
    """The "Change PIN" and "Unblock PIN" buttons of My BankIDs, on a token: one PIN."""
    async with _watching(piv, tmp_path) as watcher:
        (info,) = watcher.credentials()
        assert pins_of(info.kind) == (PinRef.USER,)
        ui = ScriptedUi()
        manager = PinManager(Hardware(watcher), ui)
        await ui.pin_answers.put(PinAnswer("000000", "222222"))
        await ui.pin_answers.put(PinAnswer(PIV_PIN, "222222"))
        outcome = await manager.change(info.id, PinRef.USER)
        assert outcome.code is MessageCode.PIN_CHANGED and outcome.params == {"pin": Term.TOKEN_PIN}
        problem = ui.pin_requests[1][1]  # the card's own count, as for the profile's cards
        assert problem is not None and problem.code is MessageCode.PIN_CHANGE_FAILED
        assert problem.params == {"pin": Term.TOKEN_PIN, "tries_left": 2}
        await ui.pin_answers.put(PinAnswer("87654321", "333333"))
        await ui.pin_answers.put(PinAnswer(PIV_PUK, "333333"))
        outcome = await manager.unblock(info.id, PinRef.USER)
        assert outcome.code is MessageCode.PIN_UNBLOCKED
        problem = ui.pin_requests[3][1]
        assert problem is not None and problem.code is MessageCode.WRONG_TOKEN_PUK
        assert piv.card.state.pin.value.rstrip(b"\xff") == b"333333"


def test_a_virtual_piv_card_as_a_developer_uses_it(pcscd: object, tmp_path: Path) -> None:
    """eid-issuer personalises a PIV card file, eid-vcard inserts it in the second reader,
    and ``eid-agent credentials list`` shows its BankID through OpenSC."""
    import json
    import signal
    import sys
    import time

    bin_dir = Path(sys.executable).parent
    card = tmp_path / "anna.piv"
    made = subprocess.run(
        [
            str(bin_dir / "eid-issuer"),
            "personalise-piv",
            "--personal-number",
            "198112189876",
            "--name",
            "Anna Andersson",
            "--card",
            str(card),
            "--ca-dir",
            str(tmp_path / "ca"),
        ],
        input="123456\n123456\n12345678\n12345678\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert oct(card.stat().st_mode)[-3:] == "600" and "issuing.crt" in made.stdout
    shown = subprocess.run(
        [str(bin_dir / "eid-vcard"), "show", "--card", str(card)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "PIN: 3 tries left" in shown.stdout
    config = tmp_path / "config.toml"
    config.write_text(
        f'[pkcs11]\nmodules = ["{OPENSC}"]\np11kit = false\n'
        f'intermediates = ["{tmp_path / "ca" / "issuing.crt"}"]\n'
    )
    inserted = subprocess.Popen(
        [str(bin_dir / "eid-vcard"), "insert", "--card", str(card), "--slot", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert inserted.stderr is not None
        assert "inserted in 'Virtual PCD 00 01'" in inserted.stderr.readline()
        deadline = time.monotonic() + 10
        while True:
            listing = subprocess.run(
                [
                    str(bin_dir / "eid-agent"),
                    "credentials",
                    "list",
                    "--json",
                    "--data-dir",
                    str(tmp_path / "data"),
                    "--config",
                    str(config),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            found = json.loads(listing.stdout or "[]")
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [(t["kind"], t["personalNumber"]) for t in found] == [("token", "198112189876")]
    finally:
        inserted.send_signal(signal.SIGTERM)
        assert inserted.wait(timeout=10) == 0


async def test_a_piv_card_beside_the_profile_card_no_probe_storm(
    pcscd: object,
    tmp_path: Path,
    card_ca: CertificateAuthority,
) -> None:
    """OpenSC probes every card it does not know on each slot listing (~100 SELECTs): the
    agent lists slots again only when the card watcher saw a reader change, so the
    profile card in the other reader is left alone, and a PIV card inserted later is
    still listed within a second."""
    profile = personalised_card(tmp_path / "profile", card_ca)
    seen: list[bytes] = []
    profile.link._on_apdu = lambda command, _response: seen.append(command)
    profile.link.insert()
    card = personalised_piv(tmp_path / "piv", card_ca)
    cards = CardWatcher()
    card_task = asyncio.create_task(cards.run())
    tokens = TokenWatcher(
        [ModuleEntry("opensc", Path(OPENSC), "config")],
        authorities=[card_ca.issuing_certificate.public_bytes(serialization.Encoding.DER)],
        readers_changed=lambda: cards.generation,
    )
    token_task = asyncio.create_task(tokens.run())
    try:
        await asyncio.wait_for(tokens.ready.wait(), 20)
        await asyncio.sleep(1.0)  # both watchers settled after the first looks
        before = len(seen)
        await asyncio.sleep(2.0)
        assert len(seen) - before < 10, f"{len(seen) - before} APDUs to the profile card"
        generation = tokens.generation
        await asyncio.to_thread(card.link.insert)
        started = time.monotonic()
        await asyncio.wait_for(tokens.wait_changed(generation), 2.0)
        assert tokens.credentials() and time.monotonic() - started < 1.0
    finally:
        for task in (token_task, card_task):
            task.cancel()
        await asyncio.gather(token_task, card_task, return_exceptions=True)
        card.link.remove()
        profile.link.remove()
        wait_no_card()


def test_the_bank_puts_a_bankid_on_a_blank_piv_card_through_opensc(
    pcscd: object,
    tmp_path: Path,
) -> None:
    """``eid-issuer personalise-token`` on a blank PIV card: the card makes both keys
    (OpenSC's piv-tool, the management key), the certificates are loaded after, and the
    agent lists the new BankID; a wrong management key changes nothing."""
    import json
    import sys

    from issuer.vcard.piv import PivCard, new_piv_card
    from issuer.vcard.vpcd import VPCD_PORTS, VpcdLink

    bin_dir = Path(sys.executable).parent
    saved: list[bytes] = []
    card = PivCard(new_piv_card("BLANK01", PIV_PIN, PIV_PUK), lambda s: saved.append(s.to_json()))
    link = VpcdLink(card, port=VPCD_PORTS[1])
    link.insert()
    try:

        def personalise(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    str(bin_dir / "eid-issuer"),
                    "personalise-token",
                    "--personal-number",
                    "198112189876",
                    "--name",
                    "Anna Andersson",
                    "--module",
                    OPENSC,
                    "--ca-dir",
                    str(tmp_path / "ca"),
                    *extra,
                ],
                input=f"{PIV_PIN}\n",
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        wrong_key = tmp_path / "wrong.key"
        wrong_key.write_text("00" * 24)
        refused = personalise("--admin-key-file", str(wrong_key))
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert card.state.keys == {}  # nothing made without the management key
        done = personalise()
        assert done.returncode == 0, done.stderr
        assert set(card.state.keys) == {0x9A, 0x9C} and len(card.state.objects) == 2
        config = tmp_path / "config.toml"
        config.write_text(
            f'[pkcs11]\nmodules = ["{OPENSC}"]\np11kit = false\n'
            f'intermediates = ["{tmp_path / "ca" / "issuing.crt"}"]\n'
        )
        listing = subprocess.run(
            [
                str(bin_dir / "eid-agent"),
                "credentials",
                "list",
                "--json",
                "--data-dir",
                str(tmp_path / "data"),
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        (entry,) = json.loads(listing.stdout)
        assert entry["id"] == done.stdout.split()[0] and entry["kind"] == "token"
        # the keys the card made sign for the certificates the bank issued
        from agent.credentials.pkcs11.watcher import tokens_open

        issuing = (tmp_path / "ca" / "issuing.crt").read_bytes()
        authority = x509.load_pem_x509_certificate(issuing).public_bytes(serialization.Encoding.DER)
        with tokens_open(
            [ModuleEntry("opensc", Path(OPENSC), "config")], authorities=[authority]
        ) as tokens:
            (info,) = tokens.credentials()
            held = tokens.card(info.id)
            assert held is not None
            for purpose in KeyPurpose:
                _verify(held.chains[purpose], b"x", tokens.sign(info.id, purpose, b"x", PIV_PIN))
    finally:
        link.remove()


def test_a_person_orders_a_bankid_onto_a_blank_piv_card(
    pcscd: object,
    tmp_path: Path,
) -> None:
    """``eid-agent enrol --token`` on a blank PIV card, against a real issuer: a wrong
    management key and a wrong PIN are said before the activation code is spent; then the
    card makes both keys (piv-tool), signs its own certificate requests through OpenSC, and
    the new BankID identifies through a real agent — its chain completed with the issuing
    CA the order kept, since a PIV card has no place for it — verified with the issuer's
    root and its OCSP responder."""
    import os
    import sys

    from issuer.vcard.piv import PivCard, new_piv_card
    from issuer.vcard.vpcd import VPCD_PORTS, VpcdLink
    from rp.revocation import http_fetch
    from tests.agent_process import AgentProcess
    from tests.issuer_kit import IssuerProcess

    bin_dir = Path(sys.executable).parent
    card = PivCard(new_piv_card("BLANK02", PIV_PIN, PIV_PUK), lambda s: None)
    link = VpcdLink(card, port=VPCD_PORTS[1])
    config = tmp_path / "config.toml"
    config.write_text(f'[pkcs11]\nmodules = ["{OPENSC}"]\np11kit = false\n')
    data = tmp_path / "data"
    link.insert()
    try:
        with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'issuer.db'}") as issuer:
            _, code = issuer.order("198112189876")

            def order(pin: str, *extra: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [
                        str(bin_dir / "eid-agent"),
                        "enrol",
                        "--token",
                        "--issuer",
                        issuer.url,
                        "--issuer-ca",
                        str(issuer.tls_cert),
                        "--config",
                        str(config),
                        "--data-dir",
                        str(data),
                        "--lang",
                        "en",
                        *extra,
                    ],
                    input=f"198112189876\n{code}\n{pin}\n",
                    capture_output=True,
                    text=True,
                    timeout=180,
                    check=False,
                )

            wrong_key = tmp_path / "wrong.key"
            wrong_key.write_text("00" * 24)
            refused = order(PIV_PIN, "--admin-key-file", str(wrong_key))
            assert refused.returncode == 1 and "[10090]" in refused.stderr, refused.stderr
            garbled = tmp_path / "garbled.key"
            garbled.write_text("not a key")
            unreadable = order(PIV_PIN, "--admin-key-file", str(garbled))
            assert "[10091]" in unreadable.stderr and "Traceback" not in unreadable.stderr
            wrong_pin = order("000000")
            assert "[10037] Wrong PIN" in wrong_pin.stderr  # the card's own count, said
            assert "blocked: 2." in wrong_pin.stderr, wrong_pin.stderr
            assert card.state.keys == {} and card.state.pin.tries_left == 2
            done = order(PIV_PIN)  # the same activation code: none of the above spent it
            assert done.returncode == 0, done.stderr
            assert "is ready: Anna Andersson" in done.stdout
            assert code not in done.stderr + done.stdout and PIV_PIN not in done.stderr
            assert set(card.state.keys) == {0x9A, 0x9C}
            kept = data / "token-authorities.pem"
            assert kept.exists() and kept.stat().st_mode & 0o077 == 0
            nonce = base64.b64encode(os.urandom(32)).decode()
            with AgentProcess(data, "--config", str(config)) as agent:
                agent.ready()
                agent.wait_for_output("token BankID", stream="stderr", timeout=30)
                status, body = agent.request("POST", "/v1/auth", {"nonce": nonce})
                assert status == 201, body
                agent.wait_for_output("PIN for Anna Andersson")
                agent.type(PIV_PIN)
                completion = agent.wait_status(body["orderRef"], "complete")["completionData"]
            root = x509.load_pem_x509_certificate((issuer.ca_dir / "root.crt").read_bytes())
            verified = rp.verify_auth(
                completion,
                expected_origin=agent.origin,
                nonce=nonce,
                trust_anchors=[root],
                now=dt.datetime.now(dt.UTC),
                revocation=rp.OcspPolicy(fetch=http_fetch(str(issuer.tls_cert))),
            )
            assert verified.person.personal_number == "198112189876"
    finally:
        link.remove()
