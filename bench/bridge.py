"""Benchmarks of the localhost bridge: overhead, bytes on the wire, memory."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent.credentials import CredentialStore
from agent.orders import Phase
from bench.common import Figure, percentile
from bench.harness import build
from bench.tokens import PASSWORD, light_kdf, person
from issuer import CertificateAuthority, make_file_credential
from tests.forward_kit import Forwarder

ORIGIN = "https://bank.example"
GAP = 0.05  # longer than the light KDF, so the order is complete when collected
HEADERS = {"Content-Type": "application/json", "X-Eid-Agent": "1", "Origin": ORIGIN}


def _nonce() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def _site(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _bare_app(completion: dict[str, Any]) -> web.Application:
    """The baseline: aiohttp answering the same two requests with canned bodies."""

    async def start(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"orderRef": str(uuid.uuid4())}, status=201)

    async def collect(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response(completion)

    app = web.Application()
    app.router.add_post("/v1/auth", start)
    app.router.add_post("/v1/collect", collect)
    return app


async def _overhead(data_dir: Path, rounds: int) -> list[Figure]:
    port, bare_port = _free_port(), _free_port()
    app, service = build(data_dir, port, PASSWORD)
    ours = await _site(app, port)
    samples: list[float] = []
    bare: list[float] = []
    async with aiohttp.ClientSession() as http:
        completion: dict[str, Any] = {}
        for i in range(rounds + 20):  # the first 20 warm up and are not counted
            t0 = time.perf_counter()
            async with http.post(
                f"http://127.0.0.1:{port}/v1/auth", json={"nonce": _nonce()}, headers=HEADERS
            ) as r:
                ref = (await r.json())["orderRef"]
            t1 = time.perf_counter()
            # The person and the KDF are not the bridge's cost. Both sides wait the same
            # gap before collecting, so wake-up latency after idling hits both alike.
            await asyncio.sleep(GAP)
            assert (await service.outcome(ref)).phase is Phase.COMPLETE
            t2 = time.perf_counter()
            async with http.post(
                f"http://127.0.0.1:{port}/v1/collect", json={"orderRef": ref}, headers=HEADERS
            ) as r:
                completion = await r.json()
            t3 = time.perf_counter()
            if i >= 20:
                samples.append((t1 - t0) + (t3 - t2))
        baseline = await _site(_bare_app(completion), bare_port)
        for i in range(rounds + 20):
            t0 = time.perf_counter()
            async with http.post(
                f"http://127.0.0.1:{bare_port}/v1/auth", json={"nonce": _nonce()}, headers=HEADERS
            ) as r:
                ref = (await r.json())["orderRef"]
            t1 = time.perf_counter()
            await asyncio.sleep(GAP)
            t2 = time.perf_counter()
            async with http.post(
                f"http://127.0.0.1:{bare_port}/v1/collect", json={"orderRef": ref}, headers=HEADERS
            ) as r:
                await r.json()
            if i >= 20:
                bare.append((t1 - t0) + (time.perf_counter() - t2))
        await baseline.cleanup()
    await service.aclose()
    await ours.cleanup()
    p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
    b50, b99 = percentile(bare, 50) * 1000, percentile(bare, 99) * 1000
    base = "bare aiohttp handlers, same two requests and bodies"
    return [
        Figure(
            "bridge overhead start→collect(complete), p50",
            "ms",
            p50,
            base,
            b50,
            "≤ 2× baseline and ≤ 5 ms",
            p50 <= 5 and p50 / b50 <= 2,
        ),
        Figure(
            "bridge overhead start→collect(complete), p99",
            "ms",
            p99,
            base,
            b99,
            "≤ 2× baseline",
            p99 / b99 <= 2,
        ),
    ]


async def _options(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], totals: dict[str, int]
) -> int:
    """One preflight; the bytes it cost both ways."""
    before = sum(totals.values())
    async with http.options(url, headers=headers) as r:
        await r.read()
    await asyncio.sleep(0.01)  # let the relay count the whole answer
    return sum(totals.values()) - before


async def _wire(data_dir: Path) -> list[Figure]:
    port, relay_port = _free_port(), _free_port()
    typing = asyncio.Event()  # the password comes after the first poll, as a person's does
    app, service = build(data_dir, port, PASSWORD, typing)
    runner = await _site(app, port)
    text = "Jag godkänner överföringen av 1 000 kr till konto 1234-5678."
    figures = []
    for kind, extra in (
        ("auth", {}),
        ("sign", {"userVisibleData": base64.b64encode(text.encode()).decode()}),
    ):
        totals = {"up": 0, "down": 0}
        typing.clear()
        server = await asyncio.get_running_loop().create_server(
            functools.partial(Forwarder, port, totals), "127.0.0.1", relay_port
        )
        # As a page does it: a preflight per path (cached afterwards for Max-Age), the
        # start, one poll while the person types, and the poll that brings the result.
        host = {"Host": f"127.0.0.1:{port}"}
        preflight = {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-eid-agent",
            **host,
        }
        async with aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as http:
            base = f"http://127.0.0.1:{relay_port}"
            preflight_bytes = await _options(http, f"{base}/v1/{kind}", preflight, totals)
            async with http.post(
                f"{base}/v1/{kind}", json={"nonce": _nonce(), **extra}, headers={**HEADERS, **host}
            ) as r:
                ref = (await r.json())["orderRef"]
            preflight_bytes += await _options(http, f"{base}/v1/collect", preflight, totals)
            async with http.post(
                f"{base}/v1/collect", json={"orderRef": ref}, headers={**HEADERS, **host}
            ) as r:
                assert (await r.json())["status"] == "pending"
            typing.set()
            assert (await service.outcome(ref)).phase is Phase.COMPLETE
            async with http.post(
                f"{base}/v1/collect", json={"orderRef": ref}, headers={**HEADERS, **host}
            ) as r:
                body = await r.read()
            await asyncio.sleep(0.01)
        server.close()
        completion = json.dumps(json.loads(body)["completionData"])
        chain = sum(len(c) for c in json.loads(completion)["certificateChain"])
        total = totals["up"] + totals["down"]
        name = "identification" if kind == "auth" else "signature"
        figures.append(
            Figure(
                f"bytes on the wire, one {name}: preflights, start, 2 polls",
                "B",
                total,
                "the completion data alone",
                len(completion),
                "≤ 3000 B",
                total <= 3000,
                note=f"up {totals['up']} B, down {totals['down']} B; without the two preflights "
                f"(cached for 2 h) {total - preflight_bytes} B; certificate chain {chain} B",
            )
        )
    await service.aclose()
    await runner.cleanup()
    return figures


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _memory(data_dir: Path, orders: int) -> list[Figure]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.harness", str(data_dir), str(port), PASSWORD],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        idle = _rss_kib(proc.pid)
        readings = []
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}"
            for i in range(orders):
                async with http.post(
                    f"{url}/v1/auth", json={"nonce": _nonce()}, headers=HEADERS
                ) as r:
                    ref = (await r.json())["orderRef"]
                while True:
                    async with http.post(
                        f"{url}/v1/collect", json={"orderRef": ref}, headers=HEADERS
                    ) as r:
                        if (await r.json())["status"] == "complete":
                            break
                    await asyncio.sleep(0.005)
                if i + 1 in (orders // 2, orders):
                    readings.append(_rss_kib(proc.pid))
    finally:
        proc.terminate()
        proc.wait()
    half, full = readings
    growth = full - half
    return [
        Figure(
            f"agent RSS after {orders} orders",
            "MiB",
            full / 1024,
            "the same process idle, before any order",
            idle / 1024,
            f"no growth: second {orders // 2} orders add < 2 MiB",
            growth < 2048,
            note=f"after {orders // 2}: {half / 1024:.1f} MiB; growth over the last "
            f"{orders // 2}: {growth} KiB",
        ),
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    ca: CertificateAuthority, now: dt.datetime, tmp: Path, *, rounds: int, orders: int
) -> list[Figure]:
    data_dir = tmp / "bridge"
    CredentialStore(data_dir).add(
        make_file_credential(ca, person(2), PASSWORD, now, kdf=light_kdf())
    )

    async def all_figures() -> list[Figure]:
        return [
            *await _overhead(data_dir, rounds),
            *await _wire(data_dir),
            *await _memory(data_dir, orders),
        ]

    return asyncio.run(all_figures())
