"""Managing a card's PINs through the UI port: what a "Manage PIN" button in any UI runs.

The core drives the dialogue (ask, try on the card, ask again with the card's answer)
and the UI only shows and asks, as with orders. The command line's ``eid-agent card``
is the same set of actions for a terminal.
"""

from __future__ import annotations

import asyncio
import logging

from agent.credentials import Watcher
from agent.credentials.card import (
    CardError,
    NoCard,
    PinFormat,
    PinRef,
    WrongCurrentPin,
    WrongPuk,
)
from agent.notices import PIN_TERMS, Notice, notice_for
from agent.ui import PinRequest, UiPort
from eidcore.messages import MessageCode

log = logging.getLogger(__name__)


class PinManager:
    def __init__(self, hardware: Watcher, ui: UiPort) -> None:
        self._hardware, self._ui = hardware, ui

    async def change(self, card_id: str, pin: PinRef) -> Notice:
        """Change ``pin`` on the card; the outcome (told to the person) is returned."""
        return await self._run(card_id, pin, unblock=False, keep=False)

    async def unblock(self, card_id: str, pin: PinRef, *, keep: bool = False) -> Notice:
        """Unblock ``pin`` with the PUK, setting a new PIN unless ``keep``."""
        return await self._run(card_id, pin, unblock=True, keep=keep)

    async def _run(self, card_id: str, pin: PinRef, *, unblock: bool, keep: bool) -> Notice:
        if pin is PinRef.PUK:
            raise ValueError("the PUK is not managed here")
        card = self._hardware.card(card_id)
        if card is None:
            return await self._tell(notice_for(NoCard()))
        request = PinRequest(pin, card.info, unblock=unblock, keep=keep)
        problem: Notice | None = None
        while True:
            answer = await self._ui.ask_pins(request, problem)
            if answer is None:
                return Notice(MessageCode.USER_CANCELLED)
            try:
                if unblock:
                    new = None if keep else answer.new
                    await asyncio.to_thread(
                        self._hardware.unblock_pin, card_id, pin, answer.secret, new
                    )
                else:
                    if answer.new is None:
                        raise TypeError("a PIN change needs the new PIN")
                    await asyncio.to_thread(
                        self._hardware.change_pin, card_id, pin, answer.secret, answer.new
                    )
            except (WrongCurrentPin, WrongPuk, PinFormat) as exc:
                problem = notice_for(exc)  # ask again, saying why and how many tries are left
                continue
            except CardError as exc:
                log.info("PIN %s on card %s: %s", pin.name, card_id, type(exc).__name__)
                return await self._tell(notice_for(exc))
            finally:
                del answer
            code = MessageCode.PIN_UNBLOCKED if unblock else MessageCode.PIN_CHANGED
            return await self._tell(Notice(code, {"pin": PIN_TERMS[pin]}))

    async def _tell(self, notice: Notice) -> Notice:
        await self._ui.tell(notice)
        return notice
