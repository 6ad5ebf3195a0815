"""Orders waiting for the person (phone orders): each relay asked in turn for a one-time
challenge, the person's BankIDs shown to it by ``prove`` (the caller's: it asks for the
passwords and signs ``eidcore.phoneproof.proof_bytes``, ``proof_for``), and the orders it
then shows. Only the relays the caller names are asked: the person's settings, never a
page.

``WaitingOrders`` is the tray's "Orders waiting for me": each BankID on file's password
asked once, in a window that says why; each order found offered in turn (who called whom,
what for); the one taken carried out as a link's, in the usual dialog. The console's is
``eid-agent waiting`` (``agent.cli.waiting``)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

from agent.autostart.client import WaitingOrder
from agent.autostart.door import DoorSettings, RelayDoor, client_for
from agent.autostart.errors import AutostartError
from agent.autostart.link import Link, relay_link
from agent.credentials import (
    CredentialError,
    CredentialInfo,
    CredentialKind,
    CredentialLocked,
    CredentialState,
    CredentialStore,
    KeyPurpose,
    UnlockedCredential,
    WrongPassword,
)
from agent.notices import Notice, notice_for
from agent.ui import CALL_TERMS, DesktopPort
from eidcore import phoneproof
from eidcore.messages import MessageCode, Term, catalogue

log = logging.getLogger(__name__)

__all__ = ["Prove", "WaitingOrders", "look_for_waiting", "proof_for"]

# (relay origin, challenge) → the proofs for it; None: the person stopped (nothing asked)
Prove = Callable[[str, str], Awaitable[Sequence[Mapping[str, object]] | None]]


def proof_for(credential: UnlockedCredential, relay: str, challenge: str) -> dict[str, object]:
    """What shows ``relay`` that this agent holds ``credential``: its identification
    chain and that key's signature over ``eidcore.phoneproof.proof_bytes``."""
    purpose = KeyPurpose.IDENTIFICATION
    signed = phoneproof.proof_bytes(relay, challenge)
    return {
        "certificateChain": [
            base64.b64encode(c).decode("ascii") for c in credential.certificate_chain(purpose)
        ],
        "signature": base64.b64encode(credential.sign(purpose, signed)).decode("ascii"),
    }


async def look_for_waiting(
    relays: Sequence[Link], settings: DoorSettings, prove: Prove
) -> list[WaitingOrder] | None:
    """The phone orders waiting at ``relays``, in their order; None when ``prove`` says
    the person stopped. Raises: AutostartError."""
    found: list[WaitingOrder] = []
    for link in relays:
        async with client_for(link, settings) as client:
            challenge = await client.phone_challenge()
            proofs = await prove(link.relay, challenge)
            if proofs is None:
                return None
            if proofs:
                found += await client.phone_orders(challenge, proofs)
    return found


class WaitingOrders:
    def __init__(
        self,
        ui: DesktopPort,
        store: CredentialStore,
        door: RelayDoor,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._ui, self._store, self._door, self._clock = ui, store, door, clock

    def _term(self, term: Term, **values: object) -> str:
        return catalogue().term(term, self._ui.language).format(**values)

    async def look(self) -> None:
        """Ask, show, hand the chosen order to the relay door. Never raises: what stopped
        it is told to the person."""
        title = self._term(Term.TRAY_WAITING).rstrip(" …")
        asked = self._door.settings.ask
        if not asked:
            await self._ui.info(title, self._term(Term.WAITING_NO_RELAY_DESKTOP))
            return
        try:
            relays = [relay_link(url) for url in asked]
            found = await self._found(relays, title)
        except AutostartError as exc:
            log.info("orders waiting: %s: %s", type(exc).__name__, exc)
            await self._ui.tell(notice_for(exc))
            return
        if found is None:
            return  # the person cancelled a password
        if not found:
            shown = ", ".join(link.relay for link in relays)
            await self._ui.info(title, self._term(Term.WAITING_NONE, relays=shown))
            return
        for order in found:
            take, _ = await self._ui.confirm(
                title, self._describe(order), None, self._term(Term.WAITING_TAKE)
            )
            if take:
                query = urllib.parse.urlencode(
                    {"autostarttoken": order.token, "server": order.relay}
                )
                if not await self._door.take(f"eid-agent:///?{query}"):
                    await self._ui.tell(Notice(MessageCode.ALREADY_IN_PROGRESS))
                return

    def _describe(self, order: WaitingOrder) -> str:
        what = self._term(Term.WAITING_AUTH if order.kind.value == "auth" else Term.WAITING_SIGN)
        call = self._term(CALL_TERMS[order.call_initiator], party=f"«{order.party_name}»")
        return f"«{order.party_name}» ({order.relay}): {what}.\n\n{call}"

    async def _found(self, relays: list[Link], title: str) -> list[WaitingOrder] | None:
        now = self._clock()
        files = [
            c
            for c in await asyncio.to_thread(self._store.credentials)
            if c.kind is CredentialKind.FILE and c.state(now) is CredentialState.USABLE
        ][: phoneproof.MAX_PROOFS]
        opened: list[UnlockedCredential] | None = None

        async def prove(relay: str, challenge: str) -> list[dict[str, object]] | None:
            nonlocal opened
            if opened is None:
                opened = []
                for credential in files:
                    unlocked = await self._unlock(credential, title)
                    if unlocked is None:
                        return None
                    if unlocked is not False:
                        opened.append(unlocked)
            return [proof_for(u, relay, challenge) for u in opened]

        try:
            return await look_for_waiting(relays, self._door.settings, prove)
        finally:
            opened = None  # the keys go as soon as the look is over

    async def _unlock(
        self, credential: CredentialInfo, title: str
    ) -> UnlockedCredential | Literal[False] | None:
        """The BankID opened with its password; None: cancelled; False: it cannot be
        used now (locked: told)."""
        problem: Notice | None = None
        while True:
            password = await self._ui.ask_password(credential, problem, why=title)
            if password is None:
                return None
            try:
                return await asyncio.to_thread(self._store.unlock, credential.id, password)
            except WrongPassword as exc:
                problem = notice_for(exc)
            except (CredentialLocked, CredentialError) as exc:
                await self._ui.tell(notice_for(exc))
                return False
            finally:
                del password
