"""The relying-party kit against real completions from a real bridge."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import rp
from agent.credentials import CredentialStore, KeyPurpose
from eidcore import signeddata
from issuer import CertificateAuthority
from tests.bridge_kit import ORIGIN, Bridge, b64
from tests.conftest import ANNA, PASSWORD, MakeToken
from tests.relay_kit import unlocked

TEXT = "Jag intygar att uppgifterna stämmer."


async def _complete(bridge: Bridge, kind: str, nonce: str, **fields: Any) -> dict[str, Any]:
    status, body = await bridge.post(f"/v1/{kind}", {"nonce": nonce, **fields})
    assert status == 201, body
    await bridge.ui.secrets.put(PASSWORD)
    done = await bridge.wait_for(body["orderRef"], "complete")
    return dict(done["completionData"])


@pytest.fixture
async def completions(bridge: Bridge) -> dict[str, Any]:
    store = rp.NonceStore()
    now = dt.datetime.now(dt.UTC)
    auth_nonce, sign_nonce = store.issue("s1", now), store.issue("s1", now)
    return {
        "auth": await _complete(bridge, "auth", auth_nonce),
        "auth_nonce": auth_nonce,
        "sign": await _complete(
            bridge, "sign", sign_nonce, userVisibleData=b64(TEXT), userNonVisibleData=b64(b"ref:42")
        ),
        "sign_nonce": sign_nonce,
        "store": store,
    }


def _auth(c: dict[str, Any], anchors: list, **over: Any) -> rp.Verified:  # type: ignore[type-arg]
    kw: dict[str, Any] = {
        "expected_origin": ORIGIN,
        "nonce": c["auth_nonce"],
        "trust_anchors": anchors,
        "now": dt.datetime.now(dt.UTC),
    }
    response = over.pop("response", c["auth"])
    kw.update(over)
    return rp.verify_auth(response, **kw)


def _sign(c: dict[str, Any], anchors: list, **over: Any) -> rp.Verified:  # type: ignore[type-arg]
    kw: dict[str, Any] = {
        "expected_origin": ORIGIN,
        "nonce": c["sign_nonce"],
        "trust_anchors": anchors,
        "now": dt.datetime.now(dt.UTC),
        "user_visible_data": TEXT,
        "user_non_visible_data": b"ref:42",
    }
    response = over.pop("response", c["sign"])
    kw.update(over)
    return rp.verify_sign(response, **kw)


async def test_identification_verifies(
    completions: dict[str, Any], ca: CertificateAuthority
) -> None:
    verified = _auth(completions, [ca.root_certificate])
    assert verified.person == rp.Person("198112189876", "Anna Andersson", "Anna", "Andersson")
    assert verified.type == "auth" and verified.token_kind == "file"


async def test_signature_verifies(completions: dict[str, Any], ca: CertificateAuthority) -> None:
    assert _sign(completions, [ca.root_certificate]).person.personal_number == "198112189876"


async def test_relayed_to_another_site_fails(
    completions: dict[str, Any], ca: CertificateAuthority
) -> None:
    with pytest.raises(rp.WrongOrigin):
        _auth(completions, [ca.root_certificate], expected_origin="https://other.example")


async def test_other_nonce_fails(completions: dict[str, Any], ca: CertificateAuthority) -> None:
    with pytest.raises(rp.UnknownNonce):
        _auth(completions, [ca.root_certificate], nonce=completions["sign_nonce"])


async def test_key_use_separation(completions: dict[str, Any], ca: CertificateAuthority) -> None:
    """An identification response presented as a signature, and vice versa, fail."""
    with pytest.raises(rp.WrongOrderType):
        _sign(
            completions,
            [ca.root_certificate],
            response=completions["auth"],
            nonce=completions["auth_nonce"],
        )
    with pytest.raises(rp.WrongOrderType):
        _auth(
            completions,
            [ca.root_certificate],
            response=completions["sign"],
            nonce=completions["sign_nonce"],
        )
    chains = {k: completions[k]["certificateChain"] for k in ("auth", "sign")}
    id_leaf = base64.b64decode(chains["auth"][0])
    sig_leaf = base64.b64decode(chains["sign"][0])
    assert id_leaf != sig_leaf


async def test_untrusted_chain_fails(completions: dict[str, Any]) -> None:
    stranger = CertificateAuthority.create("Stranger", dt.datetime.now(dt.UTC))
    with pytest.raises(rp.UntrustedChain):
        _auth(completions, [stranger.root_certificate])
    with pytest.raises(rp.UntrustedChain):
        _auth(completions, [])


async def test_time_skew_and_expiry(completions: dict[str, Any], ca: CertificateAuthority) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    with pytest.raises(rp.TimeSkew):
        _auth(completions, [ca.root_certificate], now=later)
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=800)
    with pytest.raises(rp.CertificateExpired):
        _auth(completions, [ca.root_certificate], now=far, max_skew=dt.timedelta(days=900))


async def test_tampering_fails(completions: dict[str, Any], ca: CertificateAuthority) -> None:
    forged = dict(completions["auth"])
    signed = json.loads(base64.b64decode(forged["signedData"]))
    signed["orderRef"] = "other"
    forged["signedData"] = base64.b64encode(json.dumps(signed).encode()).decode()
    with pytest.raises(rp.BadSignature):
        _auth(completions, [ca.root_certificate], response=forged)
    with pytest.raises(rp.DataMismatch):
        _sign(completions, [ca.root_certificate], user_visible_data="Something else")
    with pytest.raises(rp.DataMismatch):
        _sign(completions, [ca.root_certificate], user_non_visible_data=None)
    with pytest.raises(rp.MalformedResponse):
        _auth(completions, [ca.root_certificate], response={"algorithm": "ES256"})
    with pytest.raises(rp.MalformedResponse):
        _auth(completions, [ca.root_certificate], response=dict(forged, algorithm="none"))


async def test_a_certificate_from_the_same_ca_with_wrong_usage(
    completions: dict[str, Any], ca: CertificateAuthority
) -> None:
    """A signature certificate used to sign an auth order (what a buggy or hostile agent
    might do) is refused on key usage, even though it chains and the signature is good."""
    from issuer.ca import new_key

    key = new_key()
    pair = ca.issue_pair(
        ANNA, new_key().public_key(), key.public_key(), dt.datetime.now(dt.UTC), kind="file"
    )
    signed = base64.b64decode(completions["auth"]["signedData"])
    r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
    forged = dict(completions["auth"])
    forged["signature"] = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    forged["certificateChain"] = [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
        for c in (pair.signature, ca.issuing_certificate)
    ]
    with pytest.raises(rp.WrongKeyUsage):
        _auth(completions, [ca.root_certificate], response=forged)


def test_nonces_are_single_use_bound_and_expire() -> None:
    store = rp.NonceStore()
    now = dt.datetime.now(dt.UTC)
    nonce = store.issue("session-a", now)
    assert len(base64.urlsafe_b64decode(nonce + "=")) == 32
    store.consume(nonce, "session-a", now)
    with pytest.raises(rp.ReusedNonce):
        store.consume(nonce, "session-a", now)
    nonce = store.issue("session-a", now)
    with pytest.raises(rp.UnknownNonce):  # another session's: refused, and spent
        store.consume(nonce, "session-b", now)
    with pytest.raises(rp.ReusedNonce):
        store.consume(nonce, "session-a", now)
    old = store.issue("session-a", now)
    with pytest.raises(rp.ExpiredNonce):
        store.consume(old, "session-a", now + dt.timedelta(minutes=5))
    with pytest.raises(rp.UnknownNonce):
        store.consume("never-issued", "session-a", now)


async def _demo_site() -> Any:
    from aiohttp.test_utils import TestClient, TestServer

    from demo.site import CONFIG, DemoConfig, build_demo

    server = TestServer(build_demo(DemoConfig("http://127.0.0.1:0", 24721, [])), host="127.0.0.1")
    await server.start_server()
    server.app[CONFIG].origin = str(server.make_url("")).rstrip("/")  # its own, once bound
    return TestClient(server)


async def test_the_demo_site_speaks_the_browsers_language() -> None:
    async with await _demo_site() as client:
        for headers, query, expected in (
            ({"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.8"}, "", "Logga in med BankID"),
            ({"Accept-Language": "de-DE,en;q=0.5"}, "", "Log in with BankID"),
            ({"Accept-Language": "sv"}, "?lang=en", "Log in with BankID"),
            ({}, "?lang=xx", "Log in with BankID"),
        ):
            resp = await client.get("/" + query, headers=headers)
            text = await resp.text()
            assert expected in text and "{{" not in text, (headers, query)
            assert resp.headers["Content-Language"] == ("sv" if "Logga" in expected else "en")


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        '{"type": "auth", "personalNumber": ' + "9" * 5000 + "}",
        "not json",
        "[]",
        '{"type": "sign", "text": {"a": 1}}',
        '{"type": "auth", "personalNumber": ["198112189876"]}',
    ],
)
async def test_the_demo_site_refuses_hostile_bodies_with_json(body: str) -> None:
    async with await _demo_site() as client:
        await client.get("/")  # the session cookie
        for path in ("/api/start", "/api/finish"):
            resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
            assert resp.status == 400, (path, await resp.text())
            assert (await resp.json())["site"] == "verificationFailed"


RELAY = "https://relay.example"


def _relay_completion(
    store: CredentialStore,
    make_token: MakeToken,
    kind: str,
    nonce: bytes,
    party: str,
    text: str | None = None,
) -> dict[str, Any]:
    """signedData v2 for an order an order relay held for ``party``, as agents signed
    before relay results became XML signatures (the format still names the door)."""
    credential = unlocked(store, make_token(ANNA), PASSWORD)
    purpose = KeyPurpose.IDENTIFICATION if kind == "auth" else KeyPurpose.SIGNATURE
    signed = signeddata.build(
        type=kind,
        origin=RELAY,
        nonce=nonce,
        time=dt.datetime.now(dt.UTC),
        order_ref="relay-ref-1",
        agent_version="test",
        user_visible_data=text,
        door=signeddata.Door.RELAY,
        party=party,
    )
    return {
        "signedData": base64.b64encode(signed).decode(),
        "signature": base64.b64encode(credential.sign(purpose, signed)).decode(),
        "algorithm": "ES256",
        "certificateChain": [
            base64.b64encode(c).decode() for c in credential.certificate_chain(purpose)
        ],
    }


def test_a_relay_door_signeddata_is_not_a_bridge_result(
    store: CredentialStore, make_token: MakeToken, ca: CertificateAuthority
) -> None:
    """signedData v2 as agents signed relay orders before those became XML signatures:
    it cannot pass as a bridge result (the door is signed), and the kit reads relay
    results only as XML now."""
    nonce = b"\x07" * 32
    done = _relay_completion(store, make_token, "sign", nonce, "shop", TEXT)
    with pytest.raises(rp.WrongDoor, match="verify_xml_signature"):
        rp.verify_sign(
            done,
            expected_origin=RELAY,
            nonce=signeddata.b64url(nonce),
            trust_anchors=[ca.root_certificate],
            now=dt.datetime.now(dt.UTC),
            user_visible_data=TEXT,
        )


@pytest.mark.parametrize(
    "change",
    [
        {"token": "file"},
        {"token": None},
        {"token": 5},
        {"token": []},
        {"token": {"kind": "usb"}},
        {"user": "Anna"},
        {"certificateChain": None},
        {"certificateChain": ["not base64!"]},
        {"signedData": {"a": 1}},
        {"signature": 64},
    ],
    ids=str,
)
async def test_a_result_of_the_wrong_shape_is_malformed_never_a_crash(
    completions: dict[str, Any], ca: CertificateAuthority, change: dict[str, object]
) -> None:
    """A website calling verify_* on what its page handed back gets the kit's error."""
    with pytest.raises(rp.MalformedResponse):
        _auth(completions, [ca.root_certificate], response={**completions["auth"], **change})
    not_objects: list[object] = [None, [], "completion", 5]
    for response in not_objects:
        with pytest.raises(rp.MalformedResponse):
            _auth(completions, [ca.root_certificate], response=response)


