"""The agent's PKCS#11 tokens: modules probed and loaded once, their slots looked at a few
times a second, each new token's objects read once, and the BankIDs on them kept in a
snapshot beside the cards'. The same surface as the card watcher, so orders, My BankIDs
and the PIN dialogues use either.

Looking is polling: ``C_WaitForSlotEvent`` is optional in PKCS#11 (SoftHSM2 does not
have it) and a blocking wait cannot be interrupted portably; a look costs one
``C_GetSlotList`` and one ``C_GetTokenInfo`` per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from agent.credentials.card.errors import CardError, NoCard, PinFormat, PinRef, WrongPin
from agent.credentials.card.session import PinStatus
from agent.credentials.model import CredentialInfo, KeyPurpose
from agent.credentials.pkcs11 import contents as rules
from agent.credentials.pkcs11 import opensc
from agent.credentials.pkcs11.contents import TokenContents, TokenCredential, TokenRef
from agent.credentials.pkcs11.modules import ModuleEntry
from agent.credentials.pkcs11.probe import ProbeCache, ProbeResult, probe

if TYPE_CHECKING:  # python-pkcs11 loads only when a module passed its probe
    from agent.credentials.pkcs11.lib import Module

log = logging.getLogger(__name__)
_T = TypeVar("_T")

POLL_SECONDS = 0.25  # token inserted → listed stays well under a second
PROBE_CACHE = "pkcs11-probes.json"  # in the data folder
RELIST_SECONDS = 30.0  # slots listed again this often with no reader change (see lib.py)


def card_pin_tries(head: TokenContents) -> int | None:
    """The exact tries left, from a PIV card in a PC/SC reader (``pivtries.py``)."""
    if not head.piv:
        return None
    from agent.credentials.pkcs11.pivtries import piv_pin_tries  # pyscard: only for a PIV card

    return piv_pin_tries(head.reader)


@dataclass(frozen=True)
class ModuleProblem:
    path: str
    reason: str  # one of probe.REASONS
    detail: str  # for the log and support


class TokenWatcher:
    def __init__(
        self,
        modules: Sequence[ModuleEntry],
        *,
        poll: float = POLL_SECONDS,
        probe_module: Callable[[Path], ProbeResult] = probe,
        authorities: Sequence[bytes] = (),
        conf_dir: Path | None = None,
        readers_changed: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pin_tries: Callable[[TokenContents], int | None] = card_pin_tries,
    ) -> None:
        """``authorities``: issuing CA certificates (DER) that complete tokens' chains;
        ``conf_dir``: where OpenSC's configuration for unblocking goes (``opensc.py``);
        ``readers_changed``: a count of card readers' changes (the card watcher's), so
        slots are listed again when a card came or went, and otherwise only every
        RELIST_SECONDS (tokens not behind PC/SC); None: listed at every look;
        ``pin_tries``: the exact tries left where a token's card tells (PKCS#11 does not),
        asked only before a PIN dialog and after a refused PIN."""
        self._entries = tuple(modules)
        self._authorities = tuple(authorities)
        self._conf_dir = conf_dir
        self._readers_changed, self._clock = readers_changed, clock
        self._pin_tries = pin_tries
        self._listed: tuple[int, float] | None = None  # (readers' count, when) of the last
        self._poll, self._probe = poll, probe_module
        self._modules: list[Module] = []
        self.problems: list[ModuleProblem] = []
        self._creds: dict[str, TokenCredential] = {}
        self._read: dict[tuple[TokenRef, str], rules.Reading] = {}
        self._present: list[TokenContents] = []  # every token in a slot, BankID or not
        self._changed = asyncio.Event()
        self.generation = 0
        self.ready = asyncio.Event()  # modules probed and the first look taken

    # -- the snapshot ------------------------------------------------------------------------

    def credentials(self) -> list[CredentialInfo]:
        return [c.info for c in self._creds.values()]

    def card(self, credential_id: str) -> TokenCredential | None:
        return self._creds.get(credential_id)

    async def wait_changed(self, since: int) -> None:
        while self.generation <= since:
            self._changed.clear()
            await self._changed.wait()

    # -- the driver ------------------------------------------------------------------------

    async def run(self) -> None:
        await self._load()
        try:
            while True:
                try:
                    found = await asyncio.to_thread(self._look)
                except Exception:  # a module misbehaving must not end the watching
                    log.exception("looking at PKCS#11 tokens failed")
                    found = self._creds
                self._update(found)
                self.ready.set()
                await asyncio.sleep(self._poll)
        finally:
            await asyncio.to_thread(self.close)

    async def look_once(self) -> list[CredentialInfo]:
        """Load the modules, look once and let them go again."""
        await self._load()
        try:
            self._update(await asyncio.to_thread(self._look))
        finally:
            self.close()
        return self.credentials()

    def close(self) -> None:
        """Finalise the modules (blocking); ``run`` does it itself when cancelled."""
        for module in self._modules:
            module.close()
        self._modules = []

    async def _load(self) -> None:
        if self._conf_dir is not None:
            opensc.prepare(self._conf_dir)
        results = await asyncio.gather(
            *(asyncio.to_thread(self._probe, e.path) for e in self._entries)
        )
        for entry, result in zip(self._entries, results, strict=True):
            if not result.ok:
                self._problem(str(entry.path), result.reason, result.detail)
                continue
            from agent.credentials.pkcs11.errors import ModuleUnusable
            from agent.credentials.pkcs11.lib import Module

            try:
                self._modules.append(await asyncio.to_thread(Module, str(entry.path)))
            except ModuleUnusable as exc:
                self._problem(str(entry.path), "unloadable", exc.reason)
                continue
            log.info("PKCS#11 module %s loaded (%s, %s)", entry.path, result.detail, entry.source)

    def _problem(self, path: str, reason: str, detail: str) -> None:
        log.warning("PKCS#11 module %s not used: %s", path, detail)  # once: at load
        self.problems.append(ModuleProblem(path, reason, detail))

    def _relist(self) -> bool:
        if self._readers_changed is None:
            return True
        count, now = self._readers_changed(), self._clock()
        last = self._listed
        if last is not None and last[0] == count and now - last[1] < RELIST_SECONDS:
            return False
        self._listed = (count, now)
        return True

    def _look(self) -> dict[str, TokenCredential]:
        relist = self._relist()
        found: dict[str, TokenCredential] = {}
        seen: set[tuple[TokenRef, str]] = set()
        present: list[TokenContents] = []
        for module in self._modules:
            try:
                heads = module.present(relist=relist)
            except CardError as exc:
                log.info("PKCS#11 module %s: %s", module.path, exc)
                continue
            for head in heads:
                key = (head.ref, head.label)
                seen.add(key)
                present.append(head)
                reading = self._read.get(key)
                if reading is None:
                    reading = self._read_token(module, head, self._authorities)
                    if reading is None:
                        continue  # not readable yet: next look
                    self._read[key] = reading
                state = rules.pin_state(head.flags)
                for cred in reading.credentials:
                    info = replace(cred.info, locked=state.locked, tries_left=state.tries_left)
                    found[info.id] = replace(cred, info=info)
        for gone in self._read.keys() - seen:
            del self._read[gone]
        self._present = present
        return found

    @staticmethod
    def _read_token(
        module: Module, head: TokenContents, authorities: Sequence[bytes]
    ) -> rules.Reading | None:
        try:
            reading = rules.read(module.contents(head), authorities)
        except CardError as exc:
            log.info("token %r in %s not read: %s", head.label, module.path, exc)
            return None
        for why in reading.not_offered:
            log.debug("token %r: %s", head.label, why)
        if not reading.credentials:
            log.info("token %r in %s holds no BankID", head.label, module.path)
        return reading

    def _update(self, found: dict[str, TokenCredential]) -> None:
        before = {k: (c.info.locked, c.info.tries_left) for k, c in self._creds.items()}
        after = {k: (c.info.locked, c.info.tries_left) for k, c in found.items()}
        if before != after:
            for cred_id in found.keys() - self._creds.keys():
                log.info("token BankID %s inserted", cred_id)
            for cred_id in self._creds.keys() - found.keys():
                log.info("token BankID %s removed", cred_id)
            self._creds = found
            self.generation += 1
            self._changed.set()
        else:
            self._creds = found

    # -- using a token (blocking: run in an executor) ----------------------------------------

    def _module(self, credential_id: str) -> tuple[Module, TokenCredential]:
        cred = self._creds.get(credential_id)
        if cred is None:
            raise NoCard()
        module = next((m for m in self._modules if m.path == cred.token.module), None)
        if module is None:
            raise NoCard()
        return module, cred

    def pin_status(self, credential_id: str, pin: PinRef) -> PinStatus:
        """Raises: CardError (the token is gone, …)."""
        module, cred = self._module(credential_id)
        state = rules.pin_state(module.flags(cred.token))
        tries = state.tries_left
        if tries is None and not state.locked:
            tries = self._exact_tries(cred.token)
        return PinStatus(PinRef.USER, tries, False)

    def _exact_tries(self, ref: TokenRef) -> int | None:
        head = next((h for h in self._present if h.ref == ref), None)
        return self._pin_tries(head) if head is not None else None

    def sign(self, credential_id: str, purpose: KeyPurpose, data: bytes, pin: str | None) -> bytes:
        """``pin`` None: the person types it on the reader's PIN pad (C_Login with none).
        Raises: CardError (WrongPin, PinBlocked, PinEntryCancelled, CardRemoved, …)."""
        module, cred = self._module(credential_id)
        digest = hashlib.sha256(data).digest()
        return self._counted(
            cred.token, module.sign, cred.token, cred.key_ids[purpose], digest, pin
        )

    def _counted(self, ref: TokenRef, call: Callable[..., _T], *args: object) -> _T:
        """``call``, its refused PIN given the exact tries left where the card tells."""
        try:
            return call(*args)
        except WrongPin as exc:
            if exc.tries_left is not None:
                raise
            tries = self._exact_tries(ref)
            if tries is None:
                raise
            raise type(exc)(exc.pin, tries) from None

    # -- putting a BankID on a token (blocking; agent/enrol/token.py drives it) ------------

    def present_tokens(self) -> list[TokenContents]:
        """Every token in a slot at the last look, holding a BankID or not."""
        return list(self._present)

    def _module_of(self, ref: TokenRef) -> Module:
        module = next((m for m in self._modules if m.path == ref.module), None)
        if module is None:
            raise NoCard()
        return module

    def check_pin(self, ref: TokenRef, pin: str) -> None:
        self._counted(ref, self._module_of(ref).check_pin, ref, pin)

    def generate_pair(
        self, ref: TokenRef, pin: str, key_id: bytes, label: str, *, always_authenticate: bool
    ) -> bytes:
        """Raises: CardError. Returns the public point (04 ‖ X ‖ Y)."""
        module = self._module_of(ref)
        return module.generate_pair(
            ref, pin, key_id, label, always_authenticate=always_authenticate
        )

    def sign_digest(self, ref: TokenRef, key_id: bytes, digest: bytes, pin: str) -> bytes:
        """ECDSA r‖s over a SHA-256 digest with a key that is not a BankID's yet."""
        return self._module_of(ref).sign(ref, key_id, digest, pin)

    def write_certificate(
        self,
        ref: TokenRef,
        pin: str,
        key_id: bytes,
        label: str,
        der: bytes,
        subject: bytes,
        issuer: bytes,
    ) -> None:
        self._module_of(ref).write_certificate(ref, pin, key_id, label, der, subject, issuer)
        self.forget(ref)

    def reload(self, ref: TokenRef) -> None:
        """Load ``ref``'s module afresh (its card was changed by another program)."""
        self._module_of(ref).reload()
        self.forget(ref)

    def forget(self, ref: TokenRef) -> None:
        """Read the token's objects again at the next look (it was written to)."""
        for key in [k for k in self._read if k[0] == ref]:
            del self._read[key]

    def change_pin(self, credential_id: str, pin: PinRef, old: str, new: str) -> None:
        """Raises: CardError (WrongCurrentPin, PinBlocked, PinFormat, …)."""
        module, cred = self._module(credential_id)
        self._counted(cred.token, module.change_pin, cred.token, old, new)

    def unblock_pin(self, credential_id: str, pin: PinRef, puk: str, new: str | None) -> None:
        """Raises: CardError (WrongPuk, PukBlocked, PinFormat, …). A token takes a new PIN
        with its unblocking (C_InitPIN): there is no keeping the old one."""
        if new is None:
            raise PinFormat(PinRef.USER)
        module, cred = self._module(credential_id)
        module.unblock_pin(cred.token, puk, new)


