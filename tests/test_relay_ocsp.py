"""The issuer's word on every result: the relay asks the OCSP responder with a nonce bound
to the signature (SHA-256 of the XML document), keeps the answer as ``ocspResponse``, and
refuses a result whose certificate is revoked — or, where it is required, one it could
not ask about. The rp kit checks the kept answer again, binding included; OpenSSL reads
it too (tests/test_relay_v6.py, with real BankID clients)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import rp
from agent.credentials import CredentialStore, KeyPurpose, UnlockedCredential
from issuer import CertificateAuthority
from relay.config import Ocsp
from tests.conftest import ANNA, PASSWORD, MakeToken
from tests.ocsp_kit import Responder, ocsp_responder
from tests.relay_kit import ORIGIN, Relay, completion_for, running_relay, unlocked

IP = "192.0.2.10"


@pytest.fixture
def responder(ca: CertificateAuthority) -> Iterator[Responder]:
    with ocsp_responder(ca) as r:
        yield r


@pytest.fixture
async def relay(
    tmp_path: Path, ca: CertificateAuthority, responder: Responder
) -> AsyncIterator[Relay]:
    required = Ocsp(required=True, policy=rp.OcspPolicy(url=responder.url))
    async with running_relay(tmp_path, ca, ocsp=required) as r:
        yield r


@pytest.fixture
def anna(store: CredentialStore, make_token: MakeToken) -> UnlockedCredential:
    return unlocked(store, make_token(ANNA), PASSWORD)


async def _complete(relay: Relay, anna: UnlockedCredential) -> tuple[str, Any, dict[str, Any]]:
    _, started = await relay.rp("auth", {"endUserIp": IP})
    _, order = await relay.agent("order", {"autoStartToken": started["autoStartToken"]})
    completion = completion_for(order, anna)
    report = {"orderRef": order["orderRef"], "agentSecret": order["agentSecret"]}
    answer = await relay.agent("complete", report | {"completionData": completion})
    return order["orderRef"], answer, completion


async def _collected(relay: Relay, ref: str) -> dict[str, Any]:
    status, body = await relay.rp("collect", {"orderRef": ref})
    assert status == 200, body
    return body


def _verify(completion: dict[str, Any], ref: str, ca: CertificateAuthority) -> rp.VerifiedXml:
    return rp.verify_xml_signature(
        completion["signature"],
        order_type="auth",
        expected_origin=ORIGIN,
        party="shop",
        order_ref=ref,
        trust_anchors=[ca.root_certificate],
        now=dt.datetime.now(dt.UTC),
        ocsp_response=completion.get("ocspResponse"),
    )


async def test_the_answer_is_kept_bound_to_the_signature(
    relay: Relay, anna: UnlockedCredential, responder: Responder, ca: CertificateAuthority
) -> None:
    ref, answer, sent = await _complete(relay, anna)
    assert answer[0] == 200, answer
    completion = (await _collected(relay, ref))["completionData"]
    document = base64.b64decode(sent["signature"])
    # the relay asked once, with the signature's own hash as its nonce
    (asked,) = responder.asked
    nonce = ocsp.load_der_ocsp_request(asked).extensions.get_extension_for_class(x509.OCSPNonce)
    assert nonce.value.nonce == hashlib.sha256(document).digest() == rp.ocsp_nonce(document)
    kept = ocsp.load_der_ocsp_response(base64.b64decode(completion["ocspResponse"]))
    leaf = x509.load_der_x509_certificate(anna.certificate_chain(KeyPurpose.IDENTIFICATION)[0])
    assert kept.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert kept.serial_number == leaf.serial_number
    assert _verify(completion, ref, ca).person.personal_number == str(ANNA.personal_number)


async def test_an_answer_kept_for_another_signature_is_refused_by_the_site(
    relay: Relay, anna: UnlockedCredential, ca: CertificateAuthority
) -> None:
    """A relay (or whoever sits between) cannot reuse one good answer for every result:
    the nonce names the signature it was asked for."""
    first, _, _ = await _complete(relay, anna)
    second, _, _ = await _complete(relay, anna)
    one = (await _collected(relay, first))["completionData"]
    other = (await _collected(relay, second))["completionData"]
    swapped = other | {"ocspResponse": one["ocspResponse"]}
    with pytest.raises(rp.RevocationUnknown, match="nonce"):
        _verify(swapped, second, ca)
    raw = bytearray(base64.b64decode(one["ocspResponse"]))
    raw[-5] ^= 1  # in the signature
    with pytest.raises(rp.RevocationUnknown):
        _verify(one | {"ocspResponse": base64.b64encode(raw).decode()}, first, ca)
    with pytest.raises(rp.MalformedResponse):
        _verify(one | {"ocspResponse": "not base64!"}, first, ca)


async def test_a_revoked_certificate_fails_the_order(
    relay: Relay, anna: UnlockedCredential, responder: Responder
) -> None:
    leaf = x509.load_der_x509_certificate(anna.certificate_chain(KeyPurpose.IDENTIFICATION)[0])
    responder.revoked.add(leaf.serial_number)
    ref, answer, _ = await _complete(relay, anna)
    assert answer == (400, {"errorCode": "verificationFailed", "details": "CertificateRevoked"})
    collected = await _collected(relay, ref)
    assert (collected["status"], collected["hintCode"]) == ("failed", "certificateErr")


async def test_required_and_unanswered_fails_the_order_not_required_completes_without(
    tmp_path: Path, ca: CertificateAuthority, anna: UnlockedCredential
) -> None:
    gone = rp.OcspPolicy(url="http://127.0.0.1:9/ocsp", timeout=2)  # nobody listens
    async with running_relay(tmp_path, ca, ocsp=Ocsp(required=True, policy=gone)) as relay:
        ref, answer, _ = await _complete(relay, anna)
        assert answer == (400, {"errorCode": "verificationFailed", "details": "RevocationUnknown"})
        assert (await _collected(relay, ref))["hintCode"] == "startFailed"
    # the default: asked where the certificate names a responder (these name none)
    async with running_relay(tmp_path, ca, db=f"sqlite:///{tmp_path / 'second.db'}") as relay:
        ref, answer, _ = await _complete(relay, anna)
        assert answer[0] == 200, answer
        completion = (await _collected(relay, ref))["completionData"]
        assert "ocspResponse" not in completion and completion["signature"]
