"""``DesktopUi``: the UI port over the GTK helper process (ADR 0010).

The agent's loop renders every text (catalogue, view logic) and sends it to the helper
as one JSON line; the helper draws, and answers with what the person did. A helper that
dies is started again for the next question; the question it took with it counts as
cancelled, so an order never hangs on a window that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.credentials import MIN_PASSWORD_LENGTH, CredentialInfo, KeyPurpose, pin_for
from agent.credentials.card import PinRef
from agent.notices import KIND_TERMS, PIN_TERMS, Notice
from agent.ui.port import (
    Chosen,
    DialogBlocked,
    EnrolmentAnswer,
    PinAnswer,
    PinRequest,
    Presentation,
    Request,
)
from agent.ui.settings import ProxyMode, SettingsForm
from agent.ui.view import (
    ATTENTION_SECONDS,
    CALL_TERMS,
    KEEP_ORDER,
    RTL_MARK,
    format_text,
    origin_view,
)
from eidcore.messages import Action, Language, MessageCode, Severity, Term, catalogue
from eidcore.signeddata import OrderKind

if TYPE_CHECKING:  # jeepney is loaded only when a tray is first shown
    from agent.ui.desktop.sni import StatusNotifier

__all__ = ["DesktopUi", "HelperUnavailable"]

log = logging.getLogger(__name__)

HELPER = Path(__file__).with_name("helper.py")


class HelperUnavailable(Exception):
    """The dialog helper cannot run here (no display, no GTK)."""


NOTIFIED = frozenset(
    {
        MessageCode.DIALOG_BLOCKED,
        MessageCode.UPDATE_FAILED_WILL_RETRY,
        MessageCode.SELF_UPDATE_FAILED_MANUAL,
        MessageCode.UPDATE_FAILED_REPEATEDLY,
        MessageCode.UPDATE_UNREACHABLE_REPEATEDLY,
    }
)
WATCH_SECONDS = 4.0  # a password dialog not usable by then is reported as blocked
# With the tray served on the bus (``sni``), the helper ends after this long without a
# question and is started again for the next one (~0.2 s): GTK is not kept for nothing.
IDLE_SECONDS = float(os.environ.get("EID_AGENT_DIALOG_IDLE", "60"))


class DesktopUi:
    def __init__(
        self,
        language: Language,
        *,
        watch: float = WATCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self.language = language  # the Settings window may change it at run time
        self.presentation = Presentation()
        self._dialogs_blocked = False
        self._watch = watch
        self._clock = clock
        self._asking: set[str] = set()  # orders whose question is on the screen
        # when a question was closed under the person (expired, cancelled by the site):
        # the next order's first dialog then waits for an acknowledgement (_fresh)
        self._closed_under_person: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.on_menu: Chosen | None = None  # a tray item
        self.on_action: Chosen | None = None  # a notice's button
        self.on_manager: Chosen | None = None  # a button in My BankIDs
        self._menu_tasks: set[asyncio.Task[None]] = set()
        self._idle, self._used = idle, clock()
        self._tray_host: str | None = None  # "bus" (sni) or "helper", once the tray is up
        self._sni: StatusNotifier | None = None  # where a StatusNotifier host shows it
        self._retiring: asyncio.Task[None] | None = None
        self._looking: asyncio.Task[None] | None = None
        self._retired = False
        self._tray_shown: tuple[str, str, list[tuple[str, str, bool]]] = ("ready", "", [])

    @property
    def dialogs_blocked(self) -> bool:
        return self._dialogs_blocked

    # -- the helper process ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the helper and wait until it has a display. Raises: HelperUnavailable."""
        async with self._lock:
            if self._proc is not None and self._proc.returncode is None:
                return
            try:
                # The helper runs as a script (-P: nothing from the working directory on
                # its path) that imports only gi; it finds gi where this process does
                # (-S: no site module, ~10 ms of a cold start the first dialog waits for).
                paths = [p for p in sys.path if p and Path(p).resolve() != Path.cwd()]
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-P",
                    "-S",
                    str(HELPER),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
                )
            except OSError as exc:
                raise HelperUnavailable(str(exc)) from None
            assert proc.stdout is not None
            try:
                first = await asyncio.wait_for(proc.stdout.readline(), 20)
            except TimeoutError:
                proc.kill()
                raise HelperUnavailable("the dialog helper did not start") from None
            if not first or not json.loads(first).get("ready"):
                await proc.wait()
                raise HelperUnavailable(f"the dialog helper ended ({proc.returncode})")
            self._proc = proc
            self._reader = asyncio.create_task(self._read(proc))
            log.info("desktop dialogs ready (helper pid %d)", proc.pid)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                message = json.loads(line)
                event = message.get("event")
                if event is not None:
                    handler, key = {
                        "menu": (self.on_menu, "item"),
                        "action": (self.on_action, "action"),
                        "manager": (self.on_manager, "item"),
                    }.get(event, (None, ""))
                    if handler is not None:
                        self._later(handler, str(message[key]))
                    else:
                        log.info("dialog helper: %s", event)
                    continue
                future = self._pending.pop(int(message["id"]), None)
            except (ValueError, KeyError, TypeError):
                log.warning("dialog helper said something unreadable")
                continue
            if future is not None and not future.done():
                future.set_result(message)
        code = await proc.wait()
        if self._retired:
            log.info("dialog helper ended after %.0f s without a question", self._idle)
        else:
            log.warning("dialog helper ended (%s)", code)
        for future in self._pending.values():
            if not future.done():
                future.set_result({"cancelled": True})
        self._pending.clear()

    def _later(self, handler: Chosen | None, value: str) -> None:
        if handler is None:
            return
        task = asyncio.create_task(handler(value))
        self._menu_tasks.add(task)
        task.add_done_callback(self._menu_tasks.discard)

    async def tray(self, state: str, tooltip: str, items: list[tuple[str, str, bool]]) -> bool:
        """Show or update the tray icon (state: ready, busy, update, problem) and its menu
        of (id, label, enabled): served on the session bus where a StatusNotifier host
        runs, else by the helper (XEmbed). False: no tray here."""
        self._tray_shown = (state, tooltip, items)
        if self._tray_host is None:
            self._tray_host = "helper"
            if await self._tray_on_bus():
                return True
            self._looking = asyncio.create_task(self._look_for_host())
        if self._sni is not None:
            await self._sni.show(state, tooltip, items)
            return True
        return await self._helper_tray(state, tooltip, items)

    async def _tray_on_bus(self) -> bool:
        """Serve the tray on the session bus, if a StatusNotifier host shows it."""
        from agent.ui.desktop.sni import StatusNotifier

        sni = StatusNotifier(lambda item: self._later(self.on_menu, item))
        if not await sni.start():
            return False
        self._sni, self._tray_host = sni, "bus"
        await sni.show(*self._tray_shown)
        self._retiring = asyncio.create_task(self._retire_when_idle())
        return True

    async def _look_for_host(self) -> None:
        """A panel that starts after the agent (a login session's order is not fixed):
        the icon moves to the bus when a StatusNotifier host appears, and the helper's
        goes. Asked at 2 s, then less often, up to a minute apart."""
        wait = 2.0
        while True:
            await asyncio.sleep(wait)
            wait = min(60.0, wait * 2)
            if await self._tray_on_bus():
                if self._proc is not None and self._proc.returncode is None:
                    await self._call({"op": "untray"})
                log.info("tray: moved to the StatusNotifier host that appeared")
                return

    async def _helper_tray(
        self, state: str, tooltip: str, items: list[tuple[str, str, bool]]
    ) -> bool:
        answer = await self._call(
            {
                "op": "tray",
                "state": state,
                "tooltip": tooltip,
                "items": [{"id": i, "label": label, "enabled": on} for i, label, on in items],
            }
        )
        if not answer.get("done"):
            log.warning("no tray icon: %s", answer.get("error", "the helper is gone"))
            return False
        return True

    async def _retire_when_idle(self) -> None:
        """End the helper when it has had no question for ``_idle`` seconds (the tray is
        not there: it is served on the bus)."""
        while True:
            await asyncio.sleep(max(0.2, self._idle / 4))
            running = self._proc is not None and self._proc.returncode is None
            if not running or self._pending or self._clock() - self._used < self._idle:
                continue
            self._retired = True
            if not (await self._call({"op": "retire"})).get("retired"):
                self._retired = False
                self._used = self._clock()  # a window is up: look again later
                continue
            assert self._proc is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 5)

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        self._used = self._clock()
        if request.get("op") != "retire":
            self._retired = False
        await self.start()
        assert self._proc is not None and self._proc.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self._proc.stdin.write((json.dumps({"id": ident, **request}) + "\n").encode())
        try:
            await self._proc.stdin.drain()
        except (ConnectionError, BrokenPipeError):
            self._pending.pop(ident, None)
            return {"cancelled": True}
        try:
            return await future
        finally:
            self._pending.pop(ident, None)
            self._used = self._clock()

    async def aclose(self) -> None:
        for task in (self._retiring, self._looking):
            if task is not None:
                task.cancel()
        if self._sni is not None:
            await self._sni.aclose()
        if self._proc is not None and self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 5)
            if self._proc.returncode is None:
                self._proc.kill()
        if self._reader is not None:
            self._reader.cancel()

    # -- texts -----------------------------------------------------------------------------------

    def _label(self, credential: CredentialInfo) -> str:
        kind = self._term(KIND_TERMS[credential.kind.value])
        return f"{credential.owner.name} — {kind}, {credential.issuer}"

    def _term(self, term: Term, **values: object) -> str:
        return catalogue().term(term, self.language).format(**values)

    def _site(self, origin: str) -> dict[str, str]:
        view = origin_view(origin)
        warning = "⚠ " + self._term(Term.DIALOG_LOOKALIKE) if view.lookalike else ""
        return {
            "prefix": view.prefix,
            "registrable": view.registrable,
            "port": view.port,
            "warning": warning,
        }

    def _lead(self, request: Request) -> str:
        auth = request.kind is OrderKind.AUTH
        if request.party_name is not None:  # the relay's domain stays the emphasised name
            term = Term.DIALOG_WANTS_AUTH_FOR if auth else Term.DIALOG_WANTS_SIGN_FOR
            return self._term(term, party=request.party_name)
        return self._term(Term.DIALOG_WANTS_AUTH if auth else Term.DIALOG_WANTS_SIGN)

    def _call_line(self, request: Request) -> str | None:
        """A phone order's line: who called whom (shown after what is signed)."""
        if request.call_initiator is None or request.party_name is None:
            return None
        party = f"«{request.party_name}»"  # in quotes, as the lead names it
        return self._term(CALL_TERMS[request.call_initiator], party=party)

    def _text_fields(self, request: Request) -> dict[str, Any]:
        if request.text is None:
            return {"blocks": []}
        return text_fields(request.text, request.text_format, self._term(Term.RTL_NOTE))

    def _text(self, notice: Notice) -> tuple[str, str]:
        text = catalogue().render(notice.code, self.language, **notice.params)
        return text.title, text.body

    def _present(self) -> dict[str, Any]:
        return {
            "raise": self.presentation.raise_dialogs,
            "plain": self.presentation.plain_window,
            "watch": self._watch,
        }

    def _usable(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer of a dialog that waits for the keyboard. Raises: DialogBlocked."""
        if "blocked" in answer:
            self._dialogs_blocked = True
            raise DialogBlocked(str(answer["blocked"]))
        self._dialogs_blocked = False
        return answer

    # -- the port --------------------------------------------------------------------------------

    async def _fresh(self, request: Request) -> bool:
        """Consent must be to the question shown. Keys still being typed for a question
        that just closed would land in the next dialog, perhaps another site's: so after
        a question closed under the person less than ATTENTION_SECONDS ago, the next
        order first shows a window with no field that says a new request follows, and
        whose default button only shows it. False: the person cancelled there."""
        closed, self._closed_under_person = self._closed_under_person, None
        if closed is None or self._clock() - closed >= ATTENTION_SECONDS:
            return True
        answer = self._usable(
            await self._call(
                {
                    "op": "attention",
                    "ref": request.order_ref,
                    "title": self._term(Term.DIALOG_TITLE),
                    "site": self._site(request.origin),
                    "heading": self._term(Term.DIALOG_NEXT_REQUEST),
                    "lead": self._lead(request),
                    "present": self._present(),
                    "ok": self._term(Term.DIALOG_SHOW_REQUEST),
                    "cancel": self._term(Term.DIALOG_CANCEL),
                }
            )
        )
        return bool(answer.get("ok"))

    async def _ask(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        """A question of the order, on the screen until answered or closed by the agent."""
        self._asking.add(request.order_ref)
        try:
            return self._usable(await self._call(payload))
        except asyncio.CancelledError:  # the order ended (expired, the site cancelled)
            self._closed_under_person = self._clock()
            raise
        finally:
            self._asking.discard(request.order_ref)

    async def choose(self, request: Request) -> CredentialInfo | None:
        if not await self._fresh(request):
            return None
        if len(request.choices) == 1:
            return request.choices[0]
        answer = await self._ask(
            request,
            {
                "op": "choose",
                "ref": request.order_ref,
                "title": self._term(Term.DIALOG_TITLE),
                "site": self._site(request.origin),
                "lead": self._lead(request),
                "call": self._call_line(request),
                "options": [self._label(c) for c in request.choices],
                "present": self._present(),
                "ok": self._term(Term.DIALOG_CONTINUE),
                "cancel": self._term(Term.DIALOG_CANCEL),
            },
        )
        if "choice" not in answer:
            return None
        return request.choices[int(answer["choice"])]

    async def ask_secret(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> str | None:
        purpose = (
            KeyPurpose.IDENTIFICATION if request.kind is OrderKind.AUTH else KeyPurpose.SIGNATURE
        )
        pin = pin_for(credential.kind, purpose)
        if pin is not None:
            label = self._term(Term.DIALOG_PIN_LABEL, pin=self._term(PIN_TERMS[pin]))
            if credential.tries_left is not None and credential.tries_left < 3:
                label += self._term(Term.CONSOLE_TRIES_LEFT, tries=credential.tries_left)
        else:
            label = self._term(Term.DIALOG_PASSWORD_LABEL)
        problem_text = list(self._text(problem)) if problem else None
        answer = await self._ask(
            request,
            {
                "op": "secret",
                "ref": request.order_ref,
                "title": self._term(Term.DIALOG_TITLE),
                "site": self._site(request.origin),
                "lead": self._lead(request),
                "call": self._call_line(request),
                **self._text_fields(request),
                "credential": self._label(credential),
                "label": label,
                "problem": problem_text,
                "present": self._present(),
                "ok": self._term(Term.DIALOG_OK),
                "cancel": self._term(Term.DIALOG_CANCEL),
            },
        )
        secret = answer.get("secret")
        return str(secret) if secret else None

    async def confirm_pin_pad(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> bool:
        """The question of ``ask_secret`` with no field: the PIN goes on the reader."""
        purpose = (
            KeyPurpose.IDENTIFICATION if request.kind is OrderKind.AUTH else KeyPurpose.SIGNATURE
        )
        pin = pin_for(credential.kind, purpose) or PinRef.USER
        label = self._term(Term.DIALOG_PIN_PAD, pin=self._term(PIN_TERMS[pin]))
        if credential.tries_left is not None and credential.tries_left < 3:
            label += self._term(Term.CONSOLE_TRIES_LEFT, tries=credential.tries_left)
        answer = await self._ask(
            request,
            {
                "op": "secret",
                "ref": request.order_ref,
                "title": self._term(Term.DIALOG_TITLE),
                "site": self._site(request.origin),
                "lead": self._lead(request),
                "call": self._call_line(request),
                **self._text_fields(request),
                "credential": self._label(credential),
                "label": label,
                "pin_pad": True,
                "problem": list(self._text(problem)) if problem else None,
                "present": self._present(),
                "ok": self._term(Term.DIALOG_CONTINUE),
                "cancel": self._term(Term.DIALOG_CANCEL),
            },
        )
        return bool(answer.get("go"))

    async def _secrets(
        self,
        ref: str,
        heading: str,
        fields: Sequence[str | list[str]],
        problem: Notice | None,
        note: str = "",
    ) -> list[str] | None:
        """Fields in a row, hidden unless given as ``[label, "visible"]``."""
        answer = await self._call(
            {
                "op": "secrets",
                "ref": ref,
                "title": self._term(Term.DIALOG_TITLE),
                "heading": heading,
                "problem": list(self._text(problem)) if problem else None,
                "fields": list(fields),
                "note": note,
                "ok": self._term(Term.DIALOG_OK),
                "present": self._present(),
                "cancel": self._term(Term.DIALOG_CANCEL),
            }
        )
        values = self._usable(answer).get("values")
        return [str(v) for v in values] if isinstance(values, list) else None

    def _field(self, term: Term, **values: object) -> str:
        return "_" + _capital(self._term(term, **values).rstrip(": "))

    async def ask_pins(self, request: PinRequest, problem: Notice | None) -> PinAnswer | None:
        pin = self._term(PIN_TERMS[request.pin])
        if request.unblock:
            heading = self._term(Term.CONSOLE_UNBLOCK_PIN, pin=pin, name=request.card.owner.name)
            fields = [self._field(Term.PROMPT_PUK, pin=pin)]
        else:
            heading = self._term(Term.CONSOLE_CHANGE_PIN, pin=pin, name=request.card.owner.name)
            fields = [self._field(Term.PROMPT_CURRENT_PIN, pin=pin)]
        if not (request.unblock and request.keep):
            fields += [
                self._field(Term.PROMPT_NEW_PIN, pin=pin),
                self._field(Term.PROMPT_REPEAT_PIN, pin=pin),
            ]
        while True:
            values = await self._secrets(
                f"pins-{request.card.id}", _capital(heading), fields, problem
            )
            if values is None:
                return None
            if len(values) == 1:
                return PinAnswer(values[0], None)
            if values[1] == values[2]:
                return PinAnswer(values[0], values[1])
            problem = Notice(MessageCode.PINS_DIFFER)

    async def ask_password(
        self, credential: CredentialInfo, problem: Notice | None, why: str | None = None
    ) -> str | None:
        """The password of a BankID on file, or the identification PIN of one on a card
        or token, outside an order (to revoke it, to look for orders waiting; ``why``:
        what it is asked for, said above the BankID's name)."""
        label = self._label(credential)
        pin = pin_for(credential.kind, KeyPurpose.IDENTIFICATION)
        field = (
            self._field(Term.PROMPT_PASSWORD)
            if pin is None
            else "_" + _capital(self._term(PIN_TERMS[pin]))
        )
        values = await self._secrets(
            f"unlock-{credential.id}",
            label if why is None else f"{why} — {label}",
            [field],
            problem,
        )
        return values[0] if values else None

    async def ask_password_change(
        self, credential: CredentialInfo, problem: Notice | None
    ) -> tuple[str, str] | None:
        """The current password and the new one (typed twice and equal)."""
        fields = [
            self._field(Term.PROMPT_CURRENT_PASSWORD),
            self._field(Term.PROMPT_NEW_PASSWORD),
            self._field(Term.PROMPT_REPEAT_PASSWORD),
        ]
        heading = (
            self._term(Term.MANAGER_CHANGE_PASSWORD).rstrip(" …") + " — " + self._label(credential)
        )
        while True:
            values = await self._secrets(f"password-{credential.id}", heading, fields, problem)
            if values is None:
                return None
            if values[1] == values[2]:
                return values[0], values[1]
            problem = Notice(MessageCode.PASSWORDS_DIFFER)

    async def manager(self, rows: list[tuple[str, list[tuple[str, str]]]]) -> None:
        """My BankIDs: (text, [(button id, label)]) per BankID; buttons come back through
        ``on_manager``."""
        await self._call(
            {
                "op": "manager",
                "title": self._term(Term.TRAY_MY_BANKIDS),
                "rows": [
                    {"text": text, "buttons": [{"id": i, "label": label} for i, label in buttons]}
                    for text, buttons in rows
                ],
                "close": self._term(Term.MANAGER_CLOSE),
            }
        )

    async def ask_enrolment(self, problem: Notice | None) -> EnrolmentAnswer | None:
        fields: list[str | list[str]] = [
            [self._field(Term.PROMPT_PERSONAL_NUMBER), "visible"],
            self._field(Term.PROMPT_ACTIVATION_CODE),
            self._field(Term.PROMPT_NEW_PASSWORD),
            self._field(Term.PROMPT_REPEAT_PASSWORD),
        ]
        note = self._term(Term.ORDER_PASSWORD_RULE, min_length=MIN_PASSWORD_LENGTH)
        while True:
            values = await self._secrets(
                "enrolment", self._term(Term.TRAY_ENROL).rstrip(" …"), fields, problem, note
            )
            if values is None:
                return None
            if values[2] == values[3]:
                return EnrolmentAnswer(values[0].strip(), values[1].strip(), values[2])
            problem = Notice(MessageCode.PASSWORDS_DIFFER)

    async def ask_token_enrolment(
        self, label: str, problem: Notice | None, *, replaces: bool
    ) -> EnrolmentAnswer | None:
        fields: list[str | list[str]] = [
            [self._field(Term.PROMPT_PERSONAL_NUMBER), "visible"],
            self._field(Term.PROMPT_ACTIVATION_CODE),
            self._field(Term.PROMPT_TOKEN_PIN, label=label),
        ]
        heading = self._term(Term.TRAY_ENROL_TOKEN, label=label).rstrip(" …")
        note = self._term(Term.ORDER_TOKEN_NOTE)
        if replaces:
            note += " " + self._term(Term.ORDER_TOKEN_REPLACES)
        values = await self._secrets("enrolment-token", heading, fields, problem, note)
        if values is None:
            return None
        return EnrolmentAnswer(values[0].strip(), values[1].strip(), values[2])

    async def settings(
        self,
        form: SettingsForm,
        update_info: str,
        problem: Notice | None = None,
        focus: str | None = None,
    ) -> SettingsForm | None:
        """The Settings window filled from ``form``; what the person saved, or None."""
        labels = {
            key: self._term(Term(f"settings_{key}"))
            for key in (
                "language",
                "proxy_none",
                "proxy_system",
                "proxy_manual",
                "proxy_url",
                "proxy_user",
                "proxy_password",
                "proxy_password_note",
                "allow",
                "block",
            )
        }
        labels |= {
            "advanced_note": self._term(Term.SETTINGS_ADVANCED_NOTE),
            "raise_dialogs": self._term(Term.SETTINGS_RAISE),
            "plain_window": self._term(Term.SETTINGS_PLAIN),
        }
        values = asdict(form)
        del values["proxy_password"]  # never sent to the window: empty keeps it
        answer = await self._call(
            {
                "op": "settings",
                "ref": "settings",
                "title": self._term(Term.TRAY_SETTINGS).rstrip(" …"),
                "tabs": {
                    tab: self._term(Term(f"settings_{tab}"))
                    for tab in ("general", "network", "sites", "updates", "advanced")
                },
                "labels": labels,
                "values": values,
                "update_info": update_info,
                "languages": [
                    ["", self._term(Term.SETTINGS_LANGUAGE_AUTO)],
                    ["sv", "Svenska"],
                    ["en", "English"],
                ],
                "problem": list(self._text(problem)) if problem else None,
                "focus": focus,
                "ok": self._term(Term.DIALOG_SAVE),
                "cancel": self._term(Term.DIALOG_CANCEL),
            }
        )
        got = answer.get("values")
        if not isinstance(got, dict):
            return None
        try:
            return SettingsForm(
                language=str(got["language"]),
                proxy_mode=ProxyMode(got["proxy_mode"]),
                proxy_url=str(got["proxy_url"]),
                proxy_user=str(got["proxy_user"]),
                proxy_password=str(got["proxy_password"]),
                allow=str(got["allow"]),
                block=str(got["block"]),
                raise_dialogs=bool(got["raise_dialogs"]),
                plain_window=bool(got["plain_window"]),
            )
        except (KeyError, ValueError):
            log.warning("the settings window answered something unreadable")
            return None

    async def confirm(
        self, heading: str, body: str, check: str | None, ok: str
    ) -> tuple[bool, bool]:
        """(yes, the check box ticked); the safe answer (Cancel) is the default."""
        answer = await self._call(
            {
                "op": "confirm",
                "ref": "confirm",
                "title": self._term(Term.DIALOG_TITLE),
                "heading": heading,
                "body": body,
                "check": check,
                "ok": ok,
                "cancel": self._term(Term.DIALOG_CANCEL),
            }
        )
        return bool(answer.get("ok")), bool(answer.get("checked"))

    async def report(self, title: str, text: str) -> None:
        """A report with a button that copies it (diagnostics for support)."""
        await self._call(
            {
                "op": "report",
                "ref": "report",
                "title": title,
                "text": text,
                "copy": self._term(Term.DIAGNOSTICS_COPY),
                "copied": self._term(Term.DIAGNOSTICS_COPIED),
                "close": self._term(Term.MANAGER_CLOSE),
            }
        )

    async def info(self, title: str, body: str) -> None:
        """A plain window with text (about, diagnostics); no message code."""
        await self._call(
            {
                "op": "notice",
                "title": title,
                "body": body,
                "code": None,
                "ok": self._term(Term.DIALOG_OK),
                "link": None,
            }
        )

    async def notify(self, notice: Notice) -> bool:
        """A desktop notification with the notice's code; False where no notification
        service runs (said in the log)."""
        title, body = self._text(notice)
        severity = catalogue().entry(notice.code).severity
        answer = await self._call(
            {
                "op": "notify",
                "title": f"{title} ({int(notice.code)})",
                "body": body,
                "urgent": severity is Severity.ERROR,
            }
        )
        if not answer.get("done"):
            log.info("no desktop notification: %s", answer.get("error", "the helper is gone"))
            return False
        return True

    async def tell(self, notice: Notice) -> None:
        """A notice; its OK does what the catalogue says (start the update, or open the
        signed install page in the browser), with a second button to close it. Problems
        that arise in the background are also desktop notifications: the window may be
        hidden, or blocked (10015)."""
        if notice.code in NOTIFIED:
            await self.notify(notice)
        title, body = self._text(notice)
        action = None
        kind = catalogue().entry(notice.code).action
        if kind is Action.START_UPDATE:
            action = {"id": "startUpdate", "label": self._term(Term.DIALOG_OK)}
        elif kind in (Action.MANUAL_UPDATE, Action.OPEN_LINK) and notice.link:
            action = {"id": "openLink", "label": self._term(Term.DIALOG_OK)}
        await self._call(
            {
                "op": "notice",
                "title": title,
                "body": body,
                "code": int(notice.code),
                "ok": self._term(Term.DIALOG_OK),
                "link": notice.link,
                "action": action,
                "close": self._term(
                    Term.DIALOG_CLOSE if kind is Action.OPEN_LINK else Term.DIALOG_LATER
                ),
            }
        )

    async def close(self, order_ref: str) -> None:
        if order_ref in self._asking:  # closed under the person, not answered by them
            self._closed_under_person = self._clock()
        if self._proc is not None and self._proc.returncode is None:
            await self._call({"op": "close", "ref": order_ref})


def text_fields(text: str, text_format: str, rtl_note: str) -> dict[str, Any]:
    """The text to sign as the helper draws it: the blocks the console prints too
    (agent/ui/view.py), the controls that keep right-to-left lines in character order,
    and the note that says so when a line needs them."""
    blocks = format_text(text, text_format)
    return {
        "blocks": [asdict(b) for b in blocks],
        "keep_order": [*KEEP_ORDER, RTL_MARK],
        "rtl_note": rtl_note if any(b.rtl for b in blocks) else None,
    }


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
