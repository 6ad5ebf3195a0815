"""The virtual PIV card as OpenSC sees it, and the agent's PKCS#11 path through the real
OpenSC, pcscd and vpcd: listing, both keys, three wrong PINs, the PUK, a new PIN."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.tokens.card.errors import PinBlocked, PinRef, WrongCurrentPin, WrongPin, WrongPuk
from agent.tokens.model import CredentialState, KeyPurpose
from agent.tokens.pkcs11.modules import ModuleEntry
from agent.tokens.pkcs11.watcher import TokenWatcher
from tests.piv_kit import OPENSC, PIV_PIN, PIV_PUK, PivInReader, piv  # noqa: F401
from tests.test_pkcs11 import _verify

pytestmark = pytest.mark.slow


def _tool(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def test_opensc_sees_a_piv_card(piv: PivInReader) -> None:  # noqa: F811
    assert "Personal Identity Verification Card" in _tool("/usr/bin/opensc-tool", "-r", "1", "-n")
    objects = _tool("/usr/bin/pkcs11-tool", "--module", OPENSC, "--slot-index", "1",
                    "--list-objects")  # fmt: skip
    for shown in ("Certificate for PIV Authentication", "Certificate for Digital Signature",
                  "serialNumber=198112189876", "PIV AUTH pubkey", "SIGN pubkey"):  # fmt: skip
        assert shown in objects, objects
    certificates = _tool("/usr/bin/pkcs15-tool", "--reader", "1", "--list-certificates")
    assert "X.509 Certificate [Certificate for PIV Authentication]" in certificates
    keys = _tool("/usr/bin/pkcs11-tool", "--module", OPENSC, "--slot-index", "1", "--login",
                 "--pin", PIV_PIN, "--list-objects", "--type", "privkey")  # fmt: skip
    assert "always authenticate" in keys  # 9C, as on a real PIV card


@contextlib.asynccontextmanager
async def _watching(piv: PivInReader, tmp_path: Path) -> AsyncIterator[TokenWatcher]:  # noqa: F811
    watcher = TokenWatcher([ModuleEntry("opensc", Path(OPENSC), "config")], poll=0.1,
                           authorities=[piv.ca.issuing_certificate.public_bytes(
                               serialization.Encoding.DER)],
                           conf_dir=tmp_path / "opensc")  # fmt: skip
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.ready.wait(), 20)
        for _ in range(100):
            if watcher.credentials():
                break
            await asyncio.sleep(0.05)
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_piv_bankid_through_opensc(piv: PivInReader, tmp_path: Path) -> None:  # noqa: F811
    async with _watching(piv, tmp_path) as watcher:
        (info,) = watcher.credentials()
        assert info.owner.name == "Anna Andersson" and info.issuer.endswith("Issuing CA")
        held = watcher.card(info.id)
        assert held is not None and len(held.chains[KeyPurpose.IDENTIFICATION]) == 2
        for purpose in KeyPurpose:
            raw = await asyncio.to_thread(watcher.sign, info.id, purpose, b"data", PIV_PIN)
            _verify(held.chains[purpose], b"data", raw)


async def test_three_wrong_pins_block_and_the_puk_unblocks(
    piv: PivInReader, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    async with _watching(piv, tmp_path) as watcher:
        (info,) = watcher.credentials()

        async def sign(pin: str) -> bytes:
            return await asyncio.to_thread(watcher.sign, info.id, KeyPurpose.SIGNATURE, b"x", pin)

        with pytest.raises(WrongPin) as first:
            await sign("000000")
        assert first.value.tries_left is None  # 2 left: OpenSC's PIV driver says nothing
        with pytest.raises(WrongPin) as second:
            await sign("000000")
        assert second.value.tries_left == 1  # the final try
        with pytest.raises(PinBlocked):
            await sign("000000")
        assert piv.card.state.pin.tries_left == 0
        for _ in range(50):  # the snapshot follows the token's flags
            if watcher.credentials()[0].locked:
                break
            await asyncio.sleep(0.05)
        assert watcher.credentials()[0].state(info.not_before) is CredentialState.LOCKED
        with pytest.raises(PinBlocked):
            await sign(PIV_PIN)
        with pytest.raises(WrongPuk):
            await asyncio.to_thread(watcher.unblock_pin, info.id, PinRef.USER, "87654321", "654321")
        assert piv.card.state.puk.tries_left == 2
        await asyncio.to_thread(watcher.unblock_pin, info.id, PinRef.USER, PIV_PUK, "654321")
        assert piv.card.state.pin.tries_left == 3 and piv.card.state.puk.tries_left == 3
        assert len(await sign("654321")) == 64
        # and a PIN change, which costs no PUK try even under OpenSC's unblock setting
        with pytest.raises(WrongCurrentPin):
            await asyncio.to_thread(watcher.change_pin, info.id, PinRef.USER, "000000", "111111")
        await asyncio.to_thread(watcher.change_pin, info.id, PinRef.USER, "654321", "111111")
        assert piv.card.state.puk.tries_left == 3
        assert len(await sign("111111")) == 64
