"""A real order relay on loopback (SQLite in a temporary folder, a clock the test moves),
a relying party's client for it, and an agent's side done by hand with a real BankID on
file: what the agent will do, until it does it itself."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from agent.tokens import KeyPurpose, TokenStore, UnlockedCredential
from eidcore import signeddata
from issuer import CertificateAuthority
from relay.config import Party, RelayConfig
from relay.server import RelayServer, build_app
from relay.store import OrderStore

ORIGIN = "https://relay.example"
SHOP_TOKEN = "shop-bearer-token-0123456789"
OTHER_TOKEN = "other-bearer-token-0123456789"
RETURN = "https://shop.example/eid/return"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def relay_config(ca: CertificateAuthority) -> RelayConfig:
    parties = {
        "shop": Party("shop", "Exempelbutiken AB", _digest(SHOP_TOKEN), (RETURN,)),
        "other": Party("other", "Annan AB", _digest(OTHER_TOKEN)),
    }
    return RelayConfig(ORIGIN, (ca.root_certificate,), parties)


@dataclass
class Clock:
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class Relay:
    client: TestClient[Any, Any]
    clock: Clock
    store: OrderStore

    async def rp(self, path: str, body: object, token: str = SHOP_TOKEN,
                 raw: bytes | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        response = await self.client.post(f"/rp/v1/{path}", json=None if raw else body,
                                          data=raw, headers=headers)  # fmt: skip
        return response.status, await response.json()

    async def agent(self, path: str, body: object,
                    raw: bytes | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
        headers = {"Content-Type": "application/json"}
        response = await self.client.post(f"/agent/v1/{path}", json=None if raw else body,
                                          data=raw, headers=headers)  # fmt: skip
        return response.status, await response.json()


@asynccontextmanager
async def running_relay(tmp: Path, ca: CertificateAuthority,
                        db: str | None = None) -> AsyncIterator[Relay]:  # fmt: skip
    clock = Clock()
    store = OrderStore(db or f"sqlite:///{tmp / 'relay.db'}")
    server = RelayServer(relay_config(ca), store, clock=clock)
    client = TestClient(TestServer(build_app(server), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Relay(client, clock, store)
    finally:
        await client.close()
        store.close()


def completion_for(order: dict[str, Any], credential: UnlockedCredential, *,
                   party: str | None = None, origin: str | None = None,
                   door: signeddata.Door = signeddata.Door.RELAY,
                   now: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """What an agent posts for a fetched ``order``: signedData over the relay's origin,
    the party, its nonce and the text, signed with the key for the order's type."""
    kind = order["type"]
    purpose = KeyPurpose.IDENTIFICATION if kind == "auth" else KeyPurpose.SIGNATURE
    visible = order.get("userVisibleData")
    non_visible = order.get("userNonVisibleData")
    signed = signeddata.build(
        type=kind, origin=origin or order["relay"], nonce=signeddata.unb64url(order["nonce"]),
        time=now or dt.datetime.now(dt.UTC), order_ref=order["orderRef"], agent_version="test",
        user_visible_data=None if visible is None else base64.b64decode(visible).decode(),
        user_visible_format=order["userVisibleDataFormat"],
        user_non_visible_data=None if non_visible is None else base64.b64decode(non_visible),
        door=door, party=None if door is signeddata.Door.BRIDGE else party or order["party"]["id"],
    )  # fmt: skip
    return {
        "signedData": base64.b64encode(signed).decode(),
        "signature": base64.b64encode(credential.sign(purpose, signed)).decode(),
        "algorithm": "ES256",
        "certificateChain": [base64.b64encode(c).decode()
                             for c in credential.certificate_chain(purpose)],
        "token": {"kind": "file"},
    }  # fmt: skip


def unlocked(store: TokenStore, token: Any, password: str) -> UnlockedCredential:
    return store.unlock(store.add(token).id, password)
