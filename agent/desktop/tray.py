"""The tray icon's driver: its state at a glance and what its menu items do.

State: ``problem`` after a password dialog was blocked by another program (until one
works again), ``update`` while an update is required, ``busy`` while an order is open,
``ready`` otherwise. The
status line says the version, how many BankIDs are usable, and the update state. The
icon is refreshed on a slow timer (every 2 s) and only sent to the helper when it
changed, so an idle agent wakes rarely and never redraws for nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.config import ConfigError, Settings, load_config, save_settings
from agent.credentials import CredentialState, CredentialStore, Watcher
from agent.credentials.pkcs11 import ModuleEntry, TokenContents, TokenWatcher
from agent.desktop.mybankids import MyBankIds
from agent.enrol import IssuerConnection, enrol_token_with_ui, enrol_with_ui
from agent.notices import Notice
from agent.ui import DesktopPort, DialogBlocked, SettingsInvalid, form_for, settings_from
from agent.updater import StateName
from eidcore.messages import Language, MessageCode, Term, catalogue

if TYPE_CHECKING:
    from agent.updater import UpdaterService

__all__ = ["Tray"]

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0


@dataclass(frozen=True)
class SettingsHooks:
    """Where the Settings window saves (the config file) and who applies what it saved
    to the running agent (language, proxy, sites, dialog methods)."""

    path: Path
    apply: Callable[[Settings], None]


class Tray:
    def __init__(
        self,
        ui: DesktopPort,
        data_dir: Path,
        port: int,
        *,
        order_active: Callable[[], bool],
        updater: UpdaterService | None,
        stop: asyncio.Event,
        clock: Callable[[], dt.datetime],
        hardware: Watcher | None = None,
        issuer: Callable[[], IssuerConnection | None] = lambda: None,
        settings: SettingsHooks | None = None,
        modules: Sequence[ModuleEntry] = (),
        tokens: TokenWatcher | None = None,
        waiting: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._ui, self._data_dir, self._port = ui, data_dir, port
        self._modules = tuple(modules)  # the PKCS#11 modules, for the diagnostics
        self._tokens = tokens  # security keys a BankID can be ordered onto
        self._order_active, self._updater, self._stop, self._clock = (
            order_active,
            updater,
            stop,
            clock,
        )
        self._shown: tuple[str, str, Language, tuple[str, ...]] | None = None
        self._issuer = issuer  # ordering is offered only when there is an issuer to ask
        self._settings = settings
        self._waiting = waiting  # "Orders waiting for me", where the settings name relays
        self._mine = MyBankIds(
            ui, CredentialStore(data_dir), hardware=hardware, issuer=issuer, clock=clock
        )
        # a notice's OK works whether or not a tray can be shown
        ui.on_menu = self._chosen
        ui.on_action = self._action
        ui.on_manager = self._mine.act

    def _term(self, term: Term, **values: object) -> str:
        return catalogue().term(term, self._ui.language).format(**values)

    def _update_text(self) -> str:
        """The updater's state for the person: each StateName has a term in the
        catalogue (update_state_<name>), so no wire name reaches them."""
        name = self._updater.state_name() if self._updater is not None else StateName.UNMANAGED
        return self._term(Term(f"update_state_{name}"))

    def _state(self) -> tuple[str, str]:
        now = self._clock()
        usable = sum(
            1
            for c in CredentialStore(self._data_dir).credentials()
            if c.state(now) is CredentialState.USABLE
        )
        update = self._update_text()
        if self._ui.dialogs_blocked:
            state = "problem"
        elif self._updater is not None and self._updater.refuse_orders():
            state = "update"
        elif self._order_active():
            state = "busy"
        else:
            state = "ready"
        return state, self._term(
            Term.TRAY_STATUS, version=__version__, usable=usable, update=update
        )

    async def refresh(self) -> bool:
        """Send the icon if it changed (state, status line or language). False: there is
        no tray here."""
        state, status = await asyncio.to_thread(self._state)
        keys = self._enrol_targets()
        shown = (state, status, self._ui.language, tuple(t.label for t in keys))
        if shown == self._shown:
            return True
        items = [
            ("status", status, False),
            ("bankids", self._term(Term.TRAY_MY_BANKIDS), True),
            *([("waiting", self._term(Term.TRAY_WAITING), True)] if self._waiting else []),
            *([("enrol", self._term(Term.TRAY_ENROL), True)] if self._issuer() else []),
            *[
                (f"enrol-token:{n}", self._term(Term.TRAY_ENROL_TOKEN, label=t.label), True)
                for n, t in enumerate(keys)
            ],
            ("updates", self._term(Term.TRAY_CHECK_UPDATES), True),
            *([("settings", self._term(Term.TRAY_SETTINGS), True)] if self._settings else []),
            ("diagnostics", self._term(Term.TRAY_DIAGNOSTICS), True),
            ("about", self._term(Term.TRAY_ABOUT), True),
            ("quit", self._term(Term.TRAY_QUIT), True),
        ]
        if not await self._ui.tray(state, status, items):
            return False
        self._shown = shown
        return True

    def _enrol_targets(self) -> list[TokenContents]:
        """The security keys in their readers now, when there is an issuer to order from."""
        if self._tokens is None or self._issuer() is None:
            return []
        return self._tokens.present_tokens()

    async def _enrol_on_token(self, item: str) -> None:
        issuer, keys = self._issuer(), self._enrol_targets()
        index = int(item.partition(":")[2])
        if issuer is None or self._tokens is None or index >= len(keys):
            return  # the key left since the menu was drawn
        token = keys[index]
        try:
            info = await enrol_token_with_ui(self._ui, issuer, self._tokens, token, self._data_dir)
        except DialogBlocked as exc:
            log.warning("ordering: the dialog is blocked (%s)", exc.reason)
            await self._ui.tell(Notice(MessageCode.DIALOG_BLOCKED))
            return
        if info is not None:
            await self._ui.info(
                self._term(Term.TRAY_ENROL_TOKEN, label=token.label).rstrip(" …"),
                self._term(
                    Term.ENROL_DONE_TOKEN, name=info.owner.name, token_id=info.id, label=token.label
                ),
            )

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
            await self._ui.info(
                self._term(Term.TRAY_ABOUT), self._term(Term.ABOUT_TEXT, version=__version__)
            )
        elif item == "bankids":
            await self._mine.show()
        elif item == "waiting" and self._waiting is not None:
            await self._waiting()
        elif item == "enrol" and (issuer := self._issuer()) is not None:
            try:
                info = await enrol_with_ui(
                    self._ui, issuer, CredentialStore(self._data_dir), self._clock
                )
            except DialogBlocked as exc:
                log.warning("ordering: the dialog is blocked (%s)", exc.reason)
                await self._ui.tell(Notice(MessageCode.DIALOG_BLOCKED))
                info = None
            if info is not None:
                await self._ui.info(
                    self._term(Term.TRAY_ENROL).rstrip(" …"),
                    self._term(Term.ENROL_DONE, name=info.owner.name, token_id=info.id),
                )
        elif item.startswith("enrol-token:"):
            await self._enrol_on_token(item)
        elif item == "updates":
            if self._updater is None:
                await self._ui.info(
                    self._term(Term.TRAY_CHECK_UPDATES), self._term(Term.NO_UPDATES_HERE)
                )
            else:
                await self._updater.start()  # its notices come through the UI port
        elif item == "settings" and self._settings is not None:
            await self._edit_settings(self._settings)
        elif item == "diagnostics":
            await self._diagnostics()
        await self.refresh()

    async def _diagnostics(self) -> None:
        """What `eid-agent doctor` says, with a button that copies it for support."""
        from agent.desktop.doctor import diagnose, render

        issuer = self._issuer()
        checks = await diagnose(
            self._data_dir,
            self._port,
            (issuer.url, issuer.ca_file, issuer.proxy) if issuer is not None else None,
            self._updater.repository if self._updater is not None else None,
            self._clock(),
            self._modules,
        )
        await self._ui.report(
            self._term(Term.TRAY_DIAGNOSTICS).rstrip(" …"),
            render(checks, self._ui.language, as_json=False),
        )

    async def _edit_settings(self, hooks: SettingsHooks) -> None:
        """The Settings window: saved to the config file (atomically, owner-only) and
        applied at once; a wrong field is shown again with what is wrong with it."""
        try:
            stored = (await asyncio.to_thread(load_config, hooks.path)).settings
        except ConfigError as exc:
            log.warning("settings: %s", exc)
            await self._ui.tell(Notice(MessageCode.SETTINGS_NOT_SAVED))
            return
        if self._updater is not None:
            info = self._term(
                Term.SETTINGS_UPDATE_INFO,
                version=__version__,
                repository=self._updater.repository,
                state=self._update_text(),
            )
        else:
            info = self._term(Term.SETTINGS_UPDATE_UNMANAGED)
        form = form_for(stored)
        problem: Notice | None = None
        focus: str | None = None
        typed = ""  # a new proxy password outlives a re-ask, without being shown again
        while True:
            answer = await self._ui.settings(form, info, problem, focus)
            if answer is None:
                return
            form = replace(answer, proxy_password="")
            typed = answer.proxy_password or typed
            try:
                settings = settings_from(replace(answer, proxy_password=typed), stored)
            except SettingsInvalid as exc:
                problem = Notice(exc.code, {"entry": exc.entry} if exc.entry else {})
                focus = exc.field
                continue
            finally:
                del answer
            break
        del typed
        try:
            await asyncio.to_thread(save_settings, hooks.path, settings)
        except (OSError, ConfigError) as exc:
            log.warning("settings not saved: %s", exc)
            await self._ui.tell(Notice(MessageCode.SETTINGS_NOT_SAVED))
            return
        hooks.apply(settings)
        log.info("settings saved and applied")
        await self._ui.tell(Notice(MessageCode.SETTINGS_SAVED))

    async def _action(self, action: str) -> None:
        """A notice's OK: the update notices' "start the update"; opening the install
        page happened in the helper already."""
        log.info("notice action: %s", action)
        if action == "startUpdate" and self._updater is not None:
            await self._updater.start()
