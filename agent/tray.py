"""The tray icon's driver: its state at a glance and what its menu items do.

State: ``update`` while an update is required, ``busy`` while an order is open,
``ready`` otherwise (``problem`` is the helper's default for anything unknown). The
status line says the version, how many BankIDs are usable, and the update state. The
icon is refreshed on a slow timer (every 2 s) and only sent to the helper when it
changed, so an idle agent wakes rarely and never redraws for nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from agent import __version__
from agent.enrol import IssuerConnection, order_with_ui
from agent.messages import Language, MessageCode, Term, catalogue
from agent.notices import PIN_TERMS, Notice, notice_for
from agent.pins import PinManager
from agent.tokens import PasswordTooWeak, TokenError, TokenStore, WrongCurrentPassword
from agent.tokens.card.errors import PinRef
from agent.tokens.card.monitor import CardWatcher
from agent.tokens.model import CredentialState, TokenKind
from agent.ui.desktop import DesktopUi
from agent.updater.service import UpdaterService

__all__ = ["Tray"]

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0


class Tray:
    def __init__(self, ui: DesktopUi, language: Language, data_dir: Path, port: int, *,
                 order_active: Callable[[], bool], updater: UpdaterService | None,
                 stop: asyncio.Event, clock: Callable[[], dt.datetime],
                 cards: CardWatcher | None = None,
                 issuer: IssuerConnection | None = None) -> None:  # fmt: skip
        self._ui, self._language, self._data_dir, self._port = ui, language, data_dir, port
        self._order_active, self._updater, self._stop, self._clock = (
            order_active, updater, stop, clock)  # fmt: skip
        self._shown: tuple[str, str] | None = None
        self._cards = cards
        self._issuer = issuer  # ordering is offered only when there is an issuer to ask
        # a notice's OK works whether or not a tray can be shown
        ui.on_menu = self._chosen
        ui.on_action = self._action
        ui.on_manager = self._manage

    def _term(self, term: Term, **values: object) -> str:
        return catalogue().term(term, self._language).format(**values)

    def _state(self) -> tuple[str, str]:
        now = self._clock()
        usable = sum(1 for c in TokenStore(self._data_dir).credentials()
                     if c.state(now) is CredentialState.USABLE)  # fmt: skip
        update = self._updater.state_name() if self._updater is not None else "unmanaged"
        if self._updater is not None and self._updater.refuse_orders():
            state = "update"
        elif self._order_active():
            state = "busy"
        else:
            state = "ready"
        return state, self._term(Term.TRAY_STATUS, version=__version__, usable=usable,
                                 update=update)  # fmt: skip

    async def refresh(self) -> bool:
        """Send the icon if it changed. False: there is no tray here."""
        shown = await asyncio.to_thread(self._state)
        if shown == self._shown:
            return True
        state, status = shown
        items = [
            ("status", status, False),
            ("bankids", self._term(Term.TRAY_MY_BANKIDS), True),
            *([("order", self._term(Term.TRAY_ORDER), True)] if self._issuer else []),
            ("updates", self._term(Term.TRAY_CHECK_UPDATES), True),
            ("diagnostics", self._term(Term.TRAY_DIAGNOSTICS), True),
            ("about", self._term(Term.TRAY_ABOUT), True),
            ("quit", self._term(Term.TRAY_QUIT), True),
        ]
        if not await self._ui.tray(state, status, items):
            return False
        self._shown = shown
        return True

    async def run(self) -> None:
        if not await self.refresh():
            return  # said once in the log by the UI
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:  # the tray must never take the agent down
                log.exception("tray refresh failed")

    async def _chosen(self, item: str) -> None:
        log.info("tray: %s", item)
        if item == "quit":
            self._stop.set()
        elif item == "about":
            await self._ui.info(self._term(Term.TRAY_ABOUT),
                                self._term(Term.ABOUT_TEXT, version=__version__))  # fmt: skip
        elif item == "bankids":
            await self._ui.manager(await self._bankids())
        elif item == "order" and self._issuer is not None:
            info = await order_with_ui(self._ui, self._issuer, TokenStore(self._data_dir),
                                       self._clock)  # fmt: skip
            if info is not None:
                await self._ui.info(self._term(Term.TRAY_ORDER).rstrip(" …"), self._term(
                    Term.ORDER_DONE, name=info.owner.name, token_id=info.id))  # fmt: skip
        elif item == "updates":
            if self._updater is None:
                await self._ui.info(self._term(Term.TRAY_CHECK_UPDATES),
                                    self._term(Term.NO_UPDATES_HERE))  # fmt: skip
            else:
                await self._updater.start()  # its notices come through the UI port
        elif item == "diagnostics":
            from agent.doctor import diagnose, render

            checks = await diagnose(self._data_dir, self._port, None, None, self._clock())
            await self._ui.info(self._term(Term.TRAY_DIAGNOSTICS), render(checks, as_json=False))
        await self.refresh()

    async def _action(self, action: str) -> None:
        """A notice's OK: the update notices' "start the update"; opening the install
        page happened in the helper already."""
        log.info("notice action: %s", action)
        if action == "startUpdate" and self._updater is not None:
            await self._updater.start()

    async def _bankids(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """My BankIDs: each with owner, kind, issuer, validity and state, and what can be
        done with it (the PIN always named: a card has two)."""
        now = self._clock()
        files = await asyncio.to_thread(TokenStore(self._data_dir).credentials)
        cards = self._cards.credentials() if self._cards is not None else []
        rows = []
        for c in [*files, *cards]:
            text = (f"{c.owner.name} — {c.kind.value}, {c.issuer}, "
                    f"{c.not_after:%Y-%m-%d}, {c.state(now).value}")  # fmt: skip
            if c.kind is TokenKind.FILE:
                buttons = [(f"password:{c.id}", self._term(Term.MANAGER_CHANGE_PASSWORD))]
            else:
                buttons = []
                for ref in (PinRef.IDENTIFICATION, PinRef.SIGNATURE):
                    pin = self._term(PIN_TERMS[ref])
                    buttons.append((f"pin:{c.id}:{ref.name}",
                                    self._term(Term.MANAGER_CHANGE_PIN, pin=pin)))  # fmt: skip
                    buttons.append((f"unblock:{c.id}:{ref.name}",
                                    self._term(Term.MANAGER_UNBLOCK_PIN, pin=pin)))  # fmt: skip
            rows.append((text, buttons))
        return rows

    async def _manage(self, item: str) -> None:
        action, _, rest = item.partition(":")
        log.info("my bankids: %s", action)
        if action == "password":
            await self._change_password(rest)
        elif action in ("pin", "unblock") and self._cards is not None:
            card_id, _, ref = rest.rpartition(":")
            manager = PinManager(self._cards, self._ui)
            if action == "pin":
                await manager.change(card_id, PinRef[ref])
            else:
                await manager.unblock(card_id, PinRef[ref])

    async def _change_password(self, token_id: str) -> None:
        store = TokenStore(self._data_dir)
        credential = next((c for c in store.credentials() if c.id == token_id), None)
        if credential is None:
            return
        problem: Notice | None = None
        while True:
            answer = await self._ui.ask_password_change(credential, problem)
            if answer is None:
                return
            old, new = answer
            try:
                await asyncio.to_thread(store.change_password, token_id, old, new, self._clock())
            except (WrongCurrentPassword, PasswordTooWeak) as exc:
                problem = notice_for(exc)  # ask again, saying why (and the tries left)
                continue
            except TokenError as exc:
                await self._ui.tell(notice_for(exc))
                return
            finally:
                del answer, old, new
            await self._ui.tell(Notice(MessageCode.PASSWORD_CHANGED))
            return
