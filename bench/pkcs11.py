"""Benchmarks of the PKCS#11 path: the agent's signature on a SoftHSM2 token against a bare
python-pkcs11 one on the same key, and a PIV card through the real OpenSC, pcscd and vpcd
(identification beside the project's own card profile; insertion → listed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pkcs11  # the bare baseline; the agent goes through agent/credentials/pkcs11/lib.py

from agent.credentials.card.errors import PinRef
from agent.credentials.card.monitor import CardWatcher
from agent.credentials.model import KeyPurpose
from agent.credentials.pkcs11.modules import ModuleEntry
from agent.credentials.pkcs11.watcher import TokenWatcher
from bench.cards import PINS, _card, _pcscd
from bench.common import Figure, per_op
from issuer import CertificateAuthority
from issuer.cards import personalise_piv_card
from issuer.vcard.piv import PivCard
from issuer.vcard.vpcd import VPCD_PORTS, VpcdLink
from tests.conftest import ANNA
from tests.softhsm_kit import MODULE, USER_PIN, SoftHsm

OPENSC = "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so"
PIV_PIN = "123456"


async def _watching(
    path: str,
    authorities: list[bytes] | None = None,
    readers: Callable[[], int] | None = None,
) -> tuple[TokenWatcher, asyncio.Task[None]]:
    watcher = TokenWatcher(
        [ModuleEntry(Path(path).name, Path(path), "bench")],
        authorities=authorities or [],
        readers_changed=readers,
    )
    task = asyncio.create_task(watcher.run())
    await watcher.ready.wait()
    return watcher, task


def _softhsm(ca: CertificateAuthority, tmp: Path, runs: int) -> list[Figure]:
    root = tmp / "softhsm"
    (root / "tokens").mkdir(parents=True)
    hsm = SoftHsm(root)
    hsm.conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    hsm.bankid("bench", ca)

    async def both() -> tuple[float, float]:
        """Batches of the two, alternated, so the machine's drift hits both alike."""
        watcher, task = await _watching(MODULE)
        (info,) = watcher.credentials()
        token = pkcs11.lib(MODULE).get_token(token_label="bench")  # the same loaded module

        def ours() -> None:
            watcher.sign(info.id, KeyPurpose.IDENTIFICATION, b"data", USER_PIN)

        def bare() -> None:
            digest = hashlib.sha256(b"data").digest()
            with token.open(user_pin=USER_PIN) as session:
                key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=b"\x01")
                key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)  # type: ignore[attr-defined]

        try:
            samples: dict[str, list[float]] = {"ours": [], "bare": []}
            for _ in range(max(9, runs)):
                samples["ours"].append(per_op(ours, 20, 1))
                samples["bare"].append(per_op(bare, 20, 1))
            return statistics.median(samples["ours"]), statistics.median(samples["bare"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    agent, baseline = asyncio.run(both())
    return [
        Figure(
            "PKCS#11 signature on SoftHSM2: the agent's token path",
            "ms",
            agent * 1000,
            "bare python-pkcs11: login, find the key, sign, close",
            baseline * 1000,
            "≤ 1.2× baseline",
            agent / baseline <= 1.2,
            note="both open a session and log in per signature, as orders do",
        )
    ]


def _piv(ca: CertificateAuthority, tmp: Path, runs: int) -> list[Figure]:
    from cryptography.hazmat.primitives.serialization import Encoding

    state = personalise_piv_card(
        ca, ANNA, dt.datetime.now(dt.UTC), serial="PIVBENCH", pin=PIV_PIN, puk="12345678"
    )
    piv = VpcdLink(PivCard(state, lambda _s: None), port=VPCD_PORTS[1])
    card = _card(ca, tmp)
    authorities = [ca.issuing_certificate.public_bytes(Encoding.DER)]

    async def measure() -> tuple[float, float, float, float, float]:
        for attempt in range(50):  # a pcscd just started opens its second reader last
            try:
                piv.insert()
                break
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        card.insert()
        cards = CardWatcher()  # as in the agent: its reader changes tell when to relist
        card_task = asyncio.create_task(cards.run())
        tokens, token_task = await _watching(OPENSC, authorities, lambda: cards.generation)
        try:
            while not (tokens.credentials() and cards.credentials()):
                await asyncio.sleep(0.02)
            (token_id,) = [c.id for c in tokens.credentials()]
            (card_id,) = [c.id for c in cards.credentials()]
            ident = KeyPurpose.IDENTIFICATION
            batches = max(9, runs)
            through_opensc = per_op(
                lambda: tokens.sign(token_id, ident, b"data", PIV_PIN), 5, batches
            )
            profile = per_op(
                lambda: cards.sign(card_id, ident, b"data", PINS["identification_pin"]), 5, batches
            )
            module, held = tokens._module(token_id)
            counted = per_op(lambda: tokens.pin_status(token_id, PinRef.USER), 5, batches)
            flags = per_op(lambda: module.flags(held.token), 5, batches)
            samples = []
            for _ in range(max(5, runs // 2)):
                piv.remove()
                while tokens.credentials():
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.3)
                start = time.perf_counter()
                piv.insert()
                while not tokens.credentials():
                    await asyncio.sleep(0.002)
                samples.append(time.perf_counter() - start)
            return through_opensc, profile, statistics.median(samples), counted, flags
        finally:
            for task in (token_task, card_task):
                task.cancel()
            await asyncio.gather(token_task, card_task, return_exceptions=True)
            piv.remove()
            card.remove()

    with _pcscd():
        opensc, profile, listed, counted, flags = asyncio.run(measure())
    return [
        Figure(
            "PIV identification through OpenSC (pcscd, vpcd)",
            "ms",
            opensc * 1000,
            "the project's card profile, same pcscd",
            profile * 1000,
            "—",
            True,
            note="the agent's watchers; a session, a login and a signature each",
        ),
        Figure(
            "PIV PIN status before a dialog, with the card's exact count",
            "ms",
            counted * 1000,
            "the token's flags alone (PKCS#11)",
            flags * 1000,
            "< 50 ms",
            counted < 0.05,
            note="an empty VERIFY through PC/SC beside C_GetTokenInfo",
        ),
        Figure(
            "PIV card insertion → listed by the token watcher",
            "ms",
            listed * 1000,
            "—",
            float("nan"),
            "< 1000 ms",
            listed < 1.0,
            note="polled every 250 ms; OpenSC reads both certificates",
        ),
    ]


def run(ca: CertificateAuthority, tmp: Path, *, runs: int) -> list[Figure]:
    figures = []
    if Path(MODULE).exists():
        figures += _softhsm(ca, tmp, runs)
    if Path(OPENSC).exists():
        figures += _piv(ca, tmp, runs)
    return figures
