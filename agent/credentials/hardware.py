"""Cards of the project's profile (PC/SC) and PKCS#11 tokens behind one surface: what
orders, My BankIDs and the PIN dialogues use, whichever kind a credential is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from agent.credentials.card.errors import NoCard, PinRef
from agent.credentials.card.session import PinStatus
from agent.credentials.model import CredentialInfo, CredentialKind, KeyPurpose


def pin_for(kind: CredentialKind, purpose: KeyPurpose) -> PinRef | None:
    """Which secret an operation asks for: None is a BankID on file's password; a card of
    the profile has a PIN per key; a PKCS#11 token has one user PIN (asked for every
    signature all the same)."""
    if kind is CredentialKind.CARD:
        return PinRef.IDENTIFICATION if purpose is KeyPurpose.IDENTIFICATION else PinRef.SIGNATURE
    if kind is CredentialKind.TOKEN:
        return PinRef.USER
    return None


def pins_of(kind: CredentialKind) -> tuple[PinRef, ...]:
    """The PINs a person manages on a credential of ``kind``."""
    if kind is CredentialKind.CARD:
        return (PinRef.IDENTIFICATION, PinRef.SIGNATURE)
    return (PinRef.USER,) if kind is CredentialKind.TOKEN else ()


class Held(Protocol):
    @property
    def info(self) -> CredentialInfo: ...
    @property
    def chains(self) -> Mapping[KeyPurpose, tuple[bytes, ...]]: ...


@runtime_checkable
class Settling(Protocol):
    @property
    def ready(self) -> asyncio.Event: ...  # set once the first look is taken


class Watcher(Protocol):
    @property
    def generation(self) -> int: ...

    def credentials(self) -> list[CredentialInfo]: ...
    def card(self, credential_id: str) -> Held | None: ...
    async def wait_changed(self, since: int) -> None: ...
    def pin_status(self, credential_id: str, pin: PinRef) -> PinStatus: ...
    def sign(
        self, credential_id: str, purpose: KeyPurpose, data: bytes, pin: str | None
    ) -> bytes: ...
    def change_pin(self, credential_id: str, pin: PinRef, old: str, new: str) -> None: ...
    def unblock_pin(self, credential_id: str, pin: PinRef, puk: str, new: str | None) -> None: ...


class Hardware:
    def __init__(self, *watchers: Watcher | None) -> None:
        self._all: Sequence[Watcher] = tuple(w for w in watchers if w is not None)

    @property
    def generation(self) -> int:
        return sum(w.generation for w in self._all)

    def credentials(self) -> list[CredentialInfo]:
        return [c for w in self._all for c in w.credentials()]

    def card(self, credential_id: str) -> Held | None:
        return next((h for w in self._all if (h := w.card(credential_id)) is not None), None)

    def _owner(self, credential_id: str) -> Watcher:
        for watcher in self._all:
            if watcher.card(credential_id) is not None:
                return watcher
        raise NoCard()

    async def settled(self, patience: float) -> None:
        """Until every watcher took its first look, or ``patience`` seconds: what
        ``credentials`` lists then is what is in the readers and slots, for a question
        asked once (orders waiting for the person) rather than a dialog that follows
        changes."""
        settling = [w for w in self._all if isinstance(w, Settling)]
        waits = [asyncio.ensure_future(w.ready.wait()) for w in settling]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=patience)
            for wait in pending:
                wait.cancel()

    async def wait_changed(self, since: int) -> None:
        while self.generation <= since:
            waits = [asyncio.ensure_future(w.wait_changed(w.generation)) for w in self._all]
            if not waits:
                await asyncio.Event().wait()  # nothing to watch: nothing ever comes
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await wait

    # Blocking calls: run them in an executor.

    def pin_status(self, credential_id: str, pin: PinRef) -> PinStatus:
        return self._owner(credential_id).pin_status(credential_id, pin)

    def sign(self, credential_id: str, purpose: KeyPurpose, data: bytes, pin: str | None) -> bytes:
        """``pin`` None: typed on the reader's PIN pad (a credential with ``pin_pad``)."""
        return self._owner(credential_id).sign(credential_id, purpose, data, pin)

    def change_pin(self, credential_id: str, pin: PinRef, old: str, new: str) -> None:
        self._owner(credential_id).change_pin(credential_id, pin, old, new)

    def unblock_pin(self, credential_id: str, pin: PinRef, puk: str, new: str | None) -> None:
        self._owner(credential_id).unblock_pin(credential_id, pin, puk, new)
