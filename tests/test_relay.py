"""The order relay over real HTTP on loopback with SQLite: the relying-party API as a
website's server calls it, and the agent API driven by hand with a real BankID on file
(the agent's own side of this door comes next). Hostile input gets an error code, never
a 500."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import rp
from agent.credentials import CredentialStore, KeyPurpose, UnlockedCredential
from eidcore import policies, xmlsig
from issuer import CertificateAuthority
from tests.conftest import ANNA, BERTIL, PASSWORD, MakeToken
from tests.relay_kit import (
    ORIGIN,
    RETURN,
    UHI,
    Relay,
    completion_for,
    legacy_completion,
    running_relay,
    unlocked,
)

IP = "192.0.2.10"
POLICY = {kind: oid for oid, kind in policies.KIND_POLICIES.items()}  # the issuer's, per kind
TEXT = "Jag godkänner köpet av en cykel för 4 000 kr."


@pytest.fixture
async def relay(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[Relay]:
    async with running_relay(tmp_path, ca) as r:
        yield r


@pytest.fixture
def anna(store: CredentialStore, make_token: MakeToken) -> UnlockedCredential:
    return unlocked(store, make_token(ANNA), PASSWORD)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _fetched(relay: Relay, kind: str = "auth", **body: Any) -> tuple[str, dict[str, Any]]:
    status, started = await relay.rp(kind, {"endUserIp": IP, **body})
    assert status == 200, started
    status, order = await relay.agent("order", {"autoStartToken": started["autoStartToken"]})
    assert status == 200, order
    return started["orderRef"], order


async def _collect(relay: Relay, ref: str) -> dict[str, Any]:
    status, body = await relay.rp("collect", {"orderRef": ref})
    assert status == 200, body
    return body


async def test_an_identification_through_the_relay(
    relay: Relay, anna: UnlockedCredential, ca: CertificateAuthority
) -> None:
    status, started = await relay.rp("auth", {"endUserIp": IP, "returnUrl": RETURN})
    assert status == 200
    assert set(started) == {"orderRef", "autoStartToken", "qrStartToken", "qrStartSecret"}
    assert len(base64.urlsafe_b64decode(started["autoStartToken"] + "==")) >= 16  # ≥ 128 bits
    ref = started["orderRef"]
    assert (await _collect(relay, ref))["hintCode"] == "outstandingTransaction"
    status, order = await relay.agent("order", {"autoStartToken": started["autoStartToken"]})
    assert status == 200
    assert (order["relay"], order["party"], order["type"]) == (
        ORIGIN,
        {"id": "shop", "name": "Exempelbutiken AB"},
        "auth",
    )
    assert (await _collect(relay, ref))["hintCode"] == "started"
    secret = order["agentSecret"]
    progress = {"orderRef": ref, "agentSecret": secret, "hintCode": "userSign"}
    assert (await relay.agent("progress", progress))[0] == 200
    assert (await _collect(relay, ref))["hintCode"] == "userSign"
    done = {"orderRef": ref, "agentSecret": secret, "completionData": completion_for(order, anna)}
    assert await relay.agent("complete", done) == (200, {"orderRef": ref, "status": "complete"})
    collected = await _collect(relay, ref)
    assert collected["status"] == "complete" and "hintCode" not in collected
    completion = collected["completionData"]
    assert set(completion) == {"user", "device", "bankIdIssueDate", "stepUp", "signature"}
    assert completion["user"] == {
        "personalNumber": str(ANNA.personal_number),
        "name": ANNA.name,
        "givenName": ANNA.given_name,
        "surname": ANNA.surname,
    }
    assert completion["device"] == {"ipAddress": "127.0.0.1", "uhi": UHI}
    assert completion["stepUp"] == {"mrtd": False}
    leaf = anna.certificate_chain(KeyPurpose.IDENTIFICATION)[0]
    issued = x509.load_der_x509_certificate(leaf).not_valid_before_utc
    assert completion["bankIdIssueDate"] == issued.strftime("%Y-%m-%dZ")
    # the website's server may verify again: the relay's origin, its own party, its order
    verified = rp.verify_xml_signature(
        completion["signature"],
        order_type="auth",
        expected_origin=ORIGIN,
        party="shop",
        order_ref=ref,
        trust_anchors=[ca.root_certificate],
        now=relay.clock(),
    )
    assert verified.person.personal_number == str(ANNA.personal_number)


async def test_a_signature_binds_the_text(relay: Relay, anna: UnlockedCredential) -> None:
    ref, order = await _fetched(
        relay, "sign", userVisibleData=b64(TEXT), userNonVisibleData=b64("order 42")
    )
    assert base64.b64decode(order["userVisibleData"]).decode() == TEXT
    other = dict(order, userVisibleData=b64(TEXT.replace("4 000", "40 000")))
    report = {
        "orderRef": ref,
        "agentSecret": order["agentSecret"],
        "completionData": completion_for(other, anna),
    }
    status, body = await relay.agent("complete", report)
    assert (status, body["errorCode"]) == (400, "verificationFailed")
    assert (await _collect(relay, ref))["hintCode"] == "startFailed"  # the order is over
    ref, order = await _fetched(relay, "sign", userVisibleData=b64(TEXT))
    report = {
        "orderRef": ref,
        "agentSecret": order["agentSecret"],
        "completionData": completion_for(order, anna),
    }
    assert (await relay.agent("complete", report))[0] == 200
    assert (await _collect(relay, ref))["status"] == "complete"


async def test_an_autostart_token_starts_one_agent_once_and_soon(relay: Relay) -> None:
    _, started = await relay.rp("auth", {"endUserIp": IP})
    token = {"autoStartToken": started["autoStartToken"]}
    assert (await relay.agent("order", token))[0] == 200
    assert await relay.agent("order", token) == (
        404,
        {"errorCode": "notFound", "details": "no order for this autostart token"},
    )
    _, late = await relay.rp("auth", {"endUserIp": IP})
    relay.clock.advance(31)
    assert (await relay.agent("order", {"autoStartToken": late["autoStartToken"]}))[0] == 404
    assert (await _collect(relay, late["orderRef"]))["hintCode"] == "startFailed"
    assert (await relay.agent("order", {"autoStartToken": "guessed-" + "x" * 40}))[0] == 404


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"party": "other"}, "WrongParty"),
        ({"party_name": "Annan AB"}, "WrongParty"),
        ({"origin": "https://other-relay.example"}, "WrongOrigin"),
        ({"order_ref": "another-order"}, "DataMismatch"),
        ({"visible_format": "simpleMarkdownV1"}, "DataMismatch"),
        ({"func": xmlsig.FuncId.SIGNING}, "WrongOrderType"),
    ],
    ids=str,
)
async def test_a_result_for_another_party_relay_or_order_is_refused(
    relay: Relay, anna: UnlockedCredential, change: dict[str, Any], reason: str
) -> None:
    ref, order = await _fetched(relay, userVisibleData=b64(TEXT))
    report = {
        "orderRef": ref,
        "agentSecret": order["agentSecret"],
        "completionData": completion_for(order, anna, **change),
    }
    assert await relay.agent("complete", report) == (
        400,
        {"errorCode": "verificationFailed", "details": reason},
    )
    collected = await _collect(relay, ref)
    assert collected["status"] == "failed" and "completionData" not in collected


async def test_only_the_agent_that_fetched_the_order_moves_it(
    relay: Relay, anna: UnlockedCredential
) -> None:
    ref, order = await _fetched(relay)
    stranger = {"orderRef": ref, "agentSecret": "not-the-secret", "hintCode": "userSign"}
    assert (await relay.agent("progress", stranger))[0] == 404
    forged = {
        "orderRef": ref,
        "agentSecret": "not-the-secret",
        "completionData": completion_for(order, anna),
    }
    assert (await relay.agent("complete", forged))[0] == 404
    assert (await _collect(relay, ref))["hintCode"] == "started"  # unchanged


async def test_the_agent_asks_whether_the_order_is_still_wanted(relay: Relay) -> None:
    ref, order = await _fetched(relay)
    mine = {"orderRef": ref, "agentSecret": order["agentSecret"]}
    assert await relay.agent("status", mine) == (
        200,
        {"orderRef": ref, "status": "pending", "hintCode": "started"},
    )
    assert (await relay.agent("status", {**mine, "agentSecret": "guess"}))[0] == 404
    assert (await relay.rp("cancel", {"orderRef": ref}))[0] == 200
    assert (await relay.agent("status", mine))[1] == {
        "orderRef": ref,
        "status": "failed",
        "hintCode": "cancelled",
    }


async def test_parties_see_only_their_own_orders(relay: Relay) -> None:
    _, started = await relay.rp("auth", {"endUserIp": IP})
    ref = {"orderRef": started["orderRef"]}
    # another party's order does not exist for it: BankID's answer for an unknown ref
    assert (await relay.rp("collect", ref, party="other"))[1]["errorCode"] == "invalidParameters"
    assert (await relay.rp("cancel", ref, party="other"))[1]["errorCode"] == "invalidParameters"
    assert (await relay.rp("collect", ref, party=None))[0] == 401
    assert (await relay.rp("auth", {"endUserIp": IP}, party=None))[0] == 401
    assert (await _collect(relay, started["orderRef"]))["hintCode"] == "outstandingTransaction"


async def test_cancel_and_the_persons_cancel_end_the_order(relay: Relay) -> None:
    _, started = await relay.rp("auth", {"endUserIp": IP})
    assert await relay.rp("cancel", {"orderRef": started["orderRef"]}) == (200, {})
    assert (await _collect(relay, started["orderRef"]))["hintCode"] == "cancelled"
    assert (await relay.agent("order", {"autoStartToken": started["autoStartToken"]}))[0] == 404
    assert (await relay.rp("cancel", {"orderRef": started["orderRef"]}))[0] == 400  # ended
    ref, order = await _fetched(relay)
    fail = {"orderRef": ref, "agentSecret": order["agentSecret"], "hintCode": "userCancel"}
    assert (await relay.agent("fail", fail))[0] == 200
    assert (await _collect(relay, ref))["hintCode"] == "userCancel"
    assert (await relay.agent("fail", fail))[0] == 404  # once


async def test_an_order_expires_and_the_requirement_holds(
    relay: Relay, anna: UnlockedCredential, store: CredentialStore
) -> None:
    ref, order = await _fetched(relay)
    relay.clock.advance(181)
    assert (await _collect(relay, ref))["hintCode"] == "expiredTransaction"
    ref, order = await _fetched(relay, requirement={"personalNumber": str(BERTIL.personal_number)})
    assert order["requirement"] == {"personalNumber": str(BERTIL.personal_number)}
    report = {
        "orderRef": ref,
        "agentSecret": order["agentSecret"],
        "completionData": completion_for(order, anna),
    }  # Anna is not Bertil
    assert (await relay.agent("complete", report))[1]["errorCode"] == "verificationFailed"


HOSTILE_STARTS: list[tuple[str, object]] = [
    ("nested", {"endUserIp": IP, "requirement": json.loads("[" * 700 + "]" * 700)}),
    ("huge number", None),  # raw below
    ("bidi text", {"endUserIp": IP, "userVisibleData": b64("Betala \u202e001 kr")}),
    ("invisible", {"endUserIp": IP, "userVisibleData": b64("Be\u200btala")}),
    ("not base64", {"endUserIp": IP, "userVisibleData": "***"}),
    ("too long", {"endUserIp": IP, "userVisibleData": "A" * 40_004}),
    ("no ip", {}),
    ("bad ip", {"endUserIp": "300.1.1.1"}),
    ("unregistered return", {"endUserIp": IP, "returnUrl": "https://evil.example/"}),
    ("http return", {"endUserIp": IP, "returnUrl": RETURN.replace("https", "http")}),
    ("return elsewhere on the site", {"endUserIp": IP, "returnUrl": RETURN + "/../admin"}),
    ("return with a fragment", {"endUserIp": IP, "returnUrl": RETURN + "#x"}),
    ("return with a bracket", {"endUserIp": IP, "returnUrl": "https://q pd(tS C{]="}),
    ("unknown field", {"endUserIp": IP, "userNonVisibleDat": "eA=="}),
    ("bad requirement", {"endUserIp": IP, "requirement": {"tokenKinds": ["file"]}}),
    ("bad number", {"endUserIp": IP, "requirement": {"personalNumber": "19811218-9876"}}),
]


@pytest.mark.parametrize(("name", "body"), HOSTILE_STARTS, ids=[n for n, _ in HOSTILE_STARTS])
async def test_hostile_starts_get_an_error_code(relay: Relay, name: str, body: object) -> None:
    raw = (
        ('{"endUserIp": "' + IP + '", "x": ' + "9" * 5000 + "}").encode() if body is None else None
    )
    status, answer = await relay.rp("auth", body, raw=raw)
    assert (status, answer["errorCode"]) == (400, "invalidParameters"), answer
    assert "9999" not in answer["details"] and "\u202e" not in answer["details"]


async def test_hostile_transport_gets_an_error_code(relay: Relay) -> None:
    shop = relay.tls.clients["shop"]
    response = await relay.client.post(
        "/rp/v6.0/auth", data=b"endUserIp=1", headers={"Content-Type": "text/plain"}, ssl=shop
    )
    assert response.status == 415
    big = b'{"endUserIp": "' + b"1" * (600 * 1024) + b'"}'
    response = await relay.client.post(
        "/rp/v6.0/auth", data=big, headers={"Content-Type": "application/json"}, ssl=shop
    )
    assert response.status == 413 and (await response.json())["errorCode"] == "requestTooLarge"
    response = await relay.client.get("/rp/v6.0/collect", ssl=shop)
    assert response.status == 405 and (await response.json())["errorCode"] == "methodNotAllowed"
    response = await relay.client.post("/rp/v1/auth", json={"endUserIp": IP}, ssl=shop)
    assert response.status == 404  # the relay's own API before BankID's is gone (ADR 0020)
    response = await relay.client.post("/nowhere", json={}, ssl=shop)
    assert response.status == 404 and "Server" not in response.headers
    for body in ({"autoStartToken": 5}, {"autoStartToken": "é" * 10}, {"token": "x"}):
        status, answer = await relay.agent("order", body)
        assert (status, answer["errorCode"]) == (400, "invalidParameters")


LONE = '"\\ud800"'  # the JSON escape of a lone surrogate: plain ASCII on the wire


@pytest.mark.parametrize(
    ("api", "path", "raw"),
    [
        ("rp", "collect", '{"orderRef": ' + LONE + "}"),
        ("rp", "cancel", '{"orderRef": ' + LONE + "}"),
        ("rp", "auth", '{"endUserIp": ' + LONE + "}"),
        ("rp", "auth", '{"endUserIp": "192.0.2.1", "returnUrl": ' + LONE + "}"),
        ("rp", "sign", '{"endUserIp": "192.0.2.1", "userVisibleData": ' + LONE + "}"),
        ("rp", "auth", '{"endUserIp": "192.0.2.1", ' + LONE + ": 1}"),
        ("agent", "order", '{"autoStartToken": ' + LONE + "}"),
        ("agent", "status", '{"orderRef": ' + LONE + ', "agentSecret": "s"}'),
        ("agent", "status", '{"orderRef": "r", "agentSecret": ' + LONE + "}"),
        (
            "agent",
            "progress",
            '{"orderRef": ' + LONE + ', "agentSecret": "s", "hintCode": "userSign"}',
        ),
        ("agent", "fail", '{"orderRef": "r", "agentSecret": "s", "hintCode": ' + LONE + "}"),
        (
            "agent",
            "complete",
            '{"orderRef": ' + LONE + ', "agentSecret": "s", "completionData": {}}',
        ),
        (
            "agent",
            "complete",
            '{"orderRef": "r", "agentSecret": "s", "completionData": {"x": ' + LONE + "}}",
        ),
    ],
)
async def test_a_lone_surrogate_is_400_with_one_log_line(
    relay: Relay, api: str, path: str, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An anonymous request (the agent API needs no credentials) cannot make the relay
    answer 500 or write a traceback."""
    call = relay.rp if api == "rp" else relay.agent
    status, answer = await call(path, None, raw=raw.encode())
    assert (status, answer["errorCode"]) == (400, "invalidParameters"), answer
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text
    assert all("\n" not in r.getMessage() for r in caplog.records)


