"""Ordering a BankID on file end to end: a real issuer process (SQLite and PostgreSQL), the
bank's back-office calls, the real ``eid-agent enrol`` wizard, the new credential logging
in through the agent, and revocation seen by the relying-party kit over OCSP."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import rp
from agent.credentials import CredentialStore, KeyPurpose
from rp.revocation import http_fetch
from tests.agent_process import BIN, AgentProcess
from tests.issuer_kit import (
    PG_BIN,
    ConnectProxy,
    Cutter,
    IssuerProcess,
    Postgres,
    agent_order,
    postgres_cluster,
)

pytestmark = pytest.mark.slow

PNR = "198112189876"
PASSWORD = "a-good-long-password"
ORIGIN = "https://bank.example"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'issuer.db'}"
    cluster: Postgres = request.getfixturevalue("pg")
    return cluster.new_database()


@pytest.fixture
def issuer(tmp_path: Path, db_url: str) -> Iterator[IssuerProcess]:
    with IssuerProcess(tmp_path / "ca", db_url) as process:
        yield process


def _order(
    issuer: IssuerProcess, data_dir: Path, code: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return agent_order(data_dir, issuer.url, issuer.tls_cert, PNR, code, PASSWORD, *extra, env=env)


def _log_in(data_dir: Path, issuer: IssuerProcess) -> rp.Verified:
    """The new credential identifies the person through the agent; the relying party
    verifies it against the issuer's root and asks its OCSP responder."""
    nonce = base64.b64encode(os.urandom(32)).decode()
    with AgentProcess(data_dir, "--no-cards") as agent:
        agent.ready()
        status, body = agent.request("POST", "/v1/auth", {"nonce": nonce}, origin=ORIGIN)
        assert status == 201, body
        agent.wait_for_output("Password for Anna Andersson")
        agent.type(PASSWORD)
        done = agent.wait_status(body["orderRef"], "complete")
    root = x509.load_pem_x509_certificate((issuer.ca_dir / "root.crt").read_bytes())
    pinned = rp.OcspPolicy(fetch=http_fetch(str(issuer.tls_cert)))
    return rp.verify_auth(
        done["completionData"],
        expected_origin=ORIGIN,
        nonce=nonce,
        trust_anchors=[root],
        now=dt.datetime.now(dt.UTC),
        revocation=pinned,
    )


