"""A BankID on a PKCS#11 token, used as a person and a website use it: a real
``eid-agent run`` loading SoftHSM2 (and a module that crashes when loaded, beside it),
orders started through the bridge, the PIN typed at the agent's console, the results
verified with the rp kit; ``tokens list`` and ``doctor`` as a person runs them."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rp
from issuer.ca import CertificateAuthority
from tests.agent_process import AgentProcess
from tests.pinpad_kit import build_pin_pad
from tests.relay_process_kit import RelayProcess, free_port, write_config
from tests.softhsm_kit import MODULE, USER_PIN, SoftHsm
from tests.test_pkcs11 import _crashing_module

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def token_ca() -> CertificateAuthority:
    return CertificateAuthority.create("Token Test", dt.datetime.now(dt.UTC) - dt.timedelta(days=3))


def _config(tmp_path: Path, *modules: str | Path) -> Path:
    config = tmp_path / "agent-config.toml"
    listed = ", ".join(json.dumps(str(m)) for m in modules)
    config.write_text(f"[pkcs11]\nmodules = [{listed}]\np11kit = false\n")
    return config


@contextlib.contextmanager
def _relay_beside(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path], module: str | Path
) -> Iterator[tuple[RelayProcess, Path]]:
    """A relay process trusting ``ca``, and the person's settings: ``module`` as their
    PKCS#11 module, the relay allowed. Yields the relay and the settings file."""

    port = free_port()
    relay_config = write_config(tmp_path / "relay", ca, origin=f"https://127.0.0.1:{port}")
    config = _config(tmp_path, module)
    config.write_text(config.read_text() + f'\n[relay]\nallow = ["127.0.0.1:{port}"]\n')
    relay = RelayProcess(relay_config, f"sqlite:///{tmp_path / 'relay.db'}", tls, port=port)
    try:
        yield relay, config
    finally:
        if relay.proc.poll() is None:
            assert "Traceback" not in relay.stop()


def test_identification_and_signing_with_a_token_through_a_real_agent(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca, always_auth=True)
    crash = _crashing_module(tmp_path)
    config = _config(tmp_path, crash, MODULE)
    with AgentProcess(tmp_path / "data", "--config", str(config), env=softhsm.env) as agent:
        agent.ready()
        agent.wait_for_output(
            "libcrash-pkcs11.so not used: crashed when loaded (SIGSEGV)", stream="stderr"
        )
        agent.wait_for_output("token BankID", stream="stderr")  # listed beside it
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request("POST", "/v1/auth", {"nonce": nonce, "tokenKinds": ["token"]})
        assert status == 201, body
        ref = body["orderRef"]
        agent.wait_for_output("PIN for Anna Andersson")
        agent.type("000000")
        agent.wait_for_output("[10085] Wrong PIN")
        agent.wait_for_output("PIN for Anna Andersson", count=2)
        agent.type(USER_PIN)
        data = agent.wait_status(ref, "complete")["completionData"]
        assert data["token"] == {"kind": "token"}
        verified = rp.verify_auth(
            data,
            expected_origin=agent.origin,
            nonce=nonce,
            trust_anchors=[token_ca.root_certificate],
            now=dt.datetime.now(dt.UTC),
        )
        assert verified.person.personal_number == "198112189876"

        text = "Jag godkänner avtalet."
        visible = base64.b64encode(text.encode()).decode()
        nonce = base64.b64encode(os.urandom(32)).decode()
        status, body = agent.request(
            "POST", "/v1/sign", {"nonce": nonce, "userVisibleData": visible}
        )
        assert status == 201, body
        agent.wait_for_output(text)
        agent.wait_for_output("PIN for Anna Andersson", count=3)
        agent.type(USER_PIN)
        data = agent.wait_status(body["orderRef"], "complete")["completionData"]
        signed = rp.verify_sign(
            data,
            expected_origin=agent.origin,
            nonce=nonce,
            trust_anchors=[token_ca.root_certificate],
            now=dt.datetime.now(dt.UTC),
            user_visible_data=text,
        )
        assert signed.person.personal_number == "198112189876"
        # a website asking for a BankID on file only: the token is not offered, and the
        # order waits for a credential that fits (as for a card not yet inserted)
        nonce = base64.b64encode(os.urandom(32)).decode()
        _, body = agent.request("POST", "/v1/auth", {"nonce": nonce, "tokenKinds": ["file"]})
        agent.wait_status(body["orderRef"], "noClient")
        agent.wait_for_output("[10025] BankID missing")
    assert USER_PIN not in agent.stderr and "000000" not in agent.stderr  # PINs never logged


