"""Phone orders (BankID's ``phone/auth`` and ``phone/sign``): the person is on the phone
with the party and opens no link; their agent asks the relay for the orders waiting for
them, proving each personal number with its identification key over a one-time
challenge from that relay (``eidcore.phoneproof``). The relay shows a person's phone
orders to nobody else, and nothing else to anyone."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.credentials import CredentialStore, KeyPurpose, UnlockedCredential
from eidcore import phoneproof
from issuer import CertificateAuthority
from tests.conftest import ANNA, BERTIL, PASSWORD, MakeToken
from tests.relay_kit import ORIGIN, Relay, completion_for, running_relay, unlocked

PHONE = {"personalNumber": str(ANNA.personal_number), "callInitiator": "RP"}


@pytest.fixture
async def relay(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[Relay]:
    async with running_relay(tmp_path, ca) as r:
        yield r


@pytest.fixture
def anna(store: CredentialStore, make_token: MakeToken) -> UnlockedCredential:
    return unlocked(store, make_token(ANNA), PASSWORD)


def _proof(
    credential: UnlockedCredential,
    challenge: str,
    purpose: KeyPurpose = KeyPurpose.IDENTIFICATION,
    origin: str = ORIGIN,
) -> dict[str, Any]:
    signed = phoneproof.proof_bytes(origin, challenge)
    return {
        "certificateChain": [
            base64.b64encode(c).decode() for c in credential.certificate_chain(purpose)
        ],
        "signature": base64.b64encode(credential.sign(purpose, signed)).decode(),
    }


async def _challenge(relay: Relay) -> str:
    status, answer = await relay.agent("phone/challenge", {})
    assert status == 200, answer
    return str(answer["challenge"])


async def _waiting(relay: Relay, *proofs: UnlockedCredential) -> tuple[int, dict[str, Any]]:
    challenge = await _challenge(relay)
    body = {"challenge": challenge, "proofs": [_proof(c, challenge) for c in proofs]}
    return await relay.agent("phone/orders", body)


async def test_a_phone_order_waits_for_the_persons_agent_and_completes(
    relay: Relay, anna: UnlockedCredential
) -> None:
    status, started = await relay.rp("phone/auth", PHONE | {"callInitiator": "user"})
    assert (status, set(started)) == (200, {"orderRef"})  # no link: nothing to open
    ref = started["orderRef"]
    relay.clock.advance(60)  # no link to open within 30 s: it waits its whole life
    assert (await relay.rp("collect", {"orderRef": ref}))[1]["hintCode"] == "outstandingTransaction"
    status, waiting = await _waiting(relay, anna)
    assert status == 200, waiting
    [found] = waiting["orders"]
    assert (found["type"], found["callInitiator"], found["party"]) == (
        "auth",
        "user",
        {"id": "shop", "name": "Exempelbutiken AB"},
    )
    status, order = await relay.agent("order", {"autoStartToken": found["autoStartToken"]})
    assert status == 200 and order["callInitiator"] == "user" and order["orderRef"] == ref
    # the person's agent asks them to confirm the call: BankID's word for it
    assert (await relay.rp("collect", {"orderRef": ref}))[1]["hintCode"] == "userCallConfirm"
    done = {"orderRef": ref, "agentSecret": order["agentSecret"]}
    completion = completion_for(order, anna)
    assert (await relay.agent("complete", done | {"completionData": completion}))[0] == 200
    collected = (await relay.rp("collect", {"orderRef": ref}))[1]
    assert collected["status"] == "complete"
    assert collected["completionData"]["user"]["personalNumber"] == str(ANNA.personal_number)
    # found once: the next look shows nothing (it is no longer waiting)
    assert (await _waiting(relay, anna))[1] == {"orders": []}


async def test_saying_no_reads_user_declined_call(relay: Relay, anna: UnlockedCredential) -> None:
    _, started = await relay.rp("phone/sign", PHONE | {"userVisibleData": "SmEgdGFjaw=="})
    [found] = (await _waiting(relay, anna))[1]["orders"]
    _, order = await relay.agent("order", {"autoStartToken": found["autoStartToken"]})
    fail = {"orderRef": order["orderRef"], "agentSecret": order["agentSecret"]}
    assert (await relay.agent("fail", fail | {"hintCode": "userCancel"}))[0] == 200
    collected = (await relay.rp("collect", {"orderRef": started["orderRef"]}))[1]
    assert (collected["status"], collected["hintCode"]) == ("failed", "userDeclinedCall")


async def test_only_the_persons_own_phone_orders_are_shown(
    relay: Relay,
    anna: UnlockedCredential,
    store: CredentialStore,
    make_token: MakeToken,
) -> None:
    bertil = unlocked(store, make_token(BERTIL), PASSWORD)
    await relay.rp("phone/auth", {**PHONE, "personalNumber": str(BERTIL.personal_number)})
    # an ordinary order for Anna is opened by its link, never found this way
    ordinary = {
        "endUserIp": "192.0.2.1",
        "requirement": {"personalNumber": PHONE["personalNumber"]},
    }
    assert (await relay.rp("auth", ordinary))[0] == 200
    assert (await _waiting(relay, anna))[1] == {"orders": []}
    both = (await _waiting(relay, anna, bertil))[1]["orders"]
    assert [o["personalNumber"] for o in both] == [str(BERTIL.personal_number)]


async def test_a_challenge_is_good_once_and_soon(relay: Relay, anna: UnlockedCredential) -> None:
    challenge = await _challenge(relay)
    body = {"challenge": challenge, "proofs": [_proof(anna, challenge)]}
    assert (await relay.agent("phone/orders", body))[0] == 200
    assert (await relay.agent("phone/orders", body))[0] == 404  # spent
    late = await _challenge(relay)
    relay.clock.advance(61)
    body = {"challenge": late, "proofs": [_proof(anna, late)]}
    assert (await relay.agent("phone/orders", body))[0] == 404
    guessed = {"challenge": "x" * 43, "proofs": [_proof(anna, "x" * 43)]}
    assert (await relay.agent("phone/orders", guessed))[0] == 404


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("signature key", "WrongKeyUsage"),
        ("another relay", "BadSignature"),
        ("another challenge", "BadSignature"),
    ],
)
async def test_a_proof_that_proves_nothing_is_refused(
    relay: Relay, anna: UnlockedCredential, change: str, reason: str
) -> None:
    await relay.rp("phone/auth", PHONE)
    challenge = await _challenge(relay)
    proof = {
        "signature key": lambda: _proof(anna, challenge, KeyPurpose.SIGNATURE),
        "another relay": lambda: _proof(anna, challenge, origin="https://other-relay.example"),
        "another challenge": lambda: _proof(anna, challenge + "x"),
    }[change]()
    status, answer = await relay.agent("phone/orders", {"challenge": challenge, "proofs": [proof]})
    assert (status, answer) == (
        400,
        {"errorCode": "verificationFailed", "details": f"proofs[0]: {reason}"},
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"challenge": "c"},
        {"challenge": "c", "proofs": []},
        {"challenge": "c", "proofs": [{}] * 9},
        {"challenge": "c", "proofs": [{"certificateChain": "AAAA", "signature": "AAAA"}]},
        {"challenge": "c", "proofs": [{"certificateChain": ["***"], "signature": "AAAA"}]},
        {"challenge": "é", "proofs": [{"certificateChain": ["AAAA"], "signature": "AAAA"}]},
        {"challenge": 5, "proofs": [{"certificateChain": ["AAAA"], "signature": "AAAA"}]},
    ],
    ids=str,
)
async def test_hostile_proofs_are_refused_by_name(relay: Relay, body: dict[str, Any]) -> None:
    status, answer = await relay.agent("phone/orders", body)
    assert (status, answer["errorCode"]) == (400, "invalidParameters"), answer


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"callInitiator": "RP"}, "personalNumber"),
        ({**PHONE, "personalNumber": "19811218-9876"}, "personalNumber"),
        ({**PHONE, "callInitiator": "bank"}, "callInitiator"),
        ({"personalNumber": PHONE["personalNumber"]}, "callInitiator"),
        ({**PHONE, "endUserIp": "192.0.2.1"}, "unknown field"),
        ({**PHONE, "returnUrl": "https://shop.example/eid/return"}, "unknown field"),
        ({**PHONE, "requirement": {"personalNumber": "198112189876"}}, "not requirement"),
    ],
    ids=str,
)
async def test_phone_starts_are_checked_by_name(
    relay: Relay, body: dict[str, Any], said: str
) -> None:
    status, answer = await relay.rp("phone/auth", body)
    assert (status, answer["errorCode"]) == (400, "invalidParameters"), answer
    assert said in answer["details"]


async def test_two_phone_orders_for_one_person_are_already_in_progress(relay: Relay) -> None:
    _, first = await relay.rp("phone/auth", PHONE)
    status, answer = await relay.rp("phone/sign", PHONE | {"userVisibleData": "SmEgdGFjaw=="})
    assert (status, answer["errorCode"]) == (400, "alreadyInProgress")
    assert (await relay.rp("collect", first))[1]["hintCode"] == "cancelled"
