"""The relay's BankID v6.0 API driven by a client library nobody here wrote — pybankid,
sync and async — with a relying party's TLS client certificate, and the person's real
agent (``eid-agent open LINK`` in the console, the password typed) completing the order.
Only the base URL, the certificate and the CA differ from a site talking to BankID."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bankid import BankIDAsyncClient, BankIDClient
from bankid.exceptions import BankIDError, InvalidParametersError

from issuer import CertificateAuthority
from tests.agent_process import BIN
from tests.conftest import ANNA, PASSWORD
from tests.door_kit import console, link, open_link
from tests.ocsp_kit import Responder, ocsp_responder
from tests.relay_kit import RETURN
from tests.relay_process_kit import RelayProcess, free_port
from tests.xml_kit import verified_everywhere

# pybankid's constructors build an httpx client with ``cert=``, which httpx deprecates;
# the sites here replace that client with one whose TLS context holds the certificate.
pytestmark = pytest.mark.filterwarnings("ignore:`cert=...` is deprecated:DeprecationWarning")

BIDI = base64.b64encode("a\u202eb".encode()).decode()  # a right-to-left override
ENDPOINTS = ("auth", "phone/auth", "sign", "phone/sign", "collect", "cancel")


class Site:
    """A site's BankID client, pointed at the relay as docs/relay-api.md says."""

    def __init__(self, port: int, server_ca: Path, cert: tuple[Path, Path]) -> None:
        self.base = f"https://127.0.0.1:{port}/rp/v6.0/"
        self.context = ssl.create_default_context(cafile=str(server_ca))
        self.context.load_cert_chain(str(cert[0]), str(cert[1]))
        self.cert = (str(cert[0]), str(cert[1]))

    def _point(self, client: BankIDClient | BankIDAsyncClient) -> None:
        for name in ENDPOINTS:
            attribute = "_" + name.replace("/", "_") + "_endpoint"
            setattr(client, attribute, self.base + name)

    def sync(self) -> BankIDClient:
        client = BankIDClient(certificates=self.cert, test_server=True)
        self._point(client)
        client.client = httpx.Client(
            verify=self.context, headers={"Content-Type": "application/json"}, timeout=10
        )
        return client

    def asynchronous(self) -> BankIDAsyncClient:
        client = BankIDAsyncClient(certificates=self.cert, test_server=True)
        self._point(client)
        client.client = httpx.AsyncClient(
            verify=self.context, headers={"Content-Type": "application/json"}, timeout=10
        )
        return client


@pytest.fixture
def site(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path]
) -> Iterator[tuple[Site, RelayProcess]]:
    with ocsp_responder(ca) as responder:
        yield from _site(tmp_path, ca, tls, responder)