def test_a_reader_with_a_pin_pad_is_used_instead_of_asking(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    """The PIN goes on the reader's keypad: the agent asks only to go on, sends no PIN
    (the pad refuses one), counts a wrong one and takes Cancel on the pad as a cancel."""
    softhsm.bankid("anna", token_ca)
    pad = build_pin_pad(tmp_path)
    config = _config(tmp_path, pad.module)
    with AgentProcess(tmp_path / "data", "--config", str(config), env=softhsm.env) as agent:
        agent.ready()
        agent.wait_for_output("token BankID", stream="stderr")
        prompt = "press Enter, then type it on the card reader's keypad"
        pad.type("000000", USER_PIN)  # a slip on the keypad, then the right PIN
        nonce = base64.b64encode(os.urandom(32)).decode()
        _, body = agent.request("POST", "/v1/auth", {"nonce": nonce, "tokenKinds": ["token"]})
        agent.wait_for_output(prompt)
        agent.type("")
        agent.wait_for_output("[10085] Wrong PIN")
        agent.wait_for_output(prompt, count=2)
        agent.type("")
        data = agent.wait_status(body["orderRef"], "complete")["completionData"]
        verified = rp.verify_auth(
            data,
            expected_origin=agent.origin,
            nonce=nonce,
            trust_anchors=[token_ca.root_certificate],
            now=dt.datetime.now(dt.UTC),
        )
        assert verified.person.personal_number == "198112189876"
        assert pad.pending == []  # both typings were taken from the pad
        assert "Type it on the card reader's keypad now." in agent.stdout

        text = "Jag godkänner avtalet."
        pad.type(USER_PIN)
        nonce = base64.b64encode(os.urandom(32)).decode()
        _, body = agent.request(
            "POST",
            "/v1/sign",
            {"nonce": nonce, "userVisibleData": base64.b64encode(text.encode()).decode()},
        )
        agent.wait_for_output(text)  # what is signed is shown before the pad is used
        agent.wait_for_output(prompt, count=3)
        agent.type("")
        data = agent.wait_status(body["orderRef"], "complete")["completionData"]
        rp.verify_sign(
            data,
            expected_origin=agent.origin,
            nonce=nonce,
            trust_anchors=[token_ca.root_certificate],
            now=dt.datetime.now(dt.UTC),
            user_visible_data=text,
        )

        # Cancel pressed on the keypad (nothing typed): the order ends as cancelled
        nonce = base64.b64encode(os.urandom(32)).decode()
        _, body = agent.request("POST", "/v1/auth", {"nonce": nonce, "tokenKinds": ["token"]})
        agent.wait_for_output(prompt, count=4)
        agent.type("")
        assert agent.wait_status(body["orderRef"], "failed")["hintCode"] == "userCancel"
    assert "Traceback" not in agent.stderr and USER_PIN not in agent.stderr


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eid-agent"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_tokens_list_and_doctor_show_tokens_and_broken_modules(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca)
    config = _config(tmp_path, MODULE, _crashing_module(tmp_path))
    data = str(tmp_path / "data")
    listing = _run(
        "credentials",
        "list",
        "--json",
        "--data-dir",
        data,
        "--config",
        str(config),
        env=softhsm.env,
    )
    (entry,) = json.loads(listing.stdout)
    assert entry["kind"] == "token" and entry["name"] == "Anna Andersson"
    assert entry["state"] == "usable" and entry["triesLeft"] is None
    table = _run(
        "credentials",
        "list",
        "--lang",
        "sv",
        "--data-dir",
        data,
        "--config",
        str(config),
        env=softhsm.env,
    ).stdout
    assert "BankID på säkerhetsnyckel" in table and "198112189876" in table
    doctor = _run(
        "doctor", "--lang", "sv", "--data-dir", data, "--config", str(config), env=softhsm.env
    )
    assert "modulen kraschade när den laddades (crashed when loaded (SIGSEGV))" in doctor.stdout
    assert "Traceback" not in doctor.stdout + doctor.stderr


def test_the_pin_of_a_token_from_the_command_line(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca)
    config = _config(tmp_path, MODULE)
    common = (
        "--pin",
        "token",
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path / "d"),
        "--lang",
        "en",
    )

    def card(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "eid-agent"), "card", *args, *common],
            input=stdin,
            capture_output=True,
            text=True,
            env=softhsm.env,
            timeout=60,
            check=False,
        )

    wrong = card("change-pin", stdin="000000\n654321\n654321\n")
    assert wrong.returncode != 0 and "[10088]" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    done = card("change-pin", stdin=f"{USER_PIN}\n654321\n654321\n")
    assert done.returncode == 0, done.stderr
    assert "PIN changed" in done.stdout or "changed" in done.stdout.lower()
    keep = card("unblock-pin", "--keep", stdin="")
    assert keep.returncode == 2 and "--keep does not go with --pin token" in keep.stderr
    bad_puk = card("unblock-pin", stdin="87654321\n111111\n111111\n")
    assert "[10087]" in bad_puk.stderr
    unblocked = card("unblock-pin", stdin="12345678\n111111\n111111\n")
    assert unblocked.returncode == 0, unblocked.stderr
    listing = _run(
        "credentials",
        "list",
        "--json",
        "--data-dir",
        str(tmp_path / "d"),
        "--config",
        str(config),
        env=softhsm.env,
    )
    assert json.loads(listing.stdout)[0]["state"] == "usable"
    for secret in (USER_PIN, "654321", "87654321", "12345678"):
        assert secret not in wrong.stderr + done.stderr + bad_puk.stderr + unblocked.stderr


