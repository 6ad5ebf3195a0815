"""Benchmarks of BankID on card, through a real pcscd, vpcd and the virtual card."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smartcard import scard  # the bare baseline; the agent itself goes through pcsc.py

from agent.credentials.card import CardSession, PinRef, apdu
from agent.credentials.card.errors import CardError, NoCard
from agent.credentials.card.monitor import CardWatcher
from agent.credentials.card.pcsc import PcscContext
from agent.credentials.model import KeyPurpose
from bench.common import Figure, per_op
from bench.tokens import person
from issuer import CertificateAuthority
from issuer.cards import personalise_card
from issuer.vcard import CardFile, VirtualCard, VpcdLink
from tests.card_kit import hold_vpcd_ports, release_vpcd_ports

READER = "Virtual PCD 00 00"
PINS = {"identification_pin": "1234", "signature_pin": "12345", "puk": "12345678"}


@contextmanager
def _pcscd() -> Iterator[None]:
    try:
        with PcscContext() as context:
            if READER in context.readers():
                yield
                return
    except CardError:
        pass
    binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
    release_vpcd_ports()  # held since the bench began (__main__), so no server took them
    proc = subprocess.Popen([binary, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            time.sleep(0.1)
            try:
                with PcscContext() as context:
                    if READER in context.readers():
                        break
            except CardError:
                continue
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        hold_vpcd_ports()  # again, for the next pcscd a later benchmark starts


def _card(ca: CertificateAuthority, tmp: Path) -> VpcdLink:
    state = personalise_card(
        ca,
        person(3),
        dt.datetime.now(dt.UTC),
        serial="BENCH",
        identification_pin=PINS["identification_pin"],
        signature_pin=PINS["signature_pin"],
        puk=PINS["puk"],
    )
    file = CardFile(tmp / "bench.vcard")
    file.save(state)
    return VpcdLink(VirtualCard(state, file.save))


def _connect() -> tuple[PcscContext, object]:
    context = PcscContext()
    for _ in range(500):
        try:
            return context, context.connect(READER)
        except NoCard:
            time.sleep(0.01)
    raise RuntimeError("card never seen")


def _operations(runs: int) -> list[Figure]:
    context, connection = _connect()
    session = CardSession(connection)  # type: ignore[arg-type]
    figures = []
    for purpose, pin, name in (
        (KeyPurpose.IDENTIFICATION, PINS["identification_pin"], "identification"),
        (KeyPurpose.SIGNATURE, PINS["signature_pin"], "signature"),
    ):
        before = session.apdus
        session.sign(purpose, b"x", pin)
        count = session.apdus - before
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            session.sign(purpose, b"signed data", pin)
            samples.append(time.perf_counter() - start)
        ms = statistics.median(samples) * 1000
        figures.append(
            Figure(
                f"card {name}: sign on the card, PIN entry excluded",
                "ms",
                ms,
                f"{count} APDUs × bare transmit",
                count * _bare_apdu_ms(connection),
                "—",
                True,
                note=f"{count} APDUs (SELECT, MSE, VERIFY, operation, log out)",
            )
        )
    ours = per_op(lambda: session.send(apdu.verify(PinRef.IDENTIFICATION)), 50, 9) * 1000
    bare = _bare_apdu_ms(connection)
    figures.append(
        Figure(
            "per-APDU: agent's CardSession.send",
            "ms",
            ours,
            "bare pyscard SCardTransmit loop",
            bare,
            "≤ 1.2× baseline",
            ours / bare <= 1.2,
        )
    )
    connection.close()  # type: ignore[attr-defined]
    context.close()
    return figures


def _bare_apdu_ms(connection: object) -> float:
    card, protocol = connection._card, connection._protocol  # type: ignore[attr-defined]
    command = list(apdu.verify(PinRef.IDENTIFICATION))

    def transmit() -> None:
        scard.SCardTransmit(card, protocol, command)

    return per_op(transmit, 50, 9) * 1000


async def _insertion_to_listed(link: VpcdLink, runs: int) -> float:
    watcher = CardWatcher()
    task = asyncio.create_task(watcher.run())
    samples = []
    try:
        while not watcher.service_up:
            await asyncio.sleep(0.01)
        for _ in range(runs):
            start = time.perf_counter()
            link.insert()
            while not watcher.credentials():
                await asyncio.sleep(0.002)
            samples.append(time.perf_counter() - start)
            link.remove()
            while watcher.credentials():
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
    return statistics.median(samples)


def run(ca: CertificateAuthority, tmp: Path, *, runs: int) -> list[Figure]:
    with _pcscd():
        link = _card(ca, tmp)
        link.insert()
        try:
            figures = _operations(runs)
        finally:
            link.remove()
        time.sleep(0.5)
        listed = asyncio.run(_insertion_to_listed(link, max(3, runs // 3)))
    figures.append(
        Figure(
            "card insertion → listed by the agent's watcher",
            "ms",
            listed * 1000,
            "—",
            float("nan"),
            "< 1000 ms",
            listed < 1.0,
        )
    )
    return figures