async def test_the_kind_comes_from_the_certificates_policy(
    completions: dict[str, Any], ca: CertificateAuthority
) -> None:
    for claim in ("card", "token"):
        lie = {**completions["auth"], "token": {"kind": claim}}
        with pytest.raises(rp.WrongTokenKind):
            _auth(completions, [ca.root_certificate], response=lie)
    silent = dict(completions["auth"])
    del silent["token"]
    assert _auth(completions, [ca.root_certificate], response=silent).token_kind == "file"
    leaf = rp.read_result(completions["auth"]).chain[0]
    assert rp.certificate_kind(leaf) == "file"
    # an issuer with an arc of its own: its OIDs are given to the kit
    assert rp.certificate_kind(leaf, {"1.2.752.999.1": "file"}) is None


def _done(ref: str) -> dict[str, str]:
    return {"orderRef": ref, "status": "complete"}


def test_a_return_value_is_spent_by_its_first_use_whoever_presents_it() -> None:
    """A leaked return URL: the person's browser presents the attacker's value and is
    refused; then the attacker's own browser presents it, and is refused too."""
    login = rp.RelayLogin("https://shop.example/eid/return")
    now = dt.datetime.now(dt.UTC)
    url = login.start("attacker", now)
    login.bind("attacker", "order-1")
    value = url.split("eidReturn=")[1]
    with pytest.raises(rp.UnknownNonce):
        login.returned("person", value, now)
    with pytest.raises(rp.ReusedNonce):
        login.returned("attacker", value, now)
    assert not login.may_log_in("attacker", _done("order-1"))
    assert not login.may_log_in("person", _done("order-1"))