def test_ordering_a_bankid_onto_a_token(tmp_path: Path, softhsm: SoftHsm) -> None:
    """``eid-agent enrol --token``: a real issuer, a blank SoftHSM2 token; the keys are made
    on the token, and the new BankID identifies through a real agent, verified with the
    issuer's root and its OCSP responder."""
    from cryptography import x509

    from rp.revocation import http_fetch
    from tests.issuer_kit import IssuerProcess

    softhsm.init_token("anna")
    config = _config(tmp_path, MODULE)
    data = tmp_path / "data"
    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'issuer.db'}") as issuer:
        _, code = issuer.order("198112189876")

        def order(pin: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    str(BIN / "eid-agent"),
                    "enrol",
                    "--token",
                    "anna",
                    "--issuer",
                    issuer.url,
                    "--issuer-ca",
                    str(issuer.tls_cert),
                    "--config",
                    str(config),
                    "--data-dir",
                    str(data),
                    "--lang",
                    "en",
                ],
                input=f"198112189876\n{code}\n{pin}\n",
                capture_output=True,
                text=True,
                env=softhsm.env,
                timeout=120,
                check=False,
            )

        wrong = order("000000")  # the PIN is tried first: the code is not spent on it
        assert wrong.returncode != 0 and "[10085]" in wrong.stderr, wrong.stderr
        assert b"BankID" not in softhsm.tool("anna", "--list-objects")
        done = order(USER_PIN)
        assert done.returncode == 0, done.stderr
        assert "Your BankID on the security key anna is ready: Anna Andersson" in done.stdout
        assert code not in done.stderr + done.stdout and USER_PIN not in done.stderr
        objects = softhsm.tool("anna", "--list-objects")
        assert b"BankID identification" in objects and b"BankID issuing CA" in objects
        assert b"never extractable" in objects  # made on the token, never outside it
        nonce = base64.b64encode(os.urandom(32)).decode()
        with AgentProcess(data, "--config", str(config), env=softhsm.env) as agent:
            agent.ready()
            agent.wait_for_output("token BankID", stream="stderr")
            status, body = agent.request("POST", "/v1/auth", {"nonce": nonce})
            assert status == 201, body
            agent.wait_for_output("PIN for Anna Andersson")
            agent.type(USER_PIN)
            completion = agent.wait_status(body["orderRef"], "complete")["completionData"]
        root = x509.load_pem_x509_certificate((issuer.ca_dir / "root.crt").read_bytes())
        verified = rp.verify_auth(
            completion,
            expected_origin=agent.origin,
            nonce=nonce,
            trust_anchors=[root],
            now=dt.datetime.now(dt.UTC),
            revocation=rp.OcspPolicy(fetch=http_fetch(str(issuer.tls_cert))),
        )
        assert verified.person.personal_number == "198112189876"


