"""BankID on card through a real pcscd, Debian's vpcd and the virtual card."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import rp
from agent.credentials.card import (
    CardRemoved,
    CardReset,
    CardSession,
    PinBlocked,
    PinFormat,
    PinRef,
    PukBlocked,
    WrongCurrentPin,
    WrongPin,
    WrongPuk,
    apdu,
)
from agent.credentials.model import KeyPurpose
from eidcore import signeddata
from tests.card_kit import ID_PIN, PUK, READER, SIGN_PIN, InsertedCard, wait_no_card

pytestmark = pytest.mark.slow


def _session(card: InsertedCard) -> CardSession:
    return CardSession(card.connect())


def _verify_es256(der_cert: bytes, data: bytes, signature: bytes) -> None:
    key = x509.load_der_x509_certificate(der_cert).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.verify(der, data, ec.ECDSA(hashes.SHA256()))


def test_certificates_name_the_owner(inserted_card: InsertedCard) -> None:
    chains = _session(inserted_card).chains()
    leaf = x509.load_der_x509_certificate(chains[KeyPurpose.IDENTIFICATION][0])
    assert "198112189876" in leaf.subject.rfc4514_string()
    assert len(chains[KeyPurpose.SIGNATURE]) == 2  # leaf and issuing CA


def test_identification_signature_verifies_with_the_rp_kit(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    chains = session.chains()
    nonce = rp.NonceStore().issue("s", dt.datetime.now(dt.UTC))
    import base64

    raw_nonce = base64.urlsafe_b64decode(nonce + "=")
    now = dt.datetime.now(dt.UTC)
    signed = signeddata.build(
        type="auth",
        origin="https://bank.example",
        nonce=raw_nonce,
        time=now,
        order_ref="ref-1",
        agent_version="test",
    )
    signature = session.sign(KeyPurpose.IDENTIFICATION, signed, ID_PIN)
    completion = {
        "signedData": base64.b64encode(signed).decode(),
        "signature": base64.b64encode(signature).decode(),
        "algorithm": "ES256",
        "certificateChain": [
            base64.b64encode(c).decode() for c in chains[KeyPurpose.IDENTIFICATION]
        ],
        "token": {"kind": "card"},
    }
    verified = rp.verify_auth(
        completion,
        expected_origin="https://bank.example",
        nonce=nonce,
        trust_anchors=[inserted_card.ca.root_certificate],
        now=now,
    )
    assert verified.person.personal_number == "198112189876"
    # the signature key signs only with its own PIN; its certificate carries nonRepudiation
    sig = session.sign(KeyPurpose.SIGNATURE, b"text", SIGN_PIN)
    _verify_es256(chains[KeyPurpose.SIGNATURE][0], b"text", sig)
    with pytest.raises(WrongPin):
        session.sign(KeyPurpose.SIGNATURE, b"text", "54321")


def test_three_wrong_pins_block_then_the_puk_unblocks(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    for left in (2, 1):
        with pytest.raises(WrongPin) as err:
            session.sign(KeyPurpose.IDENTIFICATION, b"x", "9999")
        assert (err.value.pin, err.value.tries_left) == (PinRef.IDENTIFICATION, left)
    with pytest.raises(PinBlocked):
        session.sign(KeyPurpose.IDENTIFICATION, b"x", "9999")
    with pytest.raises(PinBlocked):  # blocked: even the right PIN is refused
        session.sign(KeyPurpose.IDENTIFICATION, b"x", ID_PIN)
    assert session.pin_status(PinRef.IDENTIFICATION).blocked
    assert session.pin_status(PinRef.SIGNATURE).tries_left == 3  # the other PIN untouched
    session.unblock_pin(PinRef.IDENTIFICATION, PUK, "4321")
    assert session.pin_status(PinRef.IDENTIFICATION).tries_left == 3
    session.sign(KeyPurpose.IDENTIFICATION, b"x", "4321")
    # the counters live on the card: they survive removal (the state file says so too)
    assert inserted_card.file.load().pins[0x81].value == "4321"


def test_wrong_puk_counts_and_a_blocked_puk_means_a_new_card(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    for left in (2, 1):
        with pytest.raises(WrongPuk) as err:
            session.unblock_pin(PinRef.SIGNATURE, "87654321", None)
        assert (err.value.pin, err.value.tries_left) == (PinRef.SIGNATURE, left)
    with pytest.raises(PukBlocked):
        session.unblock_pin(PinRef.SIGNATURE, "87654321", None)
    with pytest.raises(PukBlocked):
        session.unblock_pin(PinRef.SIGNATURE, PUK, None)


def test_change_pin_and_a_wrong_old_pin_spends_a_try(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    with pytest.raises(WrongCurrentPin) as err:
        session.change_pin(PinRef.SIGNATURE, "99999", "54321")
    assert err.value.tries_left == 2
    assert session.pin_status(PinRef.SIGNATURE).tries_left == 2
    with pytest.raises(PinFormat):  # too short for a signature PIN: nothing spent
        session.change_pin(PinRef.SIGNATURE, SIGN_PIN, "123")
    assert session.pin_status(PinRef.SIGNATURE).tries_left == 2
    session.change_pin(PinRef.SIGNATURE, SIGN_PIN, "54321")
    assert session.pin_status(PinRef.SIGNATURE).tries_left == 3
    session.sign(KeyPurpose.SIGNATURE, b"x", "54321")


def test_one_verification_buys_one_signature(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    session.sign(KeyPurpose.SIGNATURE, b"first", SIGN_PIN)
    digest = b"\x00" * 32
    with session.exclusive():
        session.select()
        session.send(apdu.mse_set(0xB6, apdu.KEY_SIGNATURE))
        _, sw = session.send(apdu.verify(PinRef.SIGNATURE, SIGN_PIN))
        assert sw == apdu.SW_OK
        _, sw = session.send(apdu.compute_signature(digest))
        assert sw == apdu.SW_OK
        _, sw = session.send(apdu.compute_signature(digest))
        assert sw == apdu.SW_SECURITY  # spent by the first signature


def test_keys_only_in_their_own_template(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    with session.exclusive():
        session.select()
        _, sw = session.send(apdu.mse_set(0xA4, apdu.KEY_SIGNATURE))
        assert sw == apdu.SW_REF_NOT_FOUND
        _, sw = session.send(apdu.internal_authenticate(b"\x00" * 32))
        assert sw == apdu.SW_CONDITIONS  # no MSE accepted
    # and the identification PIN does not outlive an operation
    session.sign(KeyPurpose.IDENTIFICATION, b"x", ID_PIN)
    assert not session.pin_status(PinRef.IDENTIFICATION).verified


def test_card_removed_mid_operation(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    session.chains()
    removed = threading.Event()

    def pull_after_mse(command: bytes, _response: bytes) -> None:
        if command[1] == 0x22 and not removed.is_set():
            removed.set()
            inserted_card.link.remove()  # out of the reader before the answer leaves

    inserted_card.link._on_apdu = pull_after_mse
    with pytest.raises(CardRemoved):
        session.sign(KeyPurpose.IDENTIFICATION, b"x", ID_PIN)
    inserted_card.wait_removed()
    # the PIN counter was never touched: the card left before VERIFY
    assert inserted_card.file.load().pins[0x81].tries_left == 3


def test_reset_by_another_program(inserted_card: InsertedCard) -> None:
    session = _session(inserted_card)
    session.pin_status(PinRef.IDENTIFICATION)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "from smartcard import scard as s\n"
            "r,c=s.SCardEstablishContext(s.SCARD_SCOPE_USER)\n"
            f"r,h,p=s.SCardConnect(c,{READER!r},s.SCARD_SHARE_SHARED,s.SCARD_PROTOCOL_T1)\n"
            "print(s.SCardDisconnect(h,s.SCARD_RESET_CARD))",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert other.stdout.strip() == "0", other
    with pytest.raises(CardReset):
        session.pin_status(PinRef.IDENTIFICATION)


def test_cli_status_change_and_unblock(inserted_card: InsertedCard) -> None:
    exe = str(Path(sys.executable).parent / "eid-agent")

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, "card", *args, "--lang", "en"],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    inserted_card.connect().close()  # pcscd has seen the card
    status = run("status")
    assert status.returncode == 0, status.stderr
    assert "Anna Andersson (198112189876)" in status.stdout
    assert "identification PIN: tries left: 3" in status.stdout
    wrong = run("change-pin", "--pin", "identification", stdin="0000\n5678\n5678\n")
    assert wrong.returncode == 1
    assert "[10011] The identification PIN could not be changed" in wrong.stderr
    assert "Tries left for the identification PIN: 2." in wrong.stderr
    differ = run("change-pin", "--pin", "signature", stdin=f"{SIGN_PIN}\n54321\n54320\n")
    assert "[10063]" in differ.stderr
    for _ in range(2):
        run("change-pin", "--pin", "identification", stdin="0000\n5678\n5678\n")
    blocked = run("change-pin", "--pin", "identification", stdin=f"{ID_PIN}\n5678\n5678\n")
    assert "[10005] Identification PIN is blocked" in blocked.stderr
    wrong_pin = run("unblock-pin", "--pin", "signature", "--keep", stdin="11111111\n")
    assert "[10039] Wrong PUK – the signing PIN was not unblocked" in wrong_pin.stderr
    assert "Tries left before the PUK is blocked for good: 2." in wrong_pin.stderr
    ok = run("unblock-pin", "--pin", "identification", stdin=f"{PUK}\n5678\n5678\n")
    assert ok.returncode == 0 and "has been unblocked" in ok.stdout
    assert "identification PIN: tries left: 3" in run("status").stdout
    missing = run("change-pin")
    assert missing.returncode == 2  # --pin is required: always said which PIN
    for secret in (ID_PIN, SIGN_PIN, PUK, "5678"):
        assert secret not in status.stdout + wrong.stderr + ok.stdout + ok.stderr


def test_no_card_and_no_such_reader(pcscd: object) -> None:
    exe = str(Path(sys.executable).parent / "eid-agent")
    res = subprocess.run(
        [exe, "card", "status", "--lang", "en"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1 and "[10059] No card in the reader" in res.stderr
    res = subprocess.run(
        [exe, "card", "status", "--reader", "Nope", "--lang", "en"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "[10058] No card reader found" in res.stderr


def test_virtual_card_as_a_developer_uses_it(pcscd: object, tmp_path: Path) -> None:
    """eid-issuer personalises a card file; eid-vcard inserts it until stopped."""
    import signal
    import time

    bin_dir = Path(sys.executable).parent
    card = tmp_path / "anna.vcard"
    made = subprocess.run(
        [
            str(bin_dir / "eid-issuer"),
            "personalise-card",
            "--personal-number",
            "198112189876",
            "--name",
            "Anna Andersson",
            "--card",
            str(card),
            "--ca-dir",
            str(tmp_path / "ca"),
        ],
        input="1234\n1234\n12345\n12345\n12345678\n12345678\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert oct(card.stat().st_mode)[-3:] == "600"
    shown = subprocess.run(
        [str(bin_dir / "eid-vcard"), "show", "--card", str(card)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "identification PIN: 3 tries left" in shown.stdout
    inserted = subprocess.Popen(
        [str(bin_dir / "eid-vcard"), "insert", "--card", str(card)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert inserted.stderr is not None
        assert "inserted" in inserted.stderr.readline()
        deadline = time.monotonic() + 10
        while True:
            status = subprocess.run(
                [str(bin_dir / "eid-agent"), "card", "status", "--lang", "en"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if status.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "Anna Andersson (198112189876)" in status.stdout, status.stderr
    finally:
        inserted.send_signal(signal.SIGTERM)
        assert inserted.wait(timeout=10) == 0
        wait_no_card()


def test_cards_are_listed_beside_file_credentials(
    inserted_card: InsertedCard, tmp_path: Path
) -> None:
    import json
    import time

    inserted_card.connect().close()
    exe = str(Path(sys.executable).parent / "eid-agent")
    deadline = time.monotonic() + 5  # a listing is a snapshot: let a fresh card settle
    while True:
        listing = subprocess.run(
            [exe, "-v", "credentials", "list", "--json", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        cards = json.loads(listing.stdout)
        if cards or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(cards) == 1, listing.stderr
    (card,) = cards
    assert card["kind"] == "card" and card["personalNumber"] == "198112189876"
    assert card["issuer"] == "Card Test Issuing CA" and card["state"] == "usable"
