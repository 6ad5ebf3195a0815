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
from agent.messages import Language, Term, catalogue
from agent.tokens import TokenStore
from agent.tokens.model import CredentialState
from agent.ui.desktop import DesktopUi
from agent.updater.service import UpdaterService

__all__ = ["Tray"]

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0


class Tray:
    def __init__(self, ui: DesktopUi, language: Language, data_dir: Path, port: int, *,
                 order_active: Callable[[], bool], updater: UpdaterService | None,
                 stop: asyncio.Event, clock: Callable[[], dt.datetime]) -> None:  # fmt: skip
        self._ui, self._language, self._data_dir, self._port = ui, language, data_dir, port
        self._order_active, self._updater, self._stop, self._clock = (
            order_active, updater, stop, clock)  # fmt: skip
        self._shown: tuple[str, str] | None = None
        # a notice's OK works whether or not a tray can be shown
        ui.on_menu = self._chosen
        ui.on_action = self._action

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
            await self._ui.info(self._term(Term.TRAY_MY_BANKIDS), await self._bankids())
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

    async def _bankids(self) -> str:
        now = self._clock()
        credentials = await asyncio.to_thread(TokenStore(self._data_dir).credentials)
        lines = [f"{c.owner.name} — {c.kind.value}, {c.issuer}, "
                 f"{c.not_after:%Y-%m-%d}, {c.state(now).value}" for c in credentials]  # fmt: skip
        return "\n".join(lines) or "—"