def test_the_bank_puts_a_bankid_on_a_token_at_its_desk(
    tmp_path: Path,
    softhsm: SoftHsm,
) -> None:
    softhsm.init_token("desk")

    def personalise(pin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(BIN / "eid-issuer"),
                "personalise-token",
                "--personal-number",
                "198112189876",
                "--name",
                "Anna Andersson",
                "--module",
                MODULE,
                "--token-label",
                "desk",
                "--ca-dir",
                str(tmp_path / "ca"),
            ],
            input=f"{pin}\n",
            capture_output=True,
            text=True,
            env=softhsm.env,
            timeout=60,
            check=False,
        )

    wrong = personalise("000000")
    assert wrong.returncode == 1 and "[10085]" in wrong.stderr and "Traceback" not in wrong.stderr
    done = personalise(USER_PIN)
    assert done.returncode == 0 and "BankID put on token desk" in done.stdout, done.stderr
    token_id = done.stdout.split()[0]
    listing = _run(
        "credentials",
        "list",
        "--json",
        "--data-dir",
        str(tmp_path / "d"),
        "--config",
        str(_config(tmp_path, MODULE)),
        env=softhsm.env,
    )
    (entry,) = json.loads(listing.stdout)
    assert entry["id"] == token_id and entry["kind"] == "token" and entry["state"] == "usable"


def test_a_relay_order_for_a_class2_reader_takes_only_the_pin_pad(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
    tls: tuple[Path, Path],
) -> None:
    """BankID's ``cardReader: class2`` at the relay: the person also has a BankID on file,
    but the agent offers only the token behind the reader's PIN pad, sends no PIN, and
    the result completes at the relay (the pad refuses a PIN sent by the computer)."""
    from agent.credentials import CredentialStore
    from issuer import make_file_credential
    from tests.conftest import ANNA, FAST_KDF, PASSWORD
    from tests.door_kit import console

    softhsm.bankid("anna", token_ca)
    pad = build_pin_pad(tmp_path)
    data = tmp_path / "data"
    now = dt.datetime.now(dt.UTC)
    CredentialStore(data).add(make_file_credential(token_ca, ANNA, PASSWORD, now, kdf=FAST_KDF))
    with _relay_beside(tmp_path, token_ca, tls, pad.module) as (relay, config):
        status, started = relay.call(
            "/rp/v6.0/auth",
            {"endUserIp": "192.0.2.1", "requirement": {"cardReader": "class2"}},
        )
        assert status == 200, started
        pad.type(USER_PIN)
        link = (
            f"eid-agent:///?autostarttoken={started['autoStartToken']}"
            f"&server=https://127.0.0.1:{relay.port}"
        )
        # Enter, then the PIN on the pad
        done = console(["open", link], data, tls, typed="\n", config=config, env=softhsm.env)
        assert done.returncode == 0, done.stderr
        assert "type it on the card reader's keypad" in done.stderr
        assert "BankID on file" not in done.stderr  # not offered: no PIN pad
        collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
        assert collected["status"] == "complete", collected
        assert pad.pending == []


