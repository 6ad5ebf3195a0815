"""A virtual PIV card in the second vpcd reader, for the real OpenSC through the real
pcscd (the card kit's pcscd): personalised as an issuer would, its state in a file."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.credentials.card.errors import CardError, NoCard
from agent.credentials.card.pcsc import PcscContext
from issuer import CertificateAuthority
from issuer.cards import personalise_piv_card
from issuer.vcard.piv import PivCard, PivState
from issuer.vcard.vpcd import VPCD_PORTS, VpcdLink
from tests.card_kit import Pcscd
from tests.conftest import ANNA

OPENSC = "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so"
PIV_READER = "Virtual PCD 00 01"
PIV_PIN, PIV_PUK = "123456", "12345678"


@dataclass
class PivInReader:
    link: VpcdLink
    card: PivCard
    file: Path
    ca: CertificateAuthority
    intermediates: Path  # the issuing CA's certificate, PEM: PIV has no place for it

    def insert(self) -> None:
        self.link.insert()
        _wait_card(present=True)

    def remove(self) -> None:
        self.link.remove()
        _wait_card(present=False)


def _wait_card(*, present: bool, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with PcscContext() as context:
                context.connect(PIV_READER).close()
            if present:
                return
        except NoCard:
            if not present:
                return
        except CardError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"pcscd does not see the PIV card {'in' if present else 'out'}")


def personalised_piv(
    tmp_path: Path, ca: CertificateAuthority, *, now: dt.datetime | None = None, days: int = 365
) -> PivInReader:
    tmp_path.mkdir(parents=True, exist_ok=True)
    state = personalise_piv_card(
        ca,
        ANNA,
        now or dt.datetime.now(dt.UTC),
        serial="PIV0001",
        pin=PIV_PIN,
        puk=PIV_PUK,
        days=days,
    )
    file = tmp_path / "piv.json"

    def save(new: PivState) -> None:
        file.write_bytes(new.to_json())

    save(state)
    card = PivCard(state, save)
    pem = tmp_path / "issuing-ca.pem"
    pem.write_bytes(ca.issuing_certificate.public_bytes(serialization.Encoding.PEM))
    return PivInReader(VpcdLink(card, port=VPCD_PORTS[1]), card, file, ca, pem)


@pytest.fixture
def piv(pcscd: Pcscd, tmp_path: Path, card_ca: CertificateAuthority) -> Iterator[PivInReader]:
    if not Path(OPENSC).exists():
        pytest.skip("needs opensc-pkcs11 (./dev setup installs it)")
    inserted = personalised_piv(tmp_path / "piv", card_ca)
    inserted.insert()
    try:
        yield inserted
    finally:
        if inserted.link._sock is not None:
            inserted.remove()