def test_order_log_in_revoke(issuer: IssuerProcess, tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    _, code = issuer.order(PNR)
    result = _order(issuer, data_dir, code)
    assert result.returncode == 0, result.stderr
    assert "Your BankID on file is ready: Anna Andersson" in result.stdout
    [info] = CredentialStore(data_dir).credentials()
    assert not info.development and str(info.owner.personal_number) == PNR
    verified = _log_in(data_dir, issuer)
    assert verified.person.personal_number == PNR
    # the bank revokes: the relying party refuses the same credential from then on
    status, body = issuer.call(
        "POST", f"/backoffice/v1/persons/{PNR}/revoke", {"reason": "keyCompromise"}
    )
    assert status == 200 and len(body["revoked"]) == 2
    with pytest.raises(rp.CertificateRevoked, match="keyCompromise"):
        _log_in(data_dir, issuer)
    status, body = issuer.call("GET", f"/backoffice/v1/persons/{PNR}/certificates")
    assert {c["reason"] for c in body["certificates"]} == {"keyCompromise"}
    # the activation code is stored nowhere in clear and logged nowhere
    plain = {code, code.replace("-", "")}
    texts = [result.stdout, result.stderr, issuer.log.read_text()]
    if issuer.db.startswith("sqlite:///"):
        raw = Path(issuer.db.removeprefix("sqlite:///")).read_bytes()
        for suffix in ("-wal", "-shm"):
            extra = Path(issuer.db.removeprefix("sqlite:///") + suffix)
            raw += extra.read_bytes() if extra.exists() else b""
        texts.append(raw.decode("latin-1"))
    else:
        dump = subprocess.run(
            [str(PG_BIN / "pg_dump"), issuer.db], capture_output=True, text=True, check=True
        )
        texts.append(dump.stdout)
    for text in texts:
        for secret in (*plain, PASSWORD):
            assert secret not in text


def test_wrong_code_three_times_blocks_the_order(issuer: IssuerProcess, tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    _, code = issuer.order(PNR)
    for _ in range(2):
        wrong = _order(issuer, data_dir, "AAAA-BBBB-CCCC")
        assert wrong.returncode == 1 and "[10030]" in wrong.stderr
    other = agent_order(data_dir, issuer.url, issuer.tls_cert, "194910112384", code, PASSWORD)
    assert other.returncode == 1 and "[10030]" in other.stderr  # same answer: no hint which
    third = _order(issuer, data_dir, "AAAA-BBBB-CCCC")
    # the same answer as for no order: a guesser never learns there is one, or that it is
    # blocked now; only the holder of the right code is told
    assert third.returncode == 1 and "[10030]" in third.stderr
    right = _order(issuer, data_dir, code)
    assert right.returncode == 1 and "[10031]" in right.stderr
    assert not (data_dir / "tokens").exists() or not any((data_dir / "tokens").iterdir())


def test_cancelled_failed_and_expired_orders(tmp_path: Path, db_url: str) -> None:
    with IssuerProcess(tmp_path / "ca", db_url, "--order-minutes", "0.05") as issuer:
        data_dir = tmp_path / "agent"
        order_id, code = issuer.order(PNR)
        status, _ = issuer.call("POST", f"/backoffice/v1/orders/{order_id}/cancel")
        assert status == 200
        cancelled = _order(issuer, data_dir, code)
        assert cancelled.returncode == 1 and "[10026]" in cancelled.stderr
        order_id, code = issuer.order(PNR)
        assert issuer.call("POST", f"/backoffice/v1/orders/{order_id}/fail")[0] == 200
        failed = _order(issuer, data_dir, code)
        assert failed.returncode == 1 and "[10027]" in failed.stderr
        _, code = issuer.order(PNR)
        time.sleep(3.2)  # the order lives 3 s here
        expired = _order(issuer, data_dir, code)
        assert expired.returncode == 1 and "[10032]" in expired.stderr
        assert CredentialStore(data_dir).credentials() == []
        # lowercase, spaces, O for 0: what people type still works
        _, code = issuer.order(PNR)
        typed = code.lower().replace("-", " ").replace("0", "o")
        assert _order(issuer, data_dir, typed).returncode == 0


def test_answer_lost_after_issuing_the_retry_gets_the_same_certificates(
    tmp_path: Path, db_url: str
) -> None:
    with IssuerProcess(tmp_path / "ca", db_url, tls=False) as issuer:
        cutter = Cutter(issuer.port, "/certificates")
        try:
            _, code = issuer.order(PNR)
            data_dir = tmp_path / "agent"
            result = agent_order(data_dir, cutter.url, issuer.tls_cert, PNR, code, PASSWORD)
        finally:
            cutter.close()
        assert result.returncode == 0, result.stderr
        assert cutter.cuts == 1 and "ServerDisconnected" in result.stderr
        _, body = issuer.call("GET", f"/backoffice/v1/persons/{PNR}/certificates")
        assert len(body["certificates"]) == 2  # issued once, delivered on the retry
        [info] = CredentialStore(data_dir).credentials()
        token = CredentialStore(data_dir).unlock(info.id, PASSWORD)
        leaf = x509.load_der_x509_certificate(token.certificate_chain(KeyPurpose.SIGNATURE)[0])
        assert f"{leaf.serial_number:x}" in {c["serial"] for c in body["certificates"]}


def test_an_agent_killed_after_the_issuer_issued_finishes_on_the_next_try(
    tmp_path: Path, db_url: str
) -> None:
    """The agent dies at the worst instant: the issuer has issued (the code is spent) and
    the answer is on its way. The next try with the same code and password picks the
    enrolment up; another password cannot open what waited, and does not lose it."""
    data_dir = tmp_path / "agent"
    with IssuerProcess(tmp_path / "ca", db_url, tls=False) as issuer:
        children: list[subprocess.Popen[str]] = []
        cutter = Cutter(issuer.port, "/certificates", on_cut=lambda: children[0].kill())
        try:
            _, code = issuer.order(PNR)
            children.append(
                subprocess.Popen(
                    [
                        str(BIN / "eid-agent"),
                        "enrol",
                        "--data-dir",
                        str(data_dir),
                        "--issuer",
                        cutter.url,
                        "--lang",
                        "en",
                        "--config",
                        str(tmp_path / "none.toml"),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
            children[0].communicate(f"{PNR}\n{code}\n{PASSWORD}\n{PASSWORD}\n", timeout=60)
            assert children[0].returncode == -signal.SIGKILL and cutter.cuts == 1
            assert CredentialStore(data_dir).credentials() == []
            waiting = (data_dir / "tokens" / "enrolment.pending").read_bytes()
            for secret in (PASSWORD, code, PNR):
                assert secret.encode() not in waiting  # sealed, as a credential's keys are
            other = agent_order(
                data_dir, cutter.url, issuer.tls_cert, PNR, code, "another-long-password"
            )
            assert other.returncode == 1 and "[10074]" in other.stderr
            again = agent_order(data_dir, cutter.url, issuer.tls_cert, PNR, code, PASSWORD)
            once_more = agent_order(data_dir, cutter.url, issuer.tls_cert, PNR, code, PASSWORD)
        finally:
            cutter.close()
        assert again.returncode == 0, again.stderr
        assert "resumed after an interruption" in again.stderr
        _, body = issuer.call("GET", f"/backoffice/v1/persons/{PNR}/certificates")
        assert len(body["certificates"]) == 2  # issued once, to the keys that waited
    [info] = CredentialStore(data_dir).credentials()
    token = CredentialStore(data_dir).unlock(info.id, PASSWORD)
    leaf = x509.load_der_x509_certificate(token.certificate_chain(KeyPurpose.SIGNATURE)[0])
    assert f"{leaf.serial_number:x}" in {c["serial"] for c in body["certificates"]}
    assert not (data_dir / "tokens" / "enrolment.pending").exists()
    # had it died after saving, before it could say so: the same order finds its credential,
    # and says that it is there (not that this run made it)
    assert once_more.returncode == 1, once_more.stderr
    assert "this order was finished before" in once_more.stderr
    assert "[10076] You already have this BankID" in once_more.stderr
    assert [c.id for c in CredentialStore(data_dir).credentials()] == [info.id]
    assert code.encode() not in (data_dir / "tokens" / "enrolment.done").read_bytes()


def test_the_configured_proxy_is_used_and_a_dead_one_says_so(
    issuer: IssuerProcess, tmp_path: Path
) -> None:
    proxy = ConnectProxy(require_auth="anna:proxy-secret")
    try:
        _, code = issuer.order(PNR)
        config = tmp_path / "config.toml"
        config.write_text(f'[network]\nproxy = "http://anna:proxy-secret@127.0.0.1:{proxy.port}"\n')
        result = _order(issuer, tmp_path / "agent", code, "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert proxy.seen == [f"CONNECT 127.0.0.1:{issuer.port}"] * 2
        assert f"via proxy http://127.0.0.1:{proxy.port}" in result.stderr
        assert "proxy-secret" not in result.stderr
    finally:
        proxy.close()
    # the environment's proxy, when nothing is configured
    env_proxy = ConnectProxy()
    try:
        _, code = issuer.order(PNR)
        result = _order(
            issuer,
            tmp_path / "agent2",
            code,
            env={"HTTPS_PROXY": env_proxy.url, "NO_PROXY": "example.org"},
        )
        assert result.returncode == 0, result.stderr
        assert len(env_proxy.seen) == 2
    finally:
        env_proxy.close()
    dead = ConnectProxy()
    dead.close()
    _, code = issuer.order(PNR)
    result = _order(issuer, tmp_path / "agent3", code, "--proxy", dead.url)
    assert result.returncode == 1
    assert "[10006] Communication error" in result.stderr and "proxy" in result.stderr
    assert f"via proxy http://127.0.0.1:{dead.port}" in result.stderr
    assert not (tmp_path / "agent3" / "tokens").exists() or not any(
        (tmp_path / "agent3" / "tokens").iterdir()
    )


def test_removing_offers_revocation_at_the_issuer(issuer: IssuerProcess, tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    _, code = issuer.order(PNR)
    assert _order(issuer, data_dir, code).returncode == 0
    [info] = CredentialStore(data_dir).credentials()
    removed = subprocess.run(
        [
            str(BIN / "eid-agent"),
            "credentials",
            "remove",
            info.id,
            "--data-dir",
            str(data_dir),
            "--issuer",
            issuer.url,
            "--issuer-ca",
            str(issuer.tls_cert),
            "--lang",
            "en",
            "--config",
            str(tmp_path / "none.toml"),
        ],
        input=f"y\n{PASSWORD}\ny\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert "Should the bank also revoke the BankID?" in removed.stderr
    assert "The bank has revoked the BankID." in removed.stderr
    assert CredentialStore(data_dir).credentials() == []
    _, body = issuer.call("GET", f"/backoffice/v1/persons/{PNR}/certificates")
    assert {c["reason"] for c in body["certificates"]} == {"holderRequest"}


def test_back_office_needs_its_token_and_bad_input_gets_clear_answers(
    issuer: IssuerProcess,
) -> None:
    assert issuer.call("POST", "/backoffice/v1/orders", {}, token=None)[0] == 401
    assert issuer.call("POST", "/backoffice/v1/orders", {}, token="wrong")[0] == 401
    status, body = issuer.call(
        "POST", "/backoffice/v1/orders", {"personalNumber": "197212010091", "name": "X"}
    )
    assert status == 400 and body["error"] == "badRequest"
    status, body = issuer.call("POST", "/enrol/v1/enrolments", b"not json", token=None)
    assert status == 400 and "Traceback" not in str(body)
    status, body = issuer.call(
        "POST",
        "/enrol/v1/enrolments/x/certificates",
        {"identificationCsr": "-", "signatureCsr": "-"},
        token="nope",
    )
    assert status == 400 and body["error"] == "badRequest"
    status, body = issuer.call("POST", "/backoffice/v1/orders/nope/cancel")
    assert status == 404


def test_openssl_reads_our_ocsp_answers(issuer: IssuerProcess, tmp_path: Path) -> None:
    """Interoperability: OpenSSL's own OCSP client asks our responder."""
    data_dir = tmp_path / "agent"
    _, code = issuer.order(PNR)
    assert _order(issuer, data_dir, code).returncode == 0
    [info] = CredentialStore(data_dir).credentials()
    chain = (
        CredentialStore(data_dir).unlock(info.id, PASSWORD).certificate_chain(KeyPurpose.SIGNATURE)
    )
    leaf = tmp_path / "leaf.pem"
    pem = x509.load_der_x509_certificate(chain[0]).public_bytes(serialization.Encoding.PEM)
    leaf.write_bytes(pem)
    result = subprocess.run(
        [
            OPENSSL,
            "ocsp",
            "-issuer",
            str(issuer.ca_dir / "issuing.crt"),
            "-cert",
            str(leaf),
            "-url",
            f"{issuer.url}/ocsp",
            "-CAfile",
            str(issuer.ca_dir / "root.crt"),
            "-verify_other",
            str(issuer.ca_dir / "issuing.crt"),
            "-no_cert_checks",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "SSL_CERT_FILE": str(issuer.tls_cert)},
    )
    assert re.search(r": good", result.stdout), result.stdout + result.stderr
    assert "Response verify OK" in result.stderr


def _start(issuer: IssuerProcess, code: str, pnr: str = PNR) -> tuple[int, Any]:
    return issuer.call(
        "POST", "/enrol/v1/enrolments", {"personalNumber": pnr, "activationCode": code}, token=None
    )


def test_two_issuer_processes_on_one_postgresql_count_tries_together(
    pg: Postgres, tmp_path: Path
) -> None:
    url = pg.new_database()
    # the second process shares the CA folder (the CA key and activation.key)
    with (
        IssuerProcess(tmp_path / "ca", url) as first,
        IssuerProcess(tmp_path / "ca", url) as second,
    ):
        _, code = first.order(PNR)

        def wrong(i: int) -> tuple[int, Any]:
            return _start((first, second)[i % 2], f"WRONG-{i:04d}-XXXX")

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(wrong, range(6)))
        # every guess gets the answer a number without an order gets (nothing to learn)
        assert [body["error"] for _, body in answers] == ["wrongCodeOrNumber"] * 6
        assert _start(second, code)[1]["error"] == "codeBlocked"  # counted together
        _, fresh = second.order(PNR)  # a new order from either process
        for i in range(2):  # two wrong guesses, one through each process, block nothing
            assert _start((first, second)[i], f"WRONG-{i:04d}-YYYY")[0] == 403
        status, body = _start(first, fresh)
        assert status == 201, body


def test_rate_limit_per_client_address(tmp_path: Path) -> None:
    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'i.db'}", "--rate", "2") as issuer:
        statuses = [_start(issuer, "AAAA-BBBB-CCCC")[0] for _ in range(12)]
        assert 429 in statuses and statuses[0] == 403
        status, body = _start(issuer, "AAAA-BBBB-CCCC")
        assert status == 429 and body["error"] == "rateLimited"


async def test_the_same_order_through_the_ui_port(tmp_path: Path) -> None:
    """What the desktop UI will drive: mistakes are asked again, with the reason shown."""
    from agent.enrol.client import IssuerConnection, enrol_with_ui
    from agent.ui import EnrolmentAnswer
    from eidcore.messages import MessageCode
    from tests.bridge_kit import ScriptedUi
    from tests.conftest import FAST_KDF

    with IssuerProcess(tmp_path / "ca", f"sqlite:///{tmp_path / 'i.db'}") as issuer:
        _, code = issuer.order(PNR)
        ui = ScriptedUi()
        for answer in (
            EnrolmentAnswer("19811218-987", code, PASSWORD),  # a digit short
            EnrolmentAnswer(PNR, code, "short"),
            EnrolmentAnswer(PNR, "AAAA-BBBB-CCCC", PASSWORD),
            EnrolmentAnswer(PNR, code, PASSWORD),
        ):
            ui.enrolments.put_nowait(answer)
        store = CredentialStore(tmp_path / "agent", kdf=FAST_KDF)
        info = await enrol_with_ui(
            ui,
            IssuerConnection(issuer.url, str(issuer.tls_cert)),
            store,
            lambda: dt.datetime.now(dt.UTC),
            attempts=5,
            kdf=FAST_KDF,
        )
        assert info is not None and str(info.owner.personal_number) == PNR
        assert [p.code if p else None for p in ui.problems] == [
            None,
            MessageCode.PERSONAL_NUMBER_FORMAT,
            MessageCode.PASSWORD_TOO_WEAK,
            MessageCode.WRONG_CODE,
        ]
        # a refusal that asking again cannot mend ends on its message
        order_id, code = issuer.order(PNR)
        issuer.call("POST", f"/backoffice/v1/orders/{order_id}/cancel")
        ui.enrolments.put_nowait(EnrolmentAnswer(PNR, code, PASSWORD))
        assert (
            await enrol_with_ui(
                ui,
                IssuerConnection(issuer.url, str(issuer.tls_cert)),
                store,
                lambda: dt.datetime.now(dt.UTC),
            )
            is None
        )
        assert ui.told[-1].code is MessageCode.ORDER_CANCELLED


def test_a_code_used_again_after_success_says_you_have_the_bankid(
    issuer: IssuerProcess, tmp_path: Path
) -> None:
    data_dir = tmp_path / "agent"
    _, code = issuer.order(PNR)
    assert _order(issuer, data_dir, code).returncode == 0
    [info] = CredentialStore(data_dir).credentials()
    # the BankID is copied to another folder (another computer), where the person then
    # types the same code again from their note
    other = tmp_path / "other"
    CredentialStore(other).import_file(data_dir / "tokens" / f"{info.id}.eidtoken")
    again = _order(issuer, other, code)
    assert again.returncode == 1
    assert "[10076] You already have this BankID" in again.stderr, again.stderr
    assert "[10074]" not in again.stderr and "Anna Andersson" in again.stderr


def test_a_code_used_again_in_the_same_folder_reports_no_success(
    issuer: IssuerProcess, tmp_path: Path
) -> None:
    """The same code and a new password in the folder the BankID was saved to: nothing
    happens, so nothing may say it did — and the new password must not be the one that
    now seems to work (it used to print "ready", ignore it, and count it as wrong)."""
    data_dir = tmp_path / "agent"
    _, code = issuer.order(PNR)
    assert _order(issuer, data_dir, code).returncode == 0
    again = agent_order(data_dir, issuer.url, issuer.tls_cert, PNR, code, "another-long-password")
    assert again.returncode == 1, again.stderr
    assert "[10076] You already have this BankID" in again.stderr, again.stderr
    assert "if you typed another one now, it was not saved" in again.stderr
    assert "BankID on file is ready" not in again.stdout + again.stderr
    [info] = CredentialStore(data_dir).credentials()
    store = CredentialStore(data_dir)
    store.unlock(info.id, PASSWORD)  # the first password still opens it
    assert store.credentials()[0].tries_left == info.tries_left  # nothing counted as wrong


def test_the_wizard_checks_each_answer_as_it_is_typed(
    issuer: IssuerProcess, tmp_path: Path
) -> None:
    """A mistyped number, a code of the wrong shape or a short password is said at once
    and asked again, not found out after the password was typed twice."""
    data_dir = tmp_path / "agent"
    _, code = issuer.order(PNR)
    typed = ["19811218987", PNR, "ABCD-EFGH", code, "short", PASSWORD, PASSWORD]
    result = subprocess.run(
        [
            str(BIN / "eid-agent"),
            "enrol",
            "--data-dir",
            str(data_dir),
            "--issuer",
            issuer.url,
            "--issuer-ca",
            str(issuer.tls_cert),
            "--lang",
            "en",
            "--config",
            str(tmp_path / "no-config.toml"),
        ],
        input="".join(f"{line}\n" for line in typed),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert err.index("[10034]") < err.index("Activation code")  # before the code is asked
    assert err.index("[10030]") < err.index("New password")  # before the password
    assert err.index("[10043]") < err.index("Repeat the new password")  # before repeating
    assert "Your BankID on file is ready" in result.stdout


def test_an_untrusted_issuer_certificate_has_its_own_message(
    issuer: IssuerProcess, tmp_path: Path
) -> None:
    _, code = issuer.order(PNR)
    # the issuer's development certificate is not given: the system's CAs do not know it
    result = subprocess.run(
        [
            str(BIN / "eid-agent"),
            "enrol",
            "--data-dir",
            str(tmp_path / "agent"),
            "--issuer",
            issuer.url,
            "--lang",
            "en",
            "--config",
            str(tmp_path / "none.toml"),
        ],
        input=f"{PNR}\n{code}\n{PASSWORD}\n{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "[10077] The bank's server could not be verified" in result.stderr, result.stderr
    assert "[10006]" not in result.stderr and "Traceback" not in result.stderr
