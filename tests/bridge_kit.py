"""Helpers for bridge tests: a scripted person behind the UI port, and a running bridge.

The scripted UI stands in for the person only; the bridge, order service, token store and
credentials under it are the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.bridge import BridgeConfig, OriginPolicy, build_app
from agent.credentials import CredentialInfo, CredentialStore
from agent.credentials.card.monitor import CardWatcher
from agent.credentials.hardware import Hardware
from agent.credentials.pkcs11.watcher import TokenWatcher
from agent.notices import Notice
from agent.orders import OrderBook
from agent.orders.service import OrderService
from agent.ui.port import EnrolmentAnswer, PinAnswer, PinRequest, Request

ORIGIN = "https://bank.example"


# Ports for the servers tests start are chosen below the kernel's ephemeral range
# (32768-60999 on Linux): a port the kernel handed out for a moment could be taken by any
# test's outgoing connection before the server bound it — an agent found "its" port in use
# once, under three workers. Each xdist worker has a block of its own, so two workers
# never choose the same port either.
_PORTS_FROM, _PORT_BLOCK = 20_000, 2_000
_next_port = itertools.count()


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = _PORTS_FROM + (int(worker) % 6 if worker.isdigit() else 0) * _PORT_BLOCK
    for _ in range(_PORT_BLOCK):
        port = base + next(_next_port) % _PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # still held by an earlier test's server: the next one
            return port
    raise RuntimeError("no free port in this worker's block")


def new_nonce(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@dataclass
class ScriptedUi:
    """Answers as a person would, from a queue; records what it was shown."""

    secrets: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    pick: int = 0
    requests: list[Request] = field(default_factory=list)
    problems: list[Notice | None] = field(default_factory=list)
    asked: list[CredentialInfo] = field(default_factory=list)  # as each PIN dialog saw it
    told: list[Notice] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    pin_answers: asyncio.Queue[PinAnswer | None] = field(default_factory=asyncio.Queue)
    pin_requests: list[tuple[PinRequest, Notice | None]] = field(default_factory=list)
    enrolments: asyncio.Queue[EnrolmentAnswer | None] = field(default_factory=asyncio.Queue)

    async def choose(self, request: Request) -> CredentialInfo | None:
        self.requests.append(request)
        return request.choices[self.pick]

    async def ask_secret(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> str | None:
        self.problems.append(problem)
        self.asked.append(credential)
        return await self.secrets.get()

    async def confirm_pin_pad(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> bool:
        """Any answer in ``secrets`` goes on (the PIN is typed on the pad); None cancels."""
        self.problems.append(problem)
        self.asked.append(credential)
        return await self.secrets.get() is not None

    async def ask_pins(self, request: PinRequest, problem: Notice | None) -> PinAnswer | None:
        self.pin_requests.append((request, problem))
        return await self.pin_answers.get()

    async def ask_enrolment(self, problem: Notice | None) -> EnrolmentAnswer | None:
        self.problems.append(problem)
        return await self.enrolments.get()

    async def tell(self, notice: Notice) -> None:
        self.told.append(notice)

    async def close(self, order_ref: str) -> None:
        self.closed.append(order_ref)


@dataclass
class Bridge:
    client: TestClient[web.Request, web.Application]
    ui: ScriptedUi
    service: OrderService
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def post(
        self,
        path: str,
        body: Any,
        *,
        origin: str | None = ORIGIN,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        h = {"Content-Type": "application/json", "X-Eid-Agent": "1"}
        if origin is not None:
            h["Origin"] = origin
        h.update(headers or {})
        data = body if isinstance(body, (bytes, str)) else __import__("json").dumps(body)
        async with self.client.post(path, data=data, headers=h) as resp:
            return resp.status, await resp.json(content_type=None)

    async def start(self, kind: str = "auth", *, origin: str = ORIGIN, **fields: Any) -> str:
        status, body = await self.post(
            f"/v1/{kind}", {"nonce": new_nonce(), **fields}, origin=origin
        )
        assert status == 201, body
        return str(body["orderRef"])

    async def collect(self, ref: str, origin: str = ORIGIN) -> dict[str, Any]:
        status, body = await self.post("/v1/collect", {"orderRef": ref}, origin=origin)
        assert status == 200, body
        return body

    async def wait_for(
        self, ref: str, *states: str, timeout: float = 10.0, origin: str = ORIGIN
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            body = await self.collect(ref, origin)
            if body.get("hintCode", body["status"]) in states or body["status"] in states:
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"still {body} after {timeout}s")
            await asyncio.sleep(0.15)  # within the bridge's per-origin poll rate


@asynccontextmanager
async def running_bridge(
    data_dir: Path,
    *,
    policy: OriginPolicy | None = None,
    ttl: dt.timedelta = dt.timedelta(seconds=180),
    check_peer_user: bool = True,
    store: CredentialStore | None = None,
    hardware: CardWatcher | Hardware | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    runs: Sequence[TokenWatcher] = (),
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> AsyncIterator[Bridge]:
    """``hardware``: a card watcher (run here), or the Hardware over ``runs`` (run here)."""
    ui = ScriptedUi()
    running = [hardware] if isinstance(hardware, CardWatcher) else list(runs)
    watching = [asyncio.create_task(w.run()) for w in running]
    service = OrderService(
        store or CredentialStore(data_dir),
        ui,
        OrderBook(ttl),
        clock=clock,
        new_ref=lambda: str(uuid.uuid4()),
        agent_version="test",
        hardware=hardware,
    )
    port = free_port()
    config = BridgeConfig(
        port=port,
        policy=policy or OriginPolicy(),
        check_peer_user=check_peer_user,
        monotonic=monotonic,
    )
    server = TestServer(build_app(service, config), host="127.0.0.1", port=port)
    client: TestClient[web.Request, web.Application] = TestClient(server)
    await client.start_server()
    try:
        yield Bridge(client, ui, service, port)
    finally:
        await service.aclose()
        await client.close()
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
