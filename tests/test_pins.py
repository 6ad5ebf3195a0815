"""PIN management through the UI port (what a Manage PIN button runs), on a real pcscd
with the virtual card."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.credentials.card import PinBlocked, PinRef, WrongCurrentPin
from agent.credentials.card.monitor import CardWatcher
from agent.desktop.pins import PinManager
from agent.ui.port import PinAnswer
from eidcore.messages import MessageCode, Term
from tests.bridge_kit import ScriptedUi
from tests.card_kit import PUK, SIGN_PIN, InsertedCard

pytestmark = pytest.mark.slow


@pytest.fixture
async def watched(inserted_card: InsertedCard) -> AsyncIterator[tuple[CardWatcher, str]]:
    watcher = CardWatcher()
    task = asyncio.create_task(watcher.run())
    for _ in range(500):
        if watcher.credentials():
            break
        await asyncio.sleep(0.02)
    yield watcher, watcher.credentials()[0].id
    task.cancel()


async def test_change_pin_asks_again_after_a_wrong_current_pin(
    watched: tuple[CardWatcher, str],
) -> None:
    watcher, card_id = watched
    ui = ScriptedUi()
    await ui.pin_answers.put(PinAnswer("99999", "54321"))
    await ui.pin_answers.put(PinAnswer(SIGN_PIN, "54321"))
    outcome = await PinManager(watcher, ui).change(card_id, PinRef.SIGNATURE)
    assert outcome.code is MessageCode.PIN_CHANGED
    assert outcome.params == {"pin": Term.SIGNATURE_PIN}
    (first, no_problem), (_, problem) = ui.pin_requests
    assert first.pin is PinRef.SIGNATURE and no_problem is None
    assert problem is not None and problem.code is MessageCode.PIN_CHANGE_FAILED
    assert problem.params == {"pin": Term.SIGNATURE_PIN, "tries_left": 2}
    assert watcher.pin_status(card_id, PinRef.SIGNATURE).tries_left == 3


async def test_unblock_names_the_pin_and_counts_the_puk(
    watched: tuple[CardWatcher, str], inserted_card: InsertedCard
) -> None:
    watcher, card_id = watched
    for _ in range(3):
        with pytest.raises((WrongCurrentPin, PinBlocked)):
            await asyncio.to_thread(
                watcher.change_pin, card_id, PinRef.IDENTIFICATION, "0000", "1111"
            )
    ui = ScriptedUi()
    await ui.pin_answers.put(PinAnswer("11111111", "4321"))
    await ui.pin_answers.put(PinAnswer(PUK, "4321"))
    outcome = await PinManager(watcher, ui).unblock(card_id, PinRef.IDENTIFICATION)
    assert outcome.code is MessageCode.PIN_UNBLOCKED
    problem = ui.pin_requests[1][1]
    assert problem is not None and problem.code is MessageCode.WRONG_PUK
    assert problem.params == {"pin": Term.IDENTIFICATION_PIN, "tries_left": 2}
    assert inserted_card.file.load().pins[0x81].value == "4321"


async def test_cancel_and_a_blocked_pin_are_outcomes(watched: tuple[CardWatcher, str]) -> None:
    watcher, card_id = watched
    ui = ScriptedUi()
    await ui.pin_answers.put(None)
    assert (
        await PinManager(watcher, ui).change(card_id, PinRef.IDENTIFICATION)
    ).code is MessageCode.USER_CANCELLED
    for _ in range(3):
        await ui.pin_answers.put(PinAnswer("0000", "1111"))
    outcome = await PinManager(watcher, ui).change(card_id, PinRef.IDENTIFICATION)
    assert outcome.code is MessageCode.PIN_BLOCKED
    assert ui.told[-1] == outcome