def tokens_now(
    modules: Sequence[ModuleEntry], authorities: Sequence[bytes] = (), *, probes: Path | None = None
) -> list[CredentialInfo]:
    """The BankIDs on tokens at this moment, for one-shot listings (``credentials list``);
    ``probes``: where probe results are kept (``ProbeCache``)."""
    if not modules:
        return []
    if probes is None or not probes.parent.is_dir():
        return asyncio.run(TokenWatcher(modules, authorities=authorities).look_once())
    watcher = TokenWatcher(modules, authorities=authorities, probe_module=ProbeCache(probes).probe)
    return asyncio.run(watcher.look_once())


@contextlib.contextmanager
def tokens_open(
    modules: Sequence[ModuleEntry],
    *,
    authorities: Sequence[bytes] = (),
    conf_dir: Path | None = None,
) -> Iterator[TokenWatcher]:
    """A watcher that has loaded its modules and looked once, for one command's work
    (``eid-agent card … --pin token``); its blocking methods are used directly."""

    async def open_once() -> TokenWatcher:
        watcher = TokenWatcher(modules, authorities=authorities, conf_dir=conf_dir)
        await watcher._load()
        watcher._update(await asyncio.to_thread(watcher._look))
        return watcher

    watcher = asyncio.run(open_once())
    try:
        yield watcher
    finally:
        watcher.close()
