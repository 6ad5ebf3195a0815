"""My BankIDs: the credential manager behind the tray's window.

Each BankID (file and card) is one row: holder, kind, issuer, validity and state, with
what can be done with it. Files: details, change the password, remove (offering to have
the issuer revoke it first when there is an issuer and the BankID is a real one). Cards:
details, and for each of the two PINs change or unblock with the PUK — the PIN always
named. Every outcome is told with its catalogue code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from cryptography import x509

from agent.credentials import (
    CredentialError,
    CredentialInfo,
    CredentialKind,
    CredentialLocked,
    CredentialStore,
    KeyPurpose,
    PasswordTooWeak,
    Watcher,
    WrongCurrentPassword,
    WrongPassword,
    pins_of,
)
from agent.credentials.card import PinRef
from agent.desktop.pins import PinManager
from agent.enrol import EnrolmentError, IssuerConnection, revoke_credential
from agent.notices import KIND_TERMS, PIN_TERMS, STATE_TERMS, Notice, notice_for
from agent.ui import DesktopPort, DialogBlocked
from eidcore.messages import MessageCode, Term, catalogue

__all__ = ["MyBankIds"]

log = logging.getLogger(__name__)

Rows = list[tuple[str, list[tuple[str, str]]]]


class MyBankIds:
    def __init__(
        self,
        ui: DesktopPort,
        store: CredentialStore,
        *,
        hardware: Watcher | None,
        issuer: Callable[[], IssuerConnection | None],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._ui, self._store, self._hardware, self._issuer, self._clock = (
            ui,
            store,
            hardware,
            issuer,
            clock,
        )

    def _label(self, credential: CredentialInfo) -> str:
        kind = self._term(KIND_TERMS[credential.kind.value])
        return f"{credential.owner.name} ({kind}, {credential.issuer})"

    def _term(self, term: Term, **values: object) -> str:
        return catalogue().term(term, self._ui.language).format(**values)

    async def _all(self) -> list[CredentialInfo]:
        files = await asyncio.to_thread(self._store.credentials)
        return [*files, *(self._hardware.credentials() if self._hardware is not None else [])]

    async def show(self) -> None:
        await self._ui.manager(await self.rows())

    async def rows(self) -> Rows:
        now = self._clock()
        rows = []
        for c in await self._all():
            state = self._term(STATE_TERMS[c.state(now).value])
            kind = self._term(KIND_TERMS[c.kind.value])
            until = self._term(Term.MANAGER_VALID_UNTIL, date=f"{c.not_after:%Y-%m-%d}")
            text = f"{c.owner.name} — {kind}, {c.issuer}, {until}, {state}"
            buttons = [(f"details:{c.id}", self._term(Term.MANAGER_DETAILS))]
            if c.kind is CredentialKind.FILE:
                buttons += [
                    (f"password:{c.id}", self._term(Term.MANAGER_CHANGE_PASSWORD)),
                    (f"remove:{c.id}", self._term(Term.MANAGER_REMOVE)),
                ]
            else:
                for ref in pins_of(c.kind):
                    pin = self._term(PIN_TERMS[ref])
                    buttons.append(
                        (f"pin:{c.id}:{ref.name}", self._term(Term.MANAGER_CHANGE_PIN, pin=pin))
                    )
                    buttons.append(
                        (
                            f"unblock:{c.id}:{ref.name}",
                            self._term(Term.MANAGER_UNBLOCK_PIN, pin=pin),
                        )
                    )
            # the most used first: change password/PIN has the focus when the window opens
            rows.append((text, [*buttons[1:2], buttons[0], *buttons[2:]]))
        return rows

    async def act(self, item: str) -> None:
        """A button of the window (``action:id[:pin]``)."""
        action, _, rest = item.partition(":")
        log.info("my bankids: %s", action)
        try:
            if action == "details":
                await self._details(rest)
            elif action == "password":
                await self._change_password(rest)
            elif action == "remove":
                if await self._remove(rest):
                    await self.show()  # the list without it
            elif action in ("pin", "unblock") and self._hardware is not None:
                card_id, _, ref = rest.rpartition(":")
                manager = PinManager(self._hardware, self._ui)
                if action == "pin":
                    await manager.change(card_id, PinRef[ref])
                else:
                    await manager.unblock(card_id, PinRef[ref])
        except DialogBlocked as exc:
            log.warning("my bankids: the dialog is blocked (%s)", exc.reason)
            await self._ui.tell(Notice(MessageCode.DIALOG_BLOCKED))

    async def _find(self, token_id: str) -> CredentialInfo | None:
        return next((c for c in await self._all() if c.id == token_id), None)

    async def _details(self, token_id: str) -> None:
        c = await self._find(token_id)
        if c is None:
            return
        state = self._term(STATE_TERMS[c.state(self._clock()).value])
        if c.development:
            state += f" ({self._term(Term.DEVELOPMENT)})"
        await self._ui.info(
            c.owner.name,
            self._term(
                Term.DETAILS_TEXT,
                name=c.owner.name,
                personal_number=c.owner.personal_number,
                kind=self._term(KIND_TERMS[c.kind.value]),
                issuer=c.issuer,
                not_before=f"{c.not_before:%Y-%m-%d}",
                not_after=f"{c.not_after:%Y-%m-%d}",
                state=state,
                token_id=c.id,
            ),
        )

    async def _change_password(self, token_id: str) -> None:
        credential = await self._find(token_id)
        if credential is None:
            return
        problem: Notice | None = None
        while True:
            answer = await self._ui.ask_password_change(credential, problem)
            if answer is None:
                return
            old, new = answer
            try:
                await asyncio.to_thread(
                    self._store.change_password, token_id, old, new, self._clock()
                )
            except (WrongCurrentPassword, PasswordTooWeak) as exc:
                problem = notice_for(exc)  # ask again, saying why (and the tries left)
                continue
            except CredentialError as exc:
                await self._ui.tell(notice_for(exc))
                return
            finally:
                del answer, old, new
            await self._ui.tell(Notice(MessageCode.PASSWORD_CHANGED))
            return

    async def _remove(self, token_id: str) -> bool:
        """Remove a BankID on file after the person confirmed; with their consent (and
        password) the issuer revokes it first. A revocation that fails removes nothing."""
        credential = await self._find(token_id)
        if credential is None or credential.kind is not CredentialKind.FILE:
            return False
        issuer = self._issuer()
        can_revoke = issuer is not None and not credential.development
        yes, revoke = await self._ui.confirm(
            self._term(Term.REMOVE_QUESTION, label=self._label(credential)),
            "",
            self._term(Term.REMOVE_REVOKE) if can_revoke else None,
            self._term(Term.DIALOG_REMOVE),
        )
        if not yes:
            return False
        if revoke and issuer is not None and not await self._revoke(credential, issuer):
            return False
        try:
            await asyncio.to_thread(self._store.remove, token_id)
        except (OSError, CredentialError) as exc:
            log.warning("removing %s failed: %s", token_id, exc)
            await self._ui.tell(Notice(MessageCode.REMOVE_FAILED))
            return False
        log.info("my bankids: removed %s", token_id)
        await self._ui.tell(Notice(MessageCode.BANKID_REMOVED, {"name": credential.owner.name}))
        return True

    async def _revoke(self, credential: CredentialInfo, issuer: IssuerConnection) -> bool:
        problem: Notice | None = None
        while True:
            password = await self._ui.ask_password(credential, problem)
            if password is None:
                return False
            try:
                unlocked = await asyncio.to_thread(self._store.unlock, credential.id, password)
            except WrongPassword as exc:
                problem = notice_for(exc)
                continue
            except (CredentialLocked, CredentialError) as exc:
                await self._ui.tell(notice_for(exc))
                return False
            finally:
                del password
            break
        purpose = KeyPurpose.IDENTIFICATION
        certificate = x509.load_der_x509_certificate(unlocked.certificate_chain(purpose)[0])
        try:
            await revoke_credential(
                issuer, certificate, lambda d: unlocked.sign(purpose, d), self._clock()
            )
        except EnrolmentError as exc:
            log.warning("revocation of %s failed: %s", credential.id, exc)
            await self._ui.tell(notice_for(exc))
            return False
        log.info("my bankids: the issuer revoked %s", credential.id)
        return True