async def _report(relay: Relay, ref: str, order: dict[str, Any], completion: object) -> Any:
    report = {"orderRef": ref, "agentSecret": order["agentSecret"], "completionData": completion}
    return await relay.agent("complete", report)


def _xml(document: bytes) -> dict[str, str]:
    return {"signature": base64.b64encode(document).decode(), "uhi": UHI}


DTD = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><Signature>&e;</Signature>'
DEEP = b"<a>" * 100_000 + b"</a>" * 100_000


@pytest.mark.parametrize(
    "completion",
    [
        {"signature": "AAAA", "uhi": UHI},
        {"signature": "***", "uhi": UHI},
        _xml(b"<x/>"),
        _xml(DTD),
        _xml(DEEP[:150_000]),
        _xml(b"\xff\xfe<x/>"),
    ],
    ids=["short", "not base64", "not a signature", "dtd", "deep", "not utf-8"],
)
async def test_a_malformed_signature_fails_the_order_with_a_reason(
    relay: Relay, completion: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Results are hostile input: a document that is not this shape is a refused result
    and an ended order, never a 500 that leaves the order pending."""
    ref, order = await _fetched(relay)
    status, answer = await _report(relay, ref, order, completion)
    assert (status, answer["errorCode"]) == (400, "verificationFailed"), answer
    assert answer["details"] == "MalformedResponse"
    assert await _collect(relay, ref) == {
        "orderRef": ref,
        "status": "failed",
        "hintCode": "startFailed",
    }
    assert "internal error" not in caplog.text and "Traceback" not in caplog.text


async def test_a_changed_byte_or_a_wrapped_reference_is_refused(
    relay: Relay, anna: UnlockedCredential
) -> None:
    ref, order = await _fetched(relay, "sign", userVisibleData=b64(TEXT))
    document = base64.b64decode(completion_for(order, anna)["signature"])
    value = document.index(b"<SignatureValue>") + len(b"<SignatureValue>")
    flipped = document[:value] + (b"B" if document[value : value + 1] != b"B" else b"C")
    status, answer = await _report(relay, ref, order, _xml(flipped + document[value + 1 :]))
    assert (status, answer["details"]) == (400, "BadSignature")
    ref, order = await _fetched(relay, "sign", userVisibleData=b64(TEXT))
    document = base64.b64decode(completion_for(order, anna)["signature"])
    wrapped = document.replace(  # a second, unsigned bankIdSignedData beside the signed one
        b"<Object>", b'<Object><bankIdSignedData Id="bidSignedData"></bankIdSignedData>', 1
    )
    status, answer = await _report(relay, ref, order, _xml(wrapped))
    assert (status, answer["details"]) == (400, "MalformedResponse")


@pytest.mark.parametrize(
    "completion",
    [
        {"signature": "AAAA"},
        {"signature": "AAAA", "uhi": UHI, "user": {"personalNumber": "194910112384"}},
        {"signature": 5, "uhi": UHI},
        {"signature": "", "uhi": UHI},
        {"signature": "AAAA", "uhi": "<script>"},
        {"signature": "AAAA", "uhi": "A" * 65},
        [],
    ],
    ids=str,
)
async def test_a_completion_of_another_shape_is_refused_and_the_order_waits(
    relay: Relay, completion: object
) -> None:
    """Exactly the signature and the uhi: nothing else an agent says is passed on (a site
    might take it for the relay's word); the order is untouched."""
    ref, order = await _fetched(relay)
    status, answer = await _report(relay, ref, order, completion)
    assert (status, answer["errorCode"]) == (400, "invalidParameters"), answer
    assert (await _collect(relay, ref))["hintCode"] == "started"


async def test_the_kind_of_bankid_is_the_certificates_policy(
    relay: Relay, anna: UnlockedCredential, ca: CertificateAuthority
) -> None:
    """An order requiring a card is not met by a BankID on file: the kind is read from the
    certificate's policy, never from the agent."""
    ref, order = await _fetched(relay, requirement={"certificatePolicies": [POLICY["card"]]})
    assert (await _report(relay, ref, order, completion_for(order, anna)))[1]["details"] == (
        "WrongTokenKind"
    )
    assert (await _collect(relay, ref))["hintCode"] == "certificateErr"
    ref, order = await _fetched(
        relay, requirement={"certificatePolicies": [POLICY["card"], POLICY["file"]]}
    )
    assert (await _report(relay, ref, order, completion_for(order, anna)))[0] == 200
    signature = (await _collect(relay, ref))["completionData"]["signature"]
    leaf = xmlsig.parse(base64.b64decode(signature)).chain[0]
    assert rp.certificate_kind(leaf) == "file"


async def test_a_certificate_without_a_kind_meets_no_kind_requirement(
    relay: Relay, ca: CertificateAuthority
) -> None:
    """Issued before kinds were written: accepted where no kind is required, refused
    where one is."""
    ref, order = await _fetched(relay, requirement={"certificatePolicies": [POLICY["file"]]})
    status, answer = await _report(relay, ref, order, legacy_completion(order, ca))
    assert (status, answer["details"]) == (400, "WrongTokenKind")
    ref, order = await _fetched(relay)
    assert (await _report(relay, ref, order, legacy_completion(order, ca)))[0] == 200
    assert (await _collect(relay, ref))["status"] == "complete"


async def test_a_body_that_trickles_is_408(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers in time, then the body a byte now and then: the relay stops waiting."""
    monkeypatch.setattr("relay.server.BODY_DEADLINE", 0.3)
    port = relay.client.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=relay.tls.clients[None])
    writer.write(
        b"POST /agent/v1/order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408") and b'"requestTimeout"' in answer


async def test_the_agent_api_has_a_budget_per_address(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Anyone may call the agent API, so guesses are budgeted per address: 60 at once,
    then 20 a second. The relying-party API (parties authenticate) is not."""
    now = [1000.0]
    async with running_relay(tmp_path, ca, monotonic=lambda: now[0]) as relay:
        guesses = [
            await relay.agent("order", {"autoStartToken": f"guess{n:04d}"}) for n in range(70)
        ]
        statuses = [status for status, _ in guesses]
        assert statuses[:60] == [404] * 60 and statuses[60:] == [429] * 10
        assert guesses[-1][1]["errorCode"] == "tooManyRequests"
        response = await relay.client.post(
            "/agent/v1/status",
            json={"orderRef": "r", "agentSecret": "s"},
            ssl=relay.tls.clients[None],
        )
        assert response.status == 429 and response.headers["Retry-After"] == "1"
        # the IETF RateLimit fields, as BankID's tooManyRequests comes with
        assert (
            response.headers["RateLimit-Limit"],
            response.headers["RateLimit-Remaining"],
            response.headers["RateLimit-Reset"],
        ) == ("60", "0", "1")
        assert (await relay.rp("auth", {"endUserIp": IP}))[0] == 200  # parties: unaffected
        now[0] += 1.0  # a second later: 20 more
        statuses = [
            (await relay.agent("status", {"orderRef": "r", "agentSecret": "s"}))[0]
            for _ in range(21)
        ]
        assert statuses == [404] * 20 + [429]
