"""Orders waiting for the person (phone orders): each relay asked in turn for a one-time
challenge, the person's BankIDs shown to it by ``prove`` (``Prover``: it asks for the
passwords and PINs and signs ``eidcore.phoneproof.proof_bytes``), and the orders it then
shows. Only the relays the caller names are asked: the person's settings, never a page.

``WaitingOrders`` is the tray's "Orders waiting for me": each BankID's password or PIN
asked once, in a window that says why; each order found offered in turn (who called whom,
what for); the one taken carried out as a link's, in the usual dialog. The console's is
``eid-agent waiting`` (``agent.cli.waiting``)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
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
    Hardware,
    KeyPurpose,
    WrongPassword,
)
from agent.credentials.card import CardError, PinFormat, WrongPin
from agent.notices import Notice, notice_for
from agent.ui import CALL_TERMS, DesktopPort
from eidcore import phoneproof
from eidcore.messages import MessageCode, Term, catalogue

log = logging.getLogger(__name__)

__all__ = ["Ask", "Prove", "Prover", "WaitingOrders", "look_for_waiting"]

# (relay origin, challenge) → the proofs for it; None: the person stopped (nothing asked)
Prove = Callable[[str, str], Awaitable[Sequence[Mapping[str, object]] | None]]
# a BankID's password (on file) or PIN (card, token), with what went wrong last time;
# None: the person stopped
Ask = Callable[[CredentialInfo, Notice | None], Awaitable[str | None]]
Tell = Callable[[Notice], Awaitable[None]]
HARDWARE_PATIENCE = 3.0  # seconds for the readers' and tokens' first look


@dataclass
class _Opened:
    """A BankID that signs proofs for the rest of one look."""

    chain: tuple[bytes, ...]
    sign: Callable[[bytes], bytes]  # blocking: run in a thread


class Prover:
    """``prove`` for ``look_for_waiting``: the person's usable BankIDs — on file, and on
    the cards and tokens ``hardware`` sees — each opened once per look and shown to every
    relay asked. A file's password unlocks its key once; a card's or token's PIN is
    checked by the first signature and kept only for the other relays of the same look
    (the Prover is dropped when the look is over). A BankID behind a PIN pad is left out:
    a look would make the person type on the reader once per relay with nothing on the
    screen saying why."""

    def __init__(
        self,
        store: CredentialStore,
        hardware: Hardware | None,
        ask: Ask,
        tell: Tell,
        now: dt.datetime,
    ) -> None:
        self._store, self._hardware, self._ask, self._tell = store, hardware, ask, tell
        self._now = now
        self._opened: list[_Opened] | None = None

    def _candidates(self, files: Sequence[CredentialInfo]) -> list[CredentialInfo]:
        held = self._hardware.credentials() if self._hardware is not None else []
        usable = [
            c
            for c in (*files, *held)
            if c.state(self._now) is CredentialState.USABLE and not c.pin_pad
        ]
        return usable[: phoneproof.MAX_PROOFS]

    async def __call__(self, relay: str, challenge: str) -> list[dict[str, object]] | None:
        data = phoneproof.proof_bytes(relay, challenge)
        proofs: list[dict[str, object]] = []
        if self._opened is None:
            if self._hardware is not None:
                await self._hardware.settled(HARDWARE_PATIENCE)
            files = await asyncio.to_thread(self._store.credentials)
            self._opened = []
            for credential in self._candidates(files):
                if credential.kind is CredentialKind.FILE:
                    unlocked = await self._unlock(credential)
                    if unlocked is None:
                        return None
                    if unlocked is not False:
                        self._opened.append(unlocked)
                        proofs.append(await self._proof(unlocked, data))
                    continue
                checked = await self._with_pin(credential, data)
                if checked is None:
                    return None
                if checked is not False:
                    self._opened.append(checked[0])
                    proofs.append(checked[1])
            return proofs
        for opened in self._opened:
            try:
                proofs.append(await self._proof(opened, data))
            except CardError as exc:  # the card went, say: the other BankIDs still count
                await self._tell(notice_for(exc))
        return proofs

    @staticmethod
    async def _proof(opened: _Opened, data: bytes) -> dict[str, object]:
        signature = await asyncio.to_thread(opened.sign, data)
        return {
            "certificateChain": [base64.b64encode(c).decode("ascii") for c in opened.chain],
            "signature": base64.b64encode(signature).decode("ascii"),
        }

    async def _unlock(self, credential: CredentialInfo) -> _Opened | Literal[False] | None:
        """Opened with its password; None: the person stopped; False: not usable now
        (locked: told)."""
        problem: Notice | None = None
        while True:
            password = await self._ask(credential, problem)
            if password is None:
                return None
            try:
                unlocked = await asyncio.to_thread(self._store.unlock, credential.id, password)
            except WrongPassword as exc:  # its tries are counted as at any order
                problem = notice_for(exc)
                continue
            except (CredentialLocked, CredentialError) as exc:
                await self._tell(notice_for(exc))
                return False
            finally:
                del password
            chain = tuple(unlocked.certificate_chain(KeyPurpose.IDENTIFICATION))
            return _Opened(chain, functools.partial(unlocked.sign, KeyPurpose.IDENTIFICATION))

    async def _with_pin(
        self, credential: CredentialInfo, data: bytes
    ) -> tuple[_Opened, dict[str, object]] | Literal[False] | None:
        """A card's or token's identification key, its PIN checked by signing this
        relay's proof (returned beside it); None: the person stopped; False: not usable
        now (told)."""
        hardware = self._hardware
        held = hardware.card(credential.id) if hardware is not None else None
        if hardware is None or held is None:
            return False
        purpose = KeyPurpose.IDENTIFICATION
        problem: Notice | None = None
        while True:
            pin = await self._ask(credential, problem)
            if pin is None:
                return None
            opened = _Opened(
                tuple(held.chains[purpose]),
                functools.partial(hardware.sign, credential.id, purpose, pin=pin),
            )
            try:
                proof = await self._proof(opened, data)
            except (WrongPin, PinFormat) as exc:  # the card counts its own tries
                problem = notice_for(exc)
                continue
            except CardError as exc:  # blocked, removed, …
                await self._tell(notice_for(exc))
                return False
            return opened, proof


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
        hardware: Hardware | None = None,
    ) -> None:
        self._ui, self._store, self._door, self._clock = ui, store, door, clock
        self._hardware = hardware

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
            return  # the person cancelled a password or PIN
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
        async def ask(credential: CredentialInfo, problem: Notice | None) -> str | None:
            return await self._ui.ask_password(credential, problem, why=title)

        prover = Prover(self._store, self._hardware, ask, self._ui.tell, self._clock())
        return await look_for_waiting(relays, self._door.settings, prover)
