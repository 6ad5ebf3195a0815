"""A bridge process for the memory benchmark: the agent's real composition (bridge, order
service, token store) with a UI that answers at once, and the rate limiter's clock as an
input so a thousand orders are not throttled. Prints ``ready`` when listening."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sys
import uuid
from pathlib import Path

from aiohttp import web

from agent.bridge import BridgeConfig, build_app
from agent.credentials import CredentialInfo, CredentialStore
from agent.notices import Notice
from agent.orders import OrderBook
from agent.orders.service import OrderService
from agent.ui.port import EnrolmentAnswer, PinAnswer, PinRequest, Request


class InstantUi:
    """Answers at once; with ``hold``, the password only once it is set (the person still
    typing while a page polls)."""

    def __init__(self, password: str, hold: asyncio.Event | None = None) -> None:
        self.password, self.hold = password, hold

    async def choose(self, request: Request) -> CredentialInfo | None:
        return request.choices[0]

    async def ask_secret(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> str | None:
        if self.hold is not None:
            await self.hold.wait()
        return self.password

    async def confirm_pin_pad(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> bool:
        return True

    async def ask_pins(self, request: PinRequest, problem: Notice | None) -> PinAnswer | None:
        return None  # no PIN management in the benchmark

    async def ask_enrolment(self, problem: Notice | None) -> EnrolmentAnswer | None:
        return None  # no enrolment either

    async def tell(self, notice: Notice) -> None:
        pass

    async def close(self, order_ref: str) -> None:
        pass


def build(
    data_dir: Path, port: int, password: str, hold: asyncio.Event | None = None
) -> tuple[web.Application, OrderService]:
    ticks = itertools.count(step=1000.0)  # every request sees a refilled bucket
    service = OrderService(
        CredentialStore(data_dir),
        InstantUi(password, hold),
        OrderBook(),
        clock=lambda: dt.datetime.now(dt.UTC),
        new_ref=lambda: str(uuid.uuid4()),
        agent_version="bench",
    )
    config = BridgeConfig(port=port, monotonic=lambda: next(ticks))
    return build_app(service, config), service


async def main(data_dir: Path, port: int, password: str) -> None:
    app, _service = build(data_dir, port, password)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
