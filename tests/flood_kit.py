"""A flood driver for a real agent process: order starts at a fixed rate from many
origins, and collect polls at a fixed rate. Runs reduced in the suite
(tests/test_floods.py) and in full in ./dev bench (bench/floods.py)."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

HEADERS = {"Content-Type": "application/json", "X-Eid-Agent": "1"}


@dataclass
class Flood:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    refs: list[tuple[str, str]] = field(default_factory=list)  # (origin, orderRef) of 201s

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


Send = Callable[[int, "Flood"], Coroutine[Any, Any, None]]


async def _paced(rate: float, seconds: float, send: Send) -> Flood:
    """Call ``send(n, flood)`` ``rate`` times a second for ``seconds``, on schedule (a
    request that is late is still sent: the figure is what the agent answered)."""
    flood = Flood()
    start = time.perf_counter()
    tasks = []
    total = int(rate * seconds)
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(n, flood)))
    await asyncio.gather(*tasks)
    flood.seconds = time.perf_counter() - start
    return flood


async def start_flood(port: int, rate: float, seconds: float, origins: int) -> Flood:
    url = f"http://127.0.0.1:{port}/v1/auth"
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(n: int, flood: Flood) -> None:
            origin = f"https://site{n % origins}.example"
            nonce = base64.b64encode(os.urandom(32)).decode()
            began = time.perf_counter()
            async with session.post(
                url, json={"nonce": nonce}, headers={**HEADERS, "Origin": origin}
            ) as response:
                body = await response.json(content_type=None)
                flood.latencies.append(time.perf_counter() - began)
                flood.sent += 1
                flood.statuses[response.status] += 1
                if response.status == 201:
                    flood.refs.append((origin, body["orderRef"]))

        return await _paced(rate, seconds, send)


async def collect_flood(port: int, origin: str, ref: str, rate: float, seconds: float) -> Flood:
    url = f"http://127.0.0.1:{port}/v1/collect"
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(_n: int, flood: Flood) -> None:
            began = time.perf_counter()
            async with session.post(
                url, json={"orderRef": ref}, headers={**HEADERS, "Origin": origin}
            ) as response:
                await response.read()
                flood.latencies.append(time.perf_counter() - began)
                flood.sent += 1
                flood.statuses[response.status] += 1

        return await _paced(rate, seconds, send)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
