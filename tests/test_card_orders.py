"""Identification and signing with a card through the bridge: the real order service and
card watcher over a real pcscd, vpcd and the virtual card."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import rp
from agent.credentials.card.monitor import CardWatcher, diff
from eidcore.messages import MessageCode, Term
from issuer import CertificateAuthority
from issuer.vcard import VpcdLink
from tests.bridge_kit import ORIGIN, Bridge, b64, new_nonce, running_bridge
from tests.card_kit import ID_PIN, SIGN_PIN, InsertedCard, Pcscd, personalised_card

pytestmark = pytest.mark.slow


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@pytest.fixture
async def card_bridge(
    tmp_path: Path, inserted_card: InsertedCard
) -> AsyncIterator[tuple[Bridge, CardWatcher]]:
    """A bridge with a card watcher that already sees the inserted card."""
    watcher = CardWatcher()
    async with running_bridge(tmp_path / "files", hardware=watcher) as b:
        await _until(lambda: watcher.credentials())
        yield b, watcher


async def test_identification_with_a_card_verifies(
    card_bridge: tuple[Bridge, CardWatcher], inserted_card: InsertedCard
) -> None:
    b, _ = card_bridge
    nonce = new_nonce()
    _, body = await b.post("/v1/auth", {"nonce": nonce})
    ref = body["orderRef"]
    await b.wait_for(ref, "userSign")
    assert b.ui.requests[0].choices[0].kind.value == "card"
    await b.ui.secrets.put(ID_PIN)
    data = (await b.wait_for(ref, "complete"))["completionData"]
    assert data["token"] == {"kind": "card"}
    verified = rp.verify_auth(
        data,
        expected_origin=ORIGIN,
        nonce=nonce,
        trust_anchors=[inserted_card.ca.root_certificate],
        now=dt.datetime.now(dt.UTC),
    )
    assert verified.person.personal_number == "198112189876"
    # signing with the card: the signature PIN, the signature key
    ref = await b.start("sign", userVisibleData=b64("Jag godkänner."))
    await b.ui.secrets.put("99999")
    await b.wait_for(ref, "userSign")
    # asked three times by now: the identification's PIN, the signature's, and the
    # signature's again after the wrong one (waiting for two read the second question's
    # empty problem whenever the card answered slower than the poll: a flaky test)
    await _until(lambda: len(b.ui.problems) >= 3)
    problem = b.ui.problems[-1]
    assert problem is not None and problem.code is MessageCode.WRONG_PIN
    assert problem.params == {"pin": Term.SIGNATURE_PIN, "tries_left": 2}
    await b.ui.secrets.put(SIGN_PIN)
    data = (await b.wait_for(ref, "complete"))["completionData"]
    assert json.loads(base64.b64decode(data["signedData"]))["type"] == "sign"


async def test_order_waits_in_no_client_until_a_card_comes(
    pcscd: Pcscd, tmp_path: Path, card_ca: CertificateAuthority
) -> None:
    card = personalised_card(tmp_path, card_ca)
    watcher = CardWatcher()
    async with running_bridge(tmp_path / "files", hardware=watcher) as b:
        ref = await b.start()
        body = await b.wait_for(ref, "noClient")
        assert body["status"] == "pending"
        assert b.ui.told[0].code is MessageCode.BANKID_MISSING  # "insert your card"
        card.link.insert()
        try:
            await b.wait_for(ref, "userSign")
            await b.ui.secrets.put(ID_PIN)
            await b.wait_for(ref, "complete")
        finally:
            card.link.remove()
            card.wait_removed()


async def test_blocked_pin_ends_with_the_seeds_message(
    card_bridge: tuple[Bridge, CardWatcher], inserted_card: InsertedCard
) -> None:
    b, _ = card_bridge
    ref = await b.start()
    for _ in range(3):
        await b.ui.secrets.put("0000")
    assert (await b.wait_for(ref, "failed"))["hintCode"] == "certificateErr"
    told = b.ui.told[-1]
    assert told.code is MessageCode.PIN_BLOCKED  # "you typed the wrong PIN 3 times"
    assert told.params == {"pin": Term.IDENTIFICATION_PIN}


async def test_card_pulled_mid_operation(
    card_bridge: tuple[Bridge, CardWatcher], inserted_card: InsertedCard
) -> None:
    b, _ = card_bridge
    pulled = threading.Event()

    def pull(command: bytes, _response: bytes) -> None:
        if command[1] == 0x22 and not pulled.is_set():  # after MSE, before VERIFY
            pulled.set()
            inserted_card.link.remove()

    inserted_card.link._on_apdu = pull
    ref = await b.start()
    await b.wait_for(ref, "userSign")
    await b.ui.secrets.put(ID_PIN)
    # pulled before the PIN reached it: nothing spent, so the order waits for the card
    assert (await b.wait_for(ref, "noClient"))["status"] == "pending"
    assert b.ui.told[-1].code is MessageCode.CARD_REMOVED
    assert inserted_card.file.load().pins[0x81].tries_left == 3
    inserted_card.wait_removed()
    inserted_card.link._on_apdu = None
    inserted_card.link.insert()  # back in: the order goes on by itself
    await b.wait_for(ref, "userSign")
    await b.ui.secrets.put(ID_PIN)
    assert (await b.wait_for(ref, "complete"))["completionData"]["token"]["kind"] == "card"


async def test_card_pulled_after_the_pin_reached_it(
    card_bridge: tuple[Bridge, CardWatcher], inserted_card: InsertedCard
) -> None:
    b, _ = card_bridge
    pulled = threading.Event()

    def pull(command: bytes, _response: bytes) -> None:
        if command[1] == 0x20 and len(command) > 5 and not pulled.is_set():  # VERIFY
            pulled.set()
            inserted_card.link.remove()

    inserted_card.link._on_apdu = pull
    ref = await b.start()
    await b.ui.secrets.put(ID_PIN)
    assert (await b.wait_for(ref, "failed"))["hintCode"] == "startFailed"
    assert b.ui.told[-1].code is MessageCode.CARD_REMOVED


async def test_pcscd_restarted_while_the_agent_runs(
    pcscd: Pcscd, tmp_path: Path, card_ca: CertificateAuthority
) -> None:
    if not pcscd.owned:
        pytest.skip("the machine's own pcscd is running; the tests restart only their own")
    watcher = CardWatcher()
    async with running_bridge(tmp_path / "files", hardware=watcher):
        await _until(lambda: watcher.service_up)
        await asyncio.to_thread(pcscd.restart)
        await _until(lambda: watcher.restarts >= 1, timeout=20)
        card = personalised_card(tmp_path, card_ca)
        card.link.insert()
        try:
            await _until(lambda: watcher.credentials(), timeout=10)
        finally:
            card.link.remove()
            card.wait_removed()


async def test_pcscd_killed_during_an_order(
    pcscd: Pcscd, tmp_path: Path, card_ca: CertificateAuthority
) -> None:
    """pcscd crashes while the dialog asks for the PIN. The order ends on a catalogue
    message (the card was lost while the PIN was under way: it may have counted the
    try) — never an internal error — and once the service is back and the card seen
    again, the next order goes through."""
    if not pcscd.owned:
        pytest.skip("the machine's own pcscd is running; the tests restart only their own")
    card = personalised_card(tmp_path, card_ca)
    card.link.insert()
    watcher = CardWatcher()
    async with running_bridge(tmp_path / "files", hardware=watcher) as b:
        await _until(lambda: watcher.credentials())
        ref = await b.start()
        await b.wait_for(ref, "userSign")
        await asyncio.to_thread(pcscd.kill)
        await _until(lambda: watcher.restarts >= 1, timeout=20)
        await b.ui.secrets.put(ID_PIN)
        # before the PIN left: the order waits for the card; after: it ends (the card may
        # have counted the try). Which one is a matter of microseconds; both are told.
        await _until(lambda: len(b.ui.told) >= 1, timeout=20)
        assert b.ui.told[-1].code in {
            MessageCode.CARD_REMOVED,
            MessageCode.SMART_CARD_SERVICE_UNAVAILABLE,
        }
        body = await b.collect(ref)
        assert body.get("hintCode") in {"noClient", "startFailed"}, body
        card.link.remove()
        # the same card, seen by the new pcscd: vpcd's link to the old one died with it
        again = InsertedCard(VpcdLink(card.card), card.card, card.file, card_ca)
        again.link.insert()
        try:
            await _until(lambda: watcher.credentials(), timeout=20)
            if body["status"] == "failed":
                ref = await b.start()
            # a PIN typed while the card was gone may still be waiting to be asked for
            state = await b.wait_for(ref, "userSign", "complete", timeout=20)
            if state["status"] != "complete":
                await b.ui.secrets.put(ID_PIN)
            assert (await b.wait_for(ref, "complete"))["status"] == "complete"
        finally:
            again.link.remove()


def test_diff_sees_swaps_by_the_event_counter() -> None:
    before = {"r": (True, 4), "gone": (True, 1)}
    after = {"r": (True, 6), "new": (True, 0)}
    changes = diff(before, after)
    assert changes.inserted == {"r", "new"}
    assert changes.removed == {"r", "gone"}
    assert diff(after, after).inserted == frozenset()


async def test_a_fast_swap_is_seen(
    pcscd: Pcscd, tmp_path: Path, card_ca: CertificateAuthority
) -> None:
    """Card A out and card B in within one look: the event counter tells the watcher."""
    first = personalised_card(tmp_path / "a", card_ca)
    second = personalised_card(tmp_path / "b", card_ca)
    watcher = CardWatcher()
    task = asyncio.create_task(watcher.run())
    try:
        first.link.insert()
        await _until(lambda: watcher.credentials())
        (a,) = watcher.credentials()
        first.link.remove()
        second.link.insert()  # no wait in between
        await _until(lambda: [c.id for c in watcher.credentials()] not in ([], [a.id]))
        (b,) = watcher.credentials()
        assert b.id != a.id
    finally:
        task.cancel()
        second.link.remove()
        second.wait_removed()
