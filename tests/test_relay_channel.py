"""The agent API v2 (one WebSocket per order, ADR 0023) against a real relay over mutual
TLS on loopback, driven by hand with a real BankID on file: the result is the signature
value alone and the relay rebuilds the XML (verified by xmlsec1 here); the chain is sent
only when the relay asks; the relay tells the agent at once when the site cancels; and
hostile messages end the connection with an error code, never a 500 or a traceback."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

import relay.server as relay_server
from agent.autostart.client import RelayClient
from agent.autostart.driver import run_order
from agent.autostart.link import Link, parse_link
from agent.credentials import CredentialStore, UnlockedCredential
from agent.orders import OrderBook, OrderService, Phase
from eidcore import xmlsig
from issuer import CertificateAuthority
from relay.channel import WATCH_SECONDS
from tests.bridge_kit import ScriptedUi, free_port
from tests.conftest import ANNA, PASSWORD, MakeToken
from tests.forward_kit import Forwarder
from tests.relay_kit import UHI, Relay, completion_for, running_relay, unlocked
from tests.xml_kit import xmlsec1

IP = "192.0.2.10"
PATH = "/agent/v2/order"


@pytest.fixture
async def relay(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[Relay]:
    async with running_relay(tmp_path, ca) as r:
        yield r


@pytest.fixture
def anna(store: CredentialStore, make_token: MakeToken) -> UnlockedCredential:
    return unlocked(store, make_token(ANNA), PASSWORD)


async def _connect(relay: Relay) -> aiohttp.ClientWebSocketResponse:
    return await relay.client.ws_connect(PATH, ssl=relay.tls.clients[None])


async def _say(ws: aiohttp.ClientWebSocketResponse, message: object) -> dict[str, Any]:
    await ws.send_str(json.dumps(message))
    return await _heard(ws)


async def _heard(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    async with asyncio.timeout(5):
        message = await ws.receive()
    assert message.type is aiohttp.WSMsgType.TEXT, message
    value = json.loads(message.data)
    assert isinstance(value, dict)
    return value


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> None:
    async with asyncio.timeout(5):
        message = await ws.receive()
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message


async def _started(relay: Relay, kind: str = "auth", **body: Any) -> dict[str, Any]:
    status, started = await relay.rp(kind, {"endUserIp": IP, **body})
    assert status == 200, started
    return started


def _result(
    order: dict[str, Any], credential: UnlockedCredential
) -> tuple[dict[str, str], tuple[bytes, ...]]:
    """The agent's v2 result for ``order``: the signature value of the document the v1
    kit builds (the agent's builder), and its chain."""
    document = base64.b64decode(completion_for(order, credential)["signature"])
    parsed = xmlsig.parse(document)
    chain = tuple(c.public_bytes(serialization.Encoding.DER) for c in parsed.chain)
    result = {
        "signatureValue": base64.b64encode(parsed.signature_value).decode(),
        "chain": xmlsig.chain_digest(chain),
        "version": "test",
        "uhi": UHI,
    }
    return result, chain


async def test_an_identification_on_one_connection(
    relay: Relay, anna: UnlockedCredential, ca: CertificateAuthority, tmp_path: Path
) -> None:
    started = await _started(relay)
    ws = await _connect(relay)
    order = (await _say(ws, {"fetch": started["autoStartToken"]}))["order"]
    assert "expiresAt" not in order and order["type"] == "auth"
    await ws.send_str(json.dumps({"progress": "userSign"}))  # no answer to a hint
    await asyncio.sleep(0.1)
    _, collected = await relay.rp("collect", {"orderRef": started["orderRef"]})
    assert collected["hintCode"] == "userSign"
    result, chain = _result(order, anna)
    assert await _say(ws, {"result": result}) == {"need": "chain"}  # not seen here yet
    encoded = [base64.b64encode(der).decode() for der in chain]
    assert await _say(ws, {"chain": encoded}) == {"status": "complete"}
    await _closed(ws)
    _, collected = await relay.rp("collect", {"orderRef": started["orderRef"]})
    assert collected["status"] == "complete"
    assert collected["completionData"]["user"]["personalNumber"] == str(ANNA.personal_number)
    # the document the relay rebuilt is a standard XML signature, and signs what the
    # agent's builder signs (the values differ: ECDSA draws anew each time)
    document = base64.b64decode(collected["completionData"]["signature"])
    agents = base64.b64decode(completion_for(order, anna)["signature"])
    assert xmlsig.parse(document).signed_info == xmlsig.parse(agents).signed_info
    checked = xmlsec1(document, ca.root_certificate, tmp_path / "xmlsec1")
    assert checked.returncode == 0 and "OK" in checked.stderr, checked.stderr


async def test_the_chain_is_sent_once(relay: Relay, anna: UnlockedCredential) -> None:
    for asked in (True, False):
        started = await _started(relay)
        ws = await _connect(relay)
        order = (await _say(ws, {"fetch": started["autoStartToken"]}))["order"]
        result, chain = _result(order, anna)
        reply = await _say(ws, {"result": result})
        if asked:
            assert reply == {"need": "chain"}
            encoded = [base64.b64encode(der).decode() for der in chain]
            reply = await _say(ws, {"chain": encoded})
        assert reply == {"status": "complete"}
        await ws.close()


async def test_the_site_cancels_and_the_agent_hears_at_once(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """The watch looks at the store once an hour here: the agent hears of the cancel
    from the cancel itself, or not in time."""
    async with running_relay(tmp_path, ca, watch_every=3600) as relay:
        started = await _started(relay)
        ws = await _connect(relay)
        await _say(ws, {"fetch": started["autoStartToken"]})
        assert (await relay.rp("cancel", {"orderRef": started["orderRef"]}))[0] == 200
        assert await _heard(ws) == {"status": "failed", "hintCode": "cancelled"}
        await _closed(ws)


async def test_time_running_out_is_heard_within_the_watch(relay: Relay) -> None:
    started = await _started(relay)
    ws = await _connect(relay)
    await _say(ws, {"fetch": started["autoStartToken"]})
    relay.clock.advance(181)  # past the order's three minutes
    async with asyncio.timeout(WATCH_SECONDS * 10):
        assert await _heard(ws) == {"status": "failed", "hintCode": "expiredTransaction"}


async def test_a_dropped_connection_resumes(relay: Relay, anna: UnlockedCredential) -> None:
    started = await _started(relay)
    ws = await _connect(relay)
    order = (await _say(ws, {"fetch": started["autoStartToken"]}))["order"]
    await ws.close()
    again = await _connect(relay)
    wrong = {"orderRef": order["orderRef"], "agentSecret": "x" * 43}
    assert (await _say(again, {"resume": wrong}))["errorCode"] == "notFound"
    again = await _connect(relay)
    resume = {"orderRef": order["orderRef"], "agentSecret": order["agentSecret"]}
    assert await _say(again, {"resume": resume}) == {"status": "pending", "hintCode": "started"}
    result, chain = _result(order, anna)
    if await _say(again, {"result": result}) == {"need": "chain"}:
        encoded = [base64.b64encode(der).decode() for der in chain]
        assert await _say(again, {"chain": encoded}) == {"status": "complete"}


async def test_a_forged_result_ends_the_order(relay: Relay, anna: UnlockedCredential) -> None:
    """A signature value over another text, or a chain other than the one named: refused,
    and a result that does not verify ends the order as v1's does."""
    started = await _started(relay, "sign", userVisibleData=base64.b64encode(b"Pay 1 kr").decode())
    ws = await _connect(relay)
    order = (await _say(ws, {"fetch": started["autoStartToken"]}))["order"]
    other = dict(order, userVisibleData=base64.b64encode(b"Pay 9 999 kr").decode())
    result, chain = _result(other, anna)
    reply = await _say(ws, {"result": result})
    if reply == {"need": "chain"}:
        encoded = [base64.b64encode(der).decode() for der in chain]
        reply = await _say(ws, {"chain": encoded})
    assert reply["errorCode"] == "verificationFailed"
    _, collected = await relay.rp("collect", {"orderRef": started["orderRef"]})
    assert collected["status"] == "failed"

    started = await _started(relay)
    ws = await _connect(relay)
    order = (await _say(ws, {"fetch": started["autoStartToken"]}))["order"]
    result, chain = _result(order, anna)
    result["chain"] = "A" * 43
    assert await _say(ws, {"result": result}) == {"need": "chain"}
    encoded = [base64.b64encode(der).decode() for der in chain]
    reply = await _say(ws, {"chain": encoded})
    assert reply["errorCode"] == "invalidParameters" and "chain" in reply["details"]


@pytest.mark.parametrize(
    "message",
    [
        '{"result": {}}',  # before a fetch
        '{"progress": "userSign"}',
        '{"fetch": "a", "progress": "userSign"}',  # two keys
        '{"hello": 1}',
        "[]",
        "not json",
        '{"fetch": "\\ud800"}',  # a lone surrogate
        '{"fetch": "' + "a" * 200 + '"}',
        "[" * 2000 + "]" * 2000,
        '{"fetch": 1e999999}',
        '{"fetch": "a\u202eb"}',
    ],
)
async def test_hostile_first_messages(relay: Relay, message: str) -> None:
    ws = await _connect(relay)
    await ws.send_str(message)
    reply = await _heard(ws)
    assert reply["errorCode"] in ("invalidParameters", "notFound"), reply
    assert "Traceback" not in json.dumps(reply)
    await _closed(ws)


async def test_messages_out_of_turn_and_other_frames(relay: Relay) -> None:
    started = await _started(relay)
    ws = await _connect(relay)
    await _say(ws, {"fetch": started["autoStartToken"]})
    assert (await _say(ws, {"chain": ["AAAA"]}))["errorCode"] == "invalidParameters"
    await _closed(ws)
    ws = await _connect(relay)
    await ws.send_bytes(b"\x00\x01")
    assert (await _heard(ws))["errorCode"] == "invalidParameters"
    ws = await _connect(relay)
    await ws.send_str('{"fetch": "' + "a" * 60_000 + '"}')  # over the message limit
    await _closed(ws)


async def test_a_silent_connection_is_closed(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_server, "FIRST_MESSAGE_SECONDS", 0.3)
    ws = await _connect(relay)
    await _closed(ws)


async def test_a_plain_get_is_refused(relay: Relay) -> None:
    response = await relay.client.get(PATH, ssl=relay.tls.clients[None])
    assert response.status == 400
    assert (await response.json())["errorCode"] == "invalidParameters"


# -- the agent's side (agent.autostart): the same relay, the real driver --------------------


@dataclass
class _Door:
    relay: Relay
    link: Link
    service: OrderService
    ui: ScriptedUi
    opened: list[asyncio.Transport]
    site_ref: str  # the order as the site knows it


@pytest.fixture
async def door(
    tmp_path: Path, ca: CertificateAuthority, store: CredentialStore, make_token: MakeToken
) -> AsyncIterator[_Door]:
    """The relay (mutual TLS for the site, as ``running_relay``), reached by the agent in
    plain HTTP through a forwarder the test can cut; the relay's origin is the forwarder's."""
    store.add(make_token(ANNA))
    opened: list[asyncio.Transport] = []
    inner, outer = free_port(), free_port()
    origin = f"http://127.0.0.1:{outer}"
    # the watch once an hour: a cancel reaches the agent by its push alone
    async with running_relay(
        tmp_path, ca, origin=origin, plain_port=inner, watch_every=3600
    ) as relay:
        forwarder = await asyncio.get_running_loop().create_server(
            functools.partial(Forwarder, inner, None, opened), "127.0.0.1", outer
        )
        ui = ScriptedUi()
        service = OrderService(
            store,
            ui,
            OrderBook(),
            clock=lambda: dt.datetime.now(dt.UTC),
            new_ref=lambda: str(uuid.uuid4()),
            agent_version="test",
        )
        started = await _started(relay)
        link = parse_link(
            f"eid-agent:///?autostarttoken={started['autoStartToken']}&server={origin}"
        )
        try:
            yield _Door(relay, link, service, ui, opened, started["orderRef"])
        finally:
            await service.aclose()
            forwarder.close()


async def _asked(ui: ScriptedUi) -> None:
    async with asyncio.timeout(5):
        while not ui.asked:
            await asyncio.sleep(0.01)


async def test_the_agent_resumes_when_its_connection_drops(door: _Door) -> None:
    async with RelayClient(door.link, allow_http=True) as client:
        running = asyncio.create_task(run_order(door.link.token, client, door.service))
        await _asked(door.ui)
        for transport in door.opened:  # the connection goes while the person types
            transport.abort()
        await asyncio.sleep(0.2)
        door.ui.secrets.put_nowait(PASSWORD)
        order, fetched = await asyncio.wait_for(running, 10)
    assert order.phase is Phase.COMPLETE and len(door.opened) == 2  # one more, to resume
    _, collected = await door.relay.rp("collect", {"orderRef": fetched.ref})
    assert collected["status"] == "complete"


async def test_the_agent_closes_its_dialog_the_moment_the_site_cancels(door: _Door) -> None:
    async with RelayClient(door.link, allow_http=True) as client:
        running = asyncio.create_task(run_order(door.link.token, client, door.service))
        await _asked(door.ui)
        assert (await door.relay.rp("cancel", {"orderRef": door.site_ref}))[0] == 200
        order, _ = await asyncio.wait_for(running, 10)  # told by the push (no watch here)
    assert order.phase is Phase.CANCELLED
    async with asyncio.timeout(2):
        while door.ui.closed != [order.ref]:  # its dialog closed
            await asyncio.sleep(0.01)
    assert len(door.opened) == 1