def _site(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path], responder: Responder
) -> Iterator[tuple[Site, RelayProcess]]:
    """The relay requires the issuer's OCSP answer on every result, as a production one
    does: the test certificates name no responder, so the relay names the issuer's."""
    port = free_port()
    folder = tmp_path / "relay"
    folder.mkdir()
    (folder / "issuer-root.pem").write_bytes(_pem(ca))
    config = folder / "relay.toml"
    config.write_text(f'origin = "https://127.0.0.1:{port}"\ntrust = ["issuer-root.pem"]\n')
    argv = ["party-cert", "--config", str(config), "--party", "shop", "--password", "pw"]
    made = subprocess.run(
        [str(BIN / "eid-relay"), *argv, "--out", str(tmp_path / "certs")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    sha = next(x for x in made.splitlines() if "client_cert_sha256" in x).split('"')[1]
    config.write_text(
        config.read_text() + f'\n[[party]]\nid = "shop"\nname = "Exempelbutiken AB"\n'
        f'client_cert_sha256 = "{sha}"\nreturn_urls = ["{RETURN}"]\n'
        f'\n[ocsp]\nrequired = true\nresponder = "{responder.url}"\n'
    )
    (tmp_path / "config.toml").write_text(f'[relay]\nallow = ["127.0.0.1:{port}"]\n')
    process = RelayProcess(
        config,
        f"sqlite:///{tmp_path / 'relay.db'}",
        tls,
        "--client-ca",
        str(folder / "rp-ca" / "ca.pem"),
        port=port,
    )
    certs = (tmp_path / "certs" / "shop.pem", tmp_path / "certs" / "shop.key")
    yield Site(port, tls[0], certs), process
    if process.proc.poll() is None:
        assert "Traceback" not in process.stop()


def _pem(ca: CertificateAuthority) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return ca.root_certificate.public_bytes(serialization.Encoding.PEM)


def test_pybankid_auth_to_complete_with_the_real_agent(
    site: tuple[Site, RelayProcess],
    person: Path,
    tls: tuple[Path, Path],
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    client_site, process = site
    client = client_site.sync()
    started = client.authenticate(end_user_ip="192.0.2.1")
    assert set(started) == {"orderRef", "autoStartToken", "qrStartToken", "qrStartSecret"}
    pending = client.collect(started["orderRef"])
    assert (pending["status"], pending["hintCode"]) == ("pending", "outstandingTransaction")
    server = f"https://127.0.0.1:{process.port}"
    done = open_link(link(started["autoStartToken"], server), person, tls)
    assert done.returncode == 0, done.stderr
    collected = client.collect(started["orderRef"])
    assert collected["status"] == "complete", collected
    completion = collected["completionData"]
    assert set(completion) == {
        "user",
        "device",
        "bankIdIssueDate",
        "stepUp",
        "signature",
        "ocspResponse",
    }
    assert completion["user"]["personalNumber"] == str(ANNA.personal_number)
    assert completion["device"]["ipAddress"] == "127.0.0.1" and completion["device"]["uhi"]
    verified_everywhere(
        completion,
        ca=ca,
        folder=tmp_path / "xml",
        order_type="auth",
        origin=server,
        order_ref=started["orderRef"],
    )


def test_pybankid_sign_with_text_and_cancel(
    site: tuple[Site, RelayProcess],
    person: Path,
    tls: tuple[Path, Path],
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    client_site, process = site
    client = client_site.sync()
    text = "Jag godkänner köpet av en cykel för 4 995 kr."
    started = client.sign(
        end_user_ip="192.0.2.1", user_visible_data=text, user_non_visible_data="order 17"
    )
    server = f"https://127.0.0.1:{process.port}"
    done = open_link(link(started["autoStartToken"], server), person, tls)
    assert done.returncode == 0, done.stderr
    assert text in done.stderr  # the console showed exactly the text the site sent
    collected = client.collect(started["orderRef"])
    assert collected["status"] == "complete"
    verified = verified_everywhere(
        collected["completionData"],
        ca=ca,
        folder=tmp_path / "xml",
        order_type="sign",
        origin=server,
        order_ref=started["orderRef"],
        text=text,
        non_visible=b"order 17",
    )
    assert verified.content.visible == text
    # cancel answers {} and the order then reads cancelled; cancelling it again is refused
    other = client.authenticate(end_user_ip="192.0.2.1")
    assert client.cancel(other["orderRef"]) is True
    assert client.collect(other["orderRef"])["hintCode"] == "cancelled"
    with pytest.raises(InvalidParametersError):
        client.cancel(other["orderRef"])


def test_pybankid_wrong_order_refs_and_two_orders_for_one_person(
    site: tuple[Site, RelayProcess],
) -> None:
    client = site[0].sync()
    for ref in ("8b0e9c2e-0000-4000-8000-000000000000", "x" * 64):
        with pytest.raises(InvalidParametersError):
            client.collect(ref)
    number = str(ANNA.personal_number)
    first = client.authenticate(end_user_ip="192.0.2.1", requirement={"personalNumber": number})
    with pytest.raises(BankIDError) as caught:
        client.authenticate(end_user_ip="192.0.2.1", requirement={"personalNumber": number})
    assert type(caught.value).__name__ == "AlreadyInProgressError"
    assert client.collect(first["orderRef"])["hintCode"] == "cancelled"  # as BankID does


def test_pybankid_async_and_what_no_agent_can_do(site: tuple[Site, RelayProcess]) -> None:
    async def run() -> None:
        client = site[0].asynchronous()
        started = await client.authenticate(end_user_ip="192.0.2.1", requirement={"mrtd": True})
        failed = await client.collect(started["orderRef"])
        assert (failed["status"], failed["hintCode"]) == ("failed", "notSupportedByUserApp")
        with pytest.raises(InvalidParametersError):
            await client.authenticate(
                end_user_ip="192.0.2.1", requirement={"certificatePolicies": ["1.2.752.78.1.5"]}
            )
        await client.client.aclose()

    asyncio.run(run())


def test_unknown_fields_and_hostile_values_are_refused_by_name(
    site: tuple[Site, RelayProcess],
) -> None:
    client = site[0].sync()
    for body, said in (
        ({"endUserIp": "192.0.2.1", "web": {"userAgent": "x" * 300}}, "web.userAgent"),
        ({"endUserIp": "192.0.2.1", "requirement": {"cardReader": "class3"}}, "cardReader"),
        ({"endUserIp": "192.0.2.1", "returnRisk": "yes"}, "returnRisk"),
        ({"endUserIp": "192.0.2.1", "personalNumber": "198112189876"}, "unknown field"),
        ({"endUserIp": "not an address"}, "endUserIp"),
        (
            {
                "endUserIp": "192.0.2.1",
                "userVisibleData": base64.b64encode("a\u202eb".encode()).decode(),
            },
            "userVisibleData",
        ),
    ):
        answer = client.client.post(client_base(client) + "auth", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["errorCode"] == "invalidParameters"
        assert said in answer.json()["details"], answer.json()
    assert client.collect(client.authenticate(end_user_ip="192.0.2.1")["orderRef"])


def client_base(client: BankIDClient) -> str:
    return str(client._auth_endpoint).removesuffix("auth")


def test_bankid6_start_collect_to_complete(
    site: tuple[Site, RelayProcess],
    person: Path,
    tls: tuple[Path, Path],
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    """bankid6 (requests underneath) with its production settings pointed at the relay:
    its certificate pair and CA files, then its base URL. requests lets
    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override ``verify``: they must be unset."""
    from bankid6 import BankIdClient

    client_site, process = site
    saved = {
        k: os.environ.pop(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if k in os.environ
    }
    try:
        client = BankIdClient(
            prod_env=True,
            cert_pem=client_site.cert[0],
            key_pem=client_site.cert[1],
            ca_pem=str(tls[0]),
        )
        client.api_url = client_site.base
        started = client.auth(endUserIp="192.0.2.1")
        assert client.collect().hintCode == "outstandingTransaction"
        server = f"https://127.0.0.1:{process.port}"
        done = open_link(link(started.autoStartToken, server), person, tls)
        assert done.returncode == 0, done.stderr
        collected = client.collect()
        assert collected.status == "complete"
        assert collected.completionData.user.personalNumber == str(ANNA.personal_number)
        verified_everywhere(
            {"signature": collected.completionData.signature},
            ca=ca,
            folder=tmp_path / "xml",
            order_type="auth",
            origin=server,
            order_ref=started.orderRef,
        )
    finally:
        os.environ.update(saved)


NODE_CLIENT = Path(__file__).parent / "node" / "bankid-client.cjs"  # ./dev setup: npm ci


def _node(
    site: Site, tls: tuple[Path, Path], *command: str, background: bool = False
) -> subprocess.Popen[str] | dict[str, object]:
    pfx = str(Path(site.cert[0]).with_suffix(".p12"))
    argv = ["node", str(NODE_CLIENT), site.base, pfx, "pw", str(tls[0]), *command]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


@pytest.mark.parametrize("kind", ["auth", "sign"])
def test_npm_bankid_to_complete_with_await_pending_collect(
    site: tuple[Site, RelayProcess],
    person: Path,
    tls: tuple[Path, Path],
    kind: str,
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    """npm ``bankid`` 3.2.1's BankIdClientV6 in production mode with a PKCS#12 client
    certificate: it starts the order, draws BankID's QR text from the two QR values, and
    its ``awaitPendingCollect`` resolves when the person's agent has completed."""
    client_site, process = site
    text = "Köp av **cykel**, 4 995 kr"
    started = _node(client_site, tls, *(("auth",) if kind == "auth" else ("sign", text)))
    assert isinstance(started, dict)
    assert str(started["qrText"]).startswith(f"bankid.{started['qrStartToken']}.0.")
    waiting = _node(client_site, tls, "await", str(started["orderRef"]), background=True)
    assert isinstance(waiting, subprocess.Popen)
    server = f"https://127.0.0.1:{process.port}"
    done = open_link(link(str(started["autoStartToken"]), server), person, tls)
    assert done.returncode == 0, done.stderr
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, out + err
    collected = json.loads(out)
    assert collected["status"] == "complete"
    assert collected["completionData"]["user"]["personalNumber"] == str(ANNA.personal_number)
    verified_everywhere(
        collected["completionData"],
        ca=ca,
        folder=tmp_path / "xml",
        order_type=kind,
        origin=server,
        order_ref=str(started["orderRef"]),
        text=None if kind == "auth" else text,
    )


def test_npm_bankid_sees_bankids_errors(
    site: tuple[Site, RelayProcess], tls: tuple[Path, Path]
) -> None:
    client_site, _ = site
    pfx = str(Path(client_site.cert[0]).with_suffix(".p12"))
    argv = ["node", str(NODE_CLIENT), client_site.base, pfx, "pw", str(tls[0]), "cancel", "x" * 36]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["errorCode"] == "invalidParameters"


def test_pybankid_phone_auth_found_by_the_persons_agent(
    site: tuple[Site, RelayProcess],
    person: Path,
    tls: tuple[Path, Path],
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    """BankID's phone/auth from pybankid: no link; the person opens "Orders waiting for
    me" (``eid-agent waiting``), proves their BankID with its password, sees who called
    whom, picks the order and signs it in the usual dialog."""
    client_site, process = site
    client = client_site.sync()
    text = "Samtal om ditt bolån"
    started = client.phone_authenticate(
        personal_number=str(ANNA.personal_number),
        call_initiator="RP",
        user_visible_data=text,
    )
    assert set(started) == {"orderRef"}
    server = f"https://127.0.0.1:{process.port}"
    waiting = ["waiting", "--relay", server]
    typed = f"{PASSWORD}\n1\n{PASSWORD}\n"  # prove, pick the first, sign
    done = console(waiting, person, tls, typed=typed)
    assert done.returncode == 0, done.stderr
    # the list and the dialog both say who called whom
    said = "«Exempelbutiken AB» called you. Go on only if you expected the call"
    assert done.stderr.count(said) == 2, done.stderr
    assert text in done.stderr and PASSWORD not in done.stderr + done.stdout
    collected = client.collect(started["orderRef"])
    assert collected["status"] == "complete", collected
    verified_everywhere(
        collected["completionData"],
        ca=ca,
        folder=tmp_path / "xml",
        order_type="auth",
        origin=server,
        order_ref=started["orderRef"],
        text=text,
    )
    # nothing more waits: the agent says so
    again = console(waiting, person, tls, typed=f"{PASSWORD}\n")
    assert again.returncode == 0 and "No orders are waiting for you" in again.stderr, again.stderr