def test_a_phone_order_found_with_a_bankid_on_a_token(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
    tls: tuple[Path, Path],
) -> None:
    """Orders waiting for me, with a BankID on a security key: its PIN (typed wrong
    once, then right) proves the person to the relay, the phone order is listed and
    carried out with the PIN again, and the relay's result names the person."""
    from tests.conftest import ANNA
    from tests.door_kit import console

    softhsm.bankid("anna", token_ca)
    data = tmp_path / "data"
    with _relay_beside(tmp_path, token_ca, tls, MODULE) as (relay, config):
        server = f"https://127.0.0.1:{relay.port}"
        status, started = relay.call(
            "/rp/v6.0/phone/auth",
            {"personalNumber": str(ANNA.personal_number), "callInitiator": "user"},
        )
        assert status == 200, started
        typed = f"000000\n{USER_PIN}\n1\n{USER_PIN}\n"  # wrong, right, pick, sign
        done = console(
            ["waiting", "--relay", server], data, tls, typed=typed, config=config, env=softhsm.env
        )
        assert done.returncode == 0, done.stderr
        assert "The PIN of Anna Andersson's BankID, to look for orders waiting" in done.stderr
        assert "wrong" in done.stderr.lower(), done.stderr  # the token said so; asked again
        assert "You called «Exempelbutiken AB»" in done.stderr, done.stderr
        assert USER_PIN not in done.stderr + done.stdout
        collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
        assert collected["status"] == "complete", collected
        user = collected["completionData"]["user"]
        assert user["personalNumber"] == str(ANNA.personal_number)


def test_a_bankid_with_rsa_keys_on_a_token_signs_relay_orders(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
    tls: tuple[Path, Path],
) -> None:
    """A security key holding RSA-2048 keys (as PIV cards often do): a relay order is
    signed as BankID's XML with RSA-SHA256 — which xmlsec1 verifies — and a phone order
    is found with an RSA proof. A bridge order, whose signedData v2 is ES256 alone, does
    not offer it (tests/test_lockout_selection.py)."""
    import base64

    from tests.conftest import ANNA
    from tests.door_kit import console
    from tests.xml_kit import verified_everywhere

    softhsm.bankid("anna", token_ca, key_type="rsa:2048")
    data = tmp_path / "data"
    with _relay_beside(tmp_path, token_ca, tls, MODULE) as (relay, config):
        server = f"https://127.0.0.1:{relay.port}"
        text = "Jag godkänner villkoren"
        body = {
            "endUserIp": "192.0.2.1",
            "userVisibleData": base64.b64encode(text.encode()).decode(),
        }
        status, started = relay.call("/rp/v6.0/sign", body)
        assert status == 200, started
        link = f"eid-agent:///?autostarttoken={started['autoStartToken']}&server={server}"
        done = console(
            ["open", link], data, tls, typed=f"{USER_PIN}\n", config=config, env=softhsm.env
        )
        assert done.returncode == 0, done.stderr
        collected = relay.call("/rp/v6.0/collect", {"orderRef": started["orderRef"]})[1]
        assert collected["status"] == "complete", collected
        document = base64.b64decode(collected["completionData"]["signature"])
        assert b"xmldsig-more#rsa-sha256" in document
        verified_everywhere(
            collected["completionData"],
            ca=token_ca,
            folder=tmp_path / "xml",
            order_type="sign",
            origin=server,
            order_ref=started["orderRef"],
            text=text,
        )
        status, phone = relay.call(
            "/rp/v6.0/phone/auth",
            {"personalNumber": str(ANNA.personal_number), "callInitiator": "RP"},
        )
        assert status == 200, phone
        typed = f"{USER_PIN}\n1\n{USER_PIN}\n"
        done = console(
            ["waiting", "--relay", server], data, tls, typed=typed, config=config, env=softhsm.env
        )
        assert done.returncode == 0, done.stderr
        collected = relay.call("/rp/v6.0/collect", {"orderRef": phone["orderRef"]})[1]
        assert collected["status"] == "complete", collected