def test_a_login_is_for_the_order_the_session_bound_last() -> None:
    login = rp.RelayLogin("https://shop.example/eid/return")
    now = dt.datetime.now(dt.UTC)
    first = login.start("s", now).split("eidReturn=")[1]
    login.bind("s", "order-1")
    second = login.start("s", now).split("eidReturn=")[1]  # a new order replaces it
    login.bind("s", "order-2")
    with pytest.raises(rp.UnknownNonce):  # the older order's value: spent, no login
        login.returned("s", first, now)
    login.returned("s", second, now)
    assert login.may_log_in("s", _done("order-2"))
    assert not login.may_log_in("s", _done("order-1"))  # complete, but not this order
    assert not login.may_log_in("s", {"orderRef": "order-2", "status": "pending"})
    unbound = rp.RelayLogin("https://shop.example/eid/return")
    unbound.returned("t", unbound.start("t", now).split("eidReturn=")[1], now)
    assert not unbound.may_log_in("t", _done("order-2"))  # never bound: no login


async def test_the_relay_api_keeps_its_connection_and_survives_an_idle_close(
    tmp_path: Path,
) -> None:
    """``rp.RelayApi`` keeps one connection per thread alive between calls (a mutual-TLS
    handshake per call was most of a login's cost); when the server has closed it while
    idle, the next call goes out again on a new connection instead of failing."""
    import asyncio
    import ssl
    from concurrent.futures import ThreadPoolExecutor

    from aiohttp import web

    from issuer.servecli import dev_tls
    from rp import RelayApi
    from tests.bridge_kit import free_port

    (tmp_path / "tls").mkdir()
    cert, key = dev_tls(tmp_path / "tls", dt.datetime.now(dt.UTC))
    peers: list[object] = []

    async def collect(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        return web.json_response({"orderRef": "r", "status": "pending"})

    app = web.Application()
    app.router.add_post("/rp/v6.0/collect", collect)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    runner = web.AppRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    api = RelayApi(f"https://127.0.0.1:{port}", (cert, key), ca_file=cert)
    calls = asyncio.get_running_loop()
    try:
        with ThreadPoolExecutor(1) as one:  # one thread: its one kept connection
            for _ in range(3):
                assert (await calls.run_in_executor(one, api.collect, "r"))["status"] == "pending"
            assert len(set(peers)) == 1  # one connection, kept
            await asyncio.sleep(0.8)  # the server closes it while idle
            assert (await calls.run_in_executor(one, api.collect, "r"))["status"] == "pending"
            assert len(set(peers)) == 2  # sent again on a new one
    finally:
        await runner.cleanup()


def test_a_chain_is_known_only_against_the_anchors_it_verified_with(
    store: CredentialStore, make_token: MakeToken, ca: CertificateAuthority
) -> None:
    """The kit keeps chains that verified (building one is most of a verification): the
    same chain verifies again from memory, but against other anchors it is refused as
    if never seen."""
    from tests.conftest import NOW

    credential = unlocked(store, make_token(ANNA), PASSWORD)
    chain = credential.certificate_chain(KeyPurpose.IDENTIFICATION)
    data = b"a challenge"
    signature = credential.sign(KeyPurpose.IDENTIFICATION, data)
    for _ in range(2):  # built, then remembered
        person = rp.verify_possession(
            chain, signature, data, trust_anchors=[ca.root_certificate], now=NOW
        )
        assert str(person.personal_number) == str(ANNA.personal_number)
    other = CertificateAuthority.create("Other", NOW - dt.timedelta(days=1))
    with pytest.raises(rp.UntrustedChain):
        rp.verify_possession(
            chain, signature, data, trust_anchors=[other.root_certificate], now=NOW
        )
    # the right root among others: another set of anchors, built for it, and good
    anchors = [other.root_certificate, ca.root_certificate]
    assert rp.verify_possession(chain, signature, data, trust_anchors=anchors, now=NOW)
