"""A real pcscd with Debian's vpcd, and the project's virtual card in its first reader.

The session uses the machine's pcscd when one runs, and otherwise starts its own (as
root, foreground) and stops it afterwards. Nothing in the PC/SC path is simulated.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.tokens.card.errors import CardError, NoCard
from agent.tokens.card.pcsc import PcscConnection, PcscContext
from issuer import CertificateAuthority
from issuer.cards import personalise_card
from issuer.vcard import CardFile, VirtualCard, VpcdLink
from tests.conftest import ANNA

READER = "Virtual PCD 00 00"
ID_PIN, SIGN_PIN, PUK = "1234", "12345", "12345678"
SOCKET = Path("/run/pcscd/pcscd.comm")


def _pcscd_running() -> bool:
    try:
        pid = int(Path("/run/pcscd/pcscd.pid").read_text().strip())
    except (OSError, ValueError):
        return False
    try:  # a stale pid file may name a recycled pid
        return Path(f"/proc/{pid}/comm").read_text().strip() == "pcscd"
    except OSError:
        return False


@pytest.fixture(scope="session")
def pcscd() -> Iterator[None]:
    if _pcscd_running():
        yield
        return
    binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if not Path(binary).exists() or os.geteuid() != 0:
        pytest.skip("needs pcscd (./dev setup installs it) and root to start it")
    proc = subprocess.Popen([binary, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _readers_visible():
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("pcscd did not come up with the vpcd readers")
        time.sleep(0.1)
    yield
    proc.terminate()
    proc.wait(timeout=10)


def _readers_visible() -> bool:
    try:
        with PcscContext() as context:
            return READER in context.readers()
    except CardError:
        return False


@dataclass
class InsertedCard:
    link: VpcdLink
    card: VirtualCard
    file: CardFile
    ca: CertificateAuthority

    def connect(self, timeout: float = 5.0) -> PcscConnection:
        """A connection once pcscd has seen the card (insertion takes a moment)."""
        deadline = time.monotonic() + timeout
        context = PcscContext()
        while True:
            try:
                return context.connect(READER)
            except NoCard:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def wait_removed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with PcscContext() as context:
            while time.monotonic() < deadline:
                try:
                    context.connect(READER).close()
                except NoCard:
                    return
                except CardError:
                    pass  # on its way out
                time.sleep(0.02)
        raise AssertionError("pcscd still sees the card")


@pytest.fixture(scope="session")
def card_ca() -> CertificateAuthority:
    return CertificateAuthority.create("Card Test", dt.datetime.now(dt.UTC) - dt.timedelta(days=1))


@pytest.fixture
def inserted_card(
    pcscd: None, tmp_path: Path, card_ca: CertificateAuthority
) -> Iterator[InsertedCard]:
    state = personalise_card(
        card_ca, ANNA, dt.datetime.now(dt.UTC), serial="VC0001",
        identification_pin=ID_PIN, signature_pin=SIGN_PIN, puk=PUK,
    )  # fmt: skip
    file = CardFile(tmp_path / "card.json")
    file.save(state)
    card = VirtualCard(state, file.save)
    link = VpcdLink(card)
    link.insert()
    inserted = InsertedCard(link, card, file, card_ca)
    try:
        yield inserted
    finally:
        link.remove()
        inserted.wait_removed()
