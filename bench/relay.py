"""The order relay: bytes between the agent and the relay for one identification and one
signature (the agent's real client and order service through a counting TCP relay; TLS
excluded), and the relay's throughput — orders started, fetched, completed with a real
signature (verified by the relay) and collected, by 8 clients, on SQLite and PostgreSQL —
against a bare aiohttp handler doing one database write and one read per call."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import itertools
import os
import socket
import sqlite3
import ssl
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent.autostart.client import RelayClient
from agent.autostart.driver import run_order
from agent.autostart.link import parse_link
from agent.credentials import CredentialStore, KeyPurpose
from agent.orders import OrderBook
from agent.orders.service import OrderService
from bench import responder
from bench.bridge import _free_port
from bench.common import Figure, percentile
from bench.harness import InstantUi
from bench.tokens import person
from eidcore import signeddata, xmlsig
from issuer import CertificateAuthority, make_file_credential
from relay.config import Ocsp, Party, RelayConfig
from relay.server import RelayServer, build_app
from relay.store import OrderStore
from rp import OcspPolicy
from tests.agent_process import BIN
from tests.forward_kit import Forwarder
from tests.issuer_kit import postgres_cluster

PASSWORD = "bench password"
TEXT = "Jag godkänner överföringen av 1 000 kr till konto 1234-5678."


@dataclass(frozen=True)
class _Tls:
    """The relay's TLS as in service: its certificate, asking for the parties' client
    certificates from a development RP CA; ``site``: the shop's client side."""

    server: ssl.SSLContext
    site: ssl.SSLContext
    party_sha256: str
    files: tuple[Path, Path, Path]  # the relay's certificate, the shop's certificate and key


def _tls(folder: Path, now: dt.datetime) -> _Tls:
    from issuer.servecli import dev_tls
    from relay.partycert import make_party_certificate

    folder.mkdir(parents=True, exist_ok=True)
    server_cert, server_key = dev_tls(folder, now)
    made = make_party_certificate(folder, "shop", folder / "certs", "pw", now)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(server_cert, server_key)
    server.load_verify_locations(cafile=made.ca)
    server.verify_mode = ssl.CERT_OPTIONAL
    site = ssl.create_default_context(cafile=str(server_cert))
    site.load_cert_chain(str(made.certificate), str(made.key))
    files = (server_cert, made.certificate, made.key)
    return _Tls(server, site, made.sha256, files)


def _config(
    ca: CertificateAuthority,
    origin: str,
    party_sha256: str,
    ocsp_url: str | None = None,
    return_urls: tuple[str, ...] = (),
) -> RelayConfig:
    """The load comes from one address; in service the orders' agents come from many,
    each with its budget on the agent API: here there is none ([limits] rate 0). With
    ``ocsp_url`` the relay requires the issuer's answer on every result, as in service."""
    party = Party("shop", "Exempelbutiken AB", frozenset({party_sha256}), return_urls)
    ocsp = Ocsp() if ocsp_url is None else Ocsp(required=True, policy=OcspPolicy(url=ocsp_url))
    return RelayConfig(
        origin, (ca.root_certificate,), {"shop": party}, agent_budget=(1.0, 0.0), ocsp=ocsp
    )


@contextlib.contextmanager
def _responder(ca: CertificateAuthority, folder: Path) -> Iterator[tuple[str, int]]:
    """The issuer's OCSP responder in a process of its own, as the relay reaches it in
    service (its CPU is not the relay's); its URL and process id."""
    ca.save(folder)
    with responder.running(folder) as started:
        yield started


async def _serve(
    app: web.Application, port: int, tls: ssl.SSLContext | None = None, *more: int
) -> web.AppRunner:
    """``app`` on ``port`` (with ``tls``), and in plain HTTP on each of ``more``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    for plain in more:
        await web.TCPSite(runner, "127.0.0.1", plain).start()
    return runner


async def _serve_guarded(
    app: web.Application, port: int, tls: ssl.SSLContext
) -> tuple[web.AppRunner, Any]:
    """As ``eid-relay serve`` listens: every connection through the kernel's gate."""
    from eidcore import listener

    runner = web.AppRunner(app, access_log=None, keepalive_timeout=15.0)
    await runner.setup()
    assert runner.server is not None
    return runner, await listener.serve_public(runner.server, "127.0.0.1", port, tls=tls)


async def _wire(ca: CertificateAuthority, tmp: Path, now: dt.datetime) -> list[Figure]:
    data = tmp / "relay-wire"
    CredentialStore(data).add(make_file_credential(ca, person(0), PASSWORD, now))
    # the site starts orders over mutual TLS; the agent's calls are counted in plain HTTP
    # through a second listener of the same relay (TLS excluded from the figure)
    tls_port, port, counted = _free_port(), _free_port(), _free_port()
    origin = f"http://127.0.0.1:{counted}"
    tls = _tls(tmp / "relay-wire-tls", now)
    store = OrderStore(f"sqlite:///{tmp / 'relay-wire.db'}")
    app = build_app(RelayServer(_config(ca, origin, tls.party_sha256), store))
    runner = await _serve(app, tls_port, tls.server, port)
    service = OrderService(
        CredentialStore(data),
        InstantUi(PASSWORD),
        OrderBook(),
        clock=lambda: dt.datetime.now(dt.UTC),
        new_ref=lambda: str(uuid.uuid4()),
        agent_version="bench",
    )
    text = base64.b64encode(TEXT.encode()).decode()

    async def one(kind: str) -> tuple[dict[str, int], int]:
        extra = {} if kind == "auth" else {"userVisibleData": text}
        body = {"endUserIp": "192.0.2.1", **extra}
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls.site)) as http,
            http.post(f"https://127.0.0.1:{tls_port}/rp/v6.0/{kind}", json=body) as r,
        ):
            started = await r.json()
        totals = {"up": 0, "down": 0}
        server = await asyncio.get_running_loop().create_server(
            functools.partial(Forwarder, port, totals), "127.0.0.1", counted
        )
        link = parse_link(
            f"eid-agent:///?autostarttoken={started['autoStartToken']}&server={origin}"
        )
        async with RelayClient(link, allow_http=True) as client:
            order, _ = await run_order(link.token, client, service)
        await asyncio.sleep(0.02)  # let the counter see the last answer
        server.close()
        await server.wait_closed()
        assert order.completion is not None
        return totals, len(str(order.completion.wire()).encode())

    figures, both, first_both = [], 0, 0
    for kind in ("auth", "sign"):
        first, _ = await one(kind)  # the relay sees this BankID's chain for the first time
        totals, completion = await one(kind)  # as every later order: the chain is known
        total = totals["up"] + totals["down"]
        both += total
        first_both += first["up"] + first["down"]
        name = "identification" if kind == "auth" else "signature"
        figures.append(
            Figure(
                f"bytes agent↔relay, one {name}: fetch, progress, result",
                "B",
                total,
                "the v1 completion data alone (the XML signature)",
                completion,
                "—",
                True,
                f"up {totals['up']} B, down {totals['down']} B; TLS excluded; one WebSocket; "
                f"the first order with this BankID at this relay sends its chain: "
                f"{first['up'] + first['down']} B",
            )
        )
    handshake = await _tls_handshake_bytes(tls, tls_port)
    figures.append(
        Figure(
            "bytes agent↔relay, one identification and one signature",
            "B",
            both,
            "the same two orders, each the first with its BankID at this relay",
            first_both,
            "≤ 3000 B",
            both <= 3000,
            f"TLS excluded; a TLS 1.3 handshake adds {handshake[0]} B (full) or "
            f"{handshake[1]} B (resumed) per order",
        )
    )
    await service.aclose()
    await runner.cleanup()
    store.close()
    return figures


async def _tls_handshake_bytes(tls: _Tls, port: int) -> tuple[int, int]:
    """Bytes of an agent's TLS 1.3 handshake with the relay (its tickets and the closing
    alerts included, no request): a full one, then one resuming its session."""
    context = ssl.create_default_context(cafile=str(tls.files[0]))
    counted = _free_port()
    sizes = []
    session = None
    for _ in range(2):
        totals = {"up": 0, "down": 0}
        server = await asyncio.get_running_loop().create_server(
            functools.partial(Forwarder, port, totals), "127.0.0.1", counted
        )

        def handshake(earlier: ssl.SSLSession | None) -> tuple[ssl.SSLSession | None, bool]:
            with (
                socket.create_connection(("127.0.0.1", counted)) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1", session=earlier) as tls_,
            ):
                tls_.settimeout(0.2)
                with contextlib.suppress(TimeoutError, ssl.SSLError):
                    tls_.recv(1)  # the server's session tickets come after the handshake
                return tls_.session, bool(tls_.session_reused)

        session, reused = await asyncio.to_thread(handshake, session)
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
        sizes.append(totals["up"] + totals["down"])
    assert reused, "the second handshake should resume the first one's session"
    return sizes[0], sizes[1]


def _result(order: dict[str, Any], key: Any, chain: tuple[bytes, ...]) -> dict[str, Any]:
    """What the agent sends (the agent API v2): the signature value of the XML document
    it builds and signs (eidcore.xmlsig), and its chain's digest."""
    content = xmlsig.SignedContent(
        func=xmlsig.FuncId.IDENTIFICATION,
        visible=None,
        visible_format=order["userVisibleDataFormat"],
        non_visible=None,
        party_id=order["party"]["id"],
        party_name=order["party"]["name"],
        origin=order["relay"],
        nonce=signeddata.unb64url(order["nonce"]),
        order_ref=order["orderRef"],
        version="bench",
    )
    unsigned = xmlsig.prepare(content, chain, xmlsig.Algorithm.ECDSA_SHA256)
    value = key.sign(KeyPurpose.IDENTIFICATION, unsigned.signed_info)
    return {
        "signatureValue": base64.b64encode(value).decode(),
        "chain": xmlsig.chain_digest(chain),
        "version": "bench",
        "uhi": "YmVuY2g=",
    }


async def agent_completes(
    agent: aiohttp.ClientSession, base: str, token: str, credential: Any
) -> dict[str, Any]:
    """An agent's part of an identification, as the agent API v2 has it: fetch on its own
    WebSocket, the signature value, the chain when asked. The order, as fetched."""
    chain = credential.certificate_chain(KeyPurpose.IDENTIFICATION)
    async with agent.ws_connect(f"{base}/agent/v2/order") as ws:
        await ws.send_json({"fetch": token})
        order: dict[str, Any] = (await ws.receive_json())["order"]
        await ws.send_json({"result": _result(order, credential, chain)})
        reply = await ws.receive_json()
        if reply == {"need": "chain"}:
            await ws.send_json({"chain": [base64.b64encode(der).decode() for der in chain]})
            reply = await ws.receive_json()
        assert reply == {"status": "complete"}, reply
    return order


async def _load(
    port: int | tuple[int, ...], orders: int, credential: Any, tls: _Tls, clients: int = 8
) -> tuple[float, list[float]]:
    """Each order as a site and an agent make it: the site's start and collect on its
    kept-alive mutual-TLS connections, the agent's own WebSocket (a new TLS connection,
    as every agent's order has). Several ports: the relay's processes behind a load
    balancer, each client's calls going round them (an order's calls land on any)."""
    ports = port if isinstance(port, tuple) else (port,)
    turn = itertools.cycle(ports)

    def base_next() -> str:
        return f"https://127.0.0.1:{next(turn)}"

    collects: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(orders):
        queue.put_nowait(n)

    async def client(http: aiohttp.ClientSession, agent: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            body = {"endUserIp": "192.0.2.1"}
            async with http.post(f"{base_next()}/rp/v6.0/auth", json=body) as r:
                started = await r.json()
            order = await agent_completes(agent, base_next(), started["autoStartToken"], credential)
            began = time.perf_counter()
            async with http.post(
                f"{base_next()}/rp/v6.0/collect", json={"orderRef": order["orderRef"]}
            ) as r:
                assert (await r.json())["status"] == "complete"
            collects.append(time.perf_counter() - began)

    start = time.perf_counter()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls.site)) as http,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=agent_tls(tls))) as agent,
    ):
        await asyncio.gather(*(client(http, agent) for _ in range(clients)))
    return orders / (time.perf_counter() - start), collects


def agent_tls(tls: _Tls) -> ssl.SSLContext:
    """An agent's side: the relay's certificate trusted, no client certificate."""
    return ssl.create_default_context(cafile=str(tls.files[0]))


def _bare_app(db: Path) -> web.Application:
    """The same calls and messages as the relay's, each one SQLite write and read: the
    floor. The site's start and collect; the agent's WebSocket with two messages."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT)")

    async def write_read(body: object) -> str:
        key = str(uuid.uuid4())

        def work() -> None:
            conn.execute("INSERT INTO t VALUES (?, ?)", (key, str(body)))
            conn.execute("SELECT v FROM t WHERE k = ?", (key,)).fetchone()

        await asyncio.to_thread(work)
        return key

    async def call(request: web.Request) -> web.Response:
        key = await write_read(await request.json())
        return web.json_response({"orderRef": key, "autoStartToken": key, "status": "complete"})

    async def agent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            key = await write_read(message.json())
            await ws.send_json({"order": {"orderRef": key}, "status": "complete"})
        return ws

    app = web.Application()
    for path in ("/rp/v6.0/auth", "/rp/v6.0/collect"):
        app.router.add_post(path, call)
    app.router.add_get("/agent/v2/order", agent)
    return app


async def _bare_load(port: int, orders: int, tls: _Tls, clients: int = 8) -> float:
    """The same calls, over the same TLS, the site's kept alive, the agent's WebSocket on
    a connection of its own, as the relay's load makes them."""
    base = f"https://127.0.0.1:{port}"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(orders):
        queue.put_nowait(n)

    async def client(http: aiohttp.ClientSession, agent: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            async with http.post(f"{base}/rp/v6.0/auth", json={"x": 1}) as r:
                await r.read()
            async with agent.ws_connect(f"{base}/agent/v2/order") as ws:
                for step in ("fetch", "result"):
                    await ws.send_json({step: 1})
                    await ws.receive_json()
            async with http.post(f"{base}/rp/v6.0/collect", json={"x": 1}) as r:
                await r.read()

    start = time.perf_counter()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls.site)) as http,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=agent_tls(tls))) as agent,
    ):
        await asyncio.gather(*(client(http, agent) for _ in range(clients)))
    return orders / (time.perf_counter() - start)


async def _throughput(
    ca: CertificateAuthority, tmp: Path, now: dt.datetime, orders: int, pg_url: str
) -> list[Figure]:
    data = tmp / "relay-load"
    store = CredentialStore(data)
    info = store.add(make_file_credential(ca, person(1), PASSWORD, now))
    credential = store.unlock(info.id, PASSWORD)
    tls = _tls(tmp / "relay-load-tls", now)
    bare_port = _free_port()
    bare = await _serve(_bare_app(tmp / "bare.db"), bare_port, tls.server)
    floor = await _bare_load(bare_port, orders, tls)
    await bare.cleanup()
    figures = []
    with _responder(ca, tmp / "relay-load-ca") as (ocsp_url, _):
        for kind, url in (("SQLite", f"sqlite:///{tmp / 'relay-load.db'}"), ("PostgreSQL", pg_url)):
            figures.append(await _orders(ca, kind, url, ocsp_url, orders, credential, tls, floor))
    return figures


async def _orders(
    ca: CertificateAuthority,
    kind: str,
    url: str,
    ocsp_url: str,
    orders: int,
    credential: Any,
    tls: _Tls,
    floor: float,
) -> Figure:
    """The relay in this process's loop under ``_load``: orders per second, in service
    shape (the listener's gate, the relay requiring the issuer's OCSP answer)."""
    port = _free_port()
    orders_store = OrderStore(url)
    config = _config(ca, f"https://127.0.0.1:{port}", tls.party_sha256, ocsp_url)
    app = build_app(RelayServer(config, orders_store))
    runner, listening = await _serve_guarded(app, port, tls.server)
    rate, collects = await _load(port, orders, credential, tls)
    listening.close()
    await runner.cleanup()
    orders_store.close()
    return Figure(
        f"relay: orders started + collected to completion per second, {kind}",
        "/s",
        rate,
        "a bare aiohttp handler, one SQLite write and read per call, same mutual TLS",
        floor,
        "— (reported)",
        True,
        f"{orders} orders, 8 clients, 4 calls each, the relay verifying every XML "
        "signature and asking the issuer's OCSP responder (its own process, over HTTP); "
        f"collect p50 {statistics.median(collects) * 1000:.1f} ms, "
        f"p99 {percentile(collects, 99) * 1000:.1f} ms",
    )


def run(
    ca: CertificateAuthority, now: dt.datetime, tmp: Path, *, orders: int = 300
) -> list[Figure]:
    figures = asyncio.run(_wire(ca, tmp, now))
    figures.append(asyncio.run(_mtls_collect(ca, tmp, now)))
    with postgres_cluster() as pg:
        figures += asyncio.run(_throughput(ca, tmp, now, orders, pg.new_database()))
        figures.append(asyncio.run(_scale_out(ca, tmp, now, orders, pg.new_database)))
    return figures


async def _scale_out(
    ca: CertificateAuthority,
    tmp: Path,
    now: dt.datetime,
    orders: int,
    new_database: Any,
    clients: int = 16,
) -> Figure:
    """``eid-relay serve`` as an organisation runs it, on PostgreSQL: two processes on one
    database against one, the same load (this process: the sites and the agents; the
    issuer's OCSP responder in its own)."""
    data = tmp / "scale-data"
    store = CredentialStore(data)
    info = store.add(make_file_credential(ca, person(2), PASSWORD, now))
    credential = store.unlock(info.id, PASSWORD)
    with _responder(ca, tmp / "scale-ca") as (ocsp_url, responder):
        return await _scale_out_with(
            ca, tmp, now, orders, new_database, clients, ocsp_url, responder, credential
        )


async def _scale_out_with(
    ca: CertificateAuthority,
    tmp: Path,
    now: dt.datetime,
    orders: int,
    new_database: Any,
    clients: int,
    ocsp_url: str,
    responder: int,
    credential: Any,
    rounds: int = 3,
) -> Figure:
    from tests.relay_process_kit import CA, party_certificate, start_server, write_config

    config = write_config(tmp / "scale-relay", ca, origin="https://relay.bench.example")
    with config.open("a") as extra:
        extra.write(
            f'\n[ocsp]\nrequired = true\nresponder = "{ocsp_url}"\n'
            "\n[limits]\nagent_per_second = 0\n"
        )
    from issuer.servecli import dev_tls

    cert, key = dev_tls(config.parent, now)
    site = ssl.create_default_context(cafile=str(cert))
    site.load_cert_chain(*party_certificate(config))
    tls = _Tls(ssl.create_default_context(), site, "", (cert, *party_certificate(config)))
    rates: dict[int, list[float]] = {}
    spent: dict[int, list[list[float]]] = {}  # CPU ms per order: all, the relay's, the load's
    sets: dict[int, tuple[tuple[int, ...], list[Any]]] = {}
    try:
        for count in (1, 2):
            url, ports = new_database(), tuple(_free_port() for _ in range(count))
            sets[count] = (ports, [])
            for port in ports:
                argv = [
                    *(str(BIN / "eid-relay"), "serve", "--config", str(config)),
                    *("--port", str(port), "--db", url, "--tls-cert", str(cert)),
                    *("--tls-key", str(key), "--client-ca", str(config.parent / CA)),
                ]
                sets[count][1].append(await asyncio.to_thread(start_server, argv))
            await _load(ports, 20, credential, tls, clients)  # warm: chains, pools
        # one process, then two, three times over: drift on a noisy machine hits both
        for _ in range(rounds):
            for count, (ports, procs) in sets.items():
                pids = [p.proc.pid for p in procs]
                before = (_busy(), _cpu(pids), _own_cpu() + _cpu([responder]))
                rate, _ = await _load(ports, orders, credential, tls, clients)
                after = (_busy(), _cpu(pids), _own_cpu() + _cpu([responder]))
                rates.setdefault(count, []).append(rate)
                spent.setdefault(count, []).append(
                    [(b - a) / orders * 1000 for a, b in zip(before, after, strict=True)]
                )
    finally:
        for _, procs in sets.values():
            for server in procs:
                await asyncio.to_thread(server.stop)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    every, relay_cpu, load_cpu = (statistics.median(part) for part in zip(*spent[1], strict=True))
    ratio = two / one
    rest = every - relay_cpu - load_cpu
    cores = os.cpu_count() or 1
    return Figure(
        "relay on PostgreSQL: orders per second, 2 processes",
        "/s",
        two,
        "1 process, same database server and load",
        one,
        "≥ 1.6×",
        ratio >= 1.6,
        f"{orders} orders, {clients} clients, each order's calls going round the processes; "
        f"medians of {rounds} rounds, one process then two (ratios "
        f"{', '.join(f'{b / a:.2f}' for a, b in zip(rates[1], rates[2], strict=True))}); "
        f"{cores} cores for the relay, PostgreSQL, the load and the OCSP responder together: "
        f"CPU per order {every:.1f} ms — the relay {relay_cpu:.1f}, the load and the "
        f"responder {load_cpu:.1f}, PostgreSQL and the rest {rest:.1f} — so {cores} cores "
        f"carry at most {cores * 1000 / every:.0f} orders/s whatever the relay's processes, "
        f"{cores * 1000 / every / one:.2f}× the one process's rate",
    )


def _busy() -> float:
    """CPU seconds the whole machine has spent busy (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - fields[3] - fields[4]) / ticks


def _cpu(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(stat[11]) + int(stat[12])  # utime, stime
    return total / ticks


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _mtls_collect(
    ca: CertificateAuthority, tmp: Path, now: dt.datetime, calls: int = 2000, clients: int = 8
) -> Figure:
    """``/rp/v6.0/collect`` over mutual TLS, the party known by its certificate, under 8
    concurrent sites (kept-alive connections, as a site's HTTP client keeps them), against
    a bare aiohttp handler behind the same TLS, requiring the same client certificate."""
    from eidcore import listener

    port = _free_port()
    made = _tls(tmp / "mtls", now)
    config = _config(ca, f"https://127.0.0.1:{port}", made.party_sha256)
    tls, site_tls = made.server, made.site

    async def collects(base: str, refs: list[str]) -> list[float]:
        took: list[float] = []
        queue: asyncio.Queue[str] = asyncio.Queue()
        for n in range(calls):
            queue.put_nowait(refs[n % len(refs)])

        async def site(http: aiohttp.ClientSession) -> None:
            while not queue.empty():
                ref = queue.get_nowait()
                began = time.perf_counter()
                async with http.post(f"{base}/collect", json={"orderRef": ref}) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                took.append(time.perf_counter() - began)

        connector = aiohttp.TCPConnector(ssl=site_tls, limit=clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(*(site(http) for _ in range(clients)))
        return took

    store = OrderStore(f"sqlite:///{tmp / 'mtls' / 'relay.db'}")
    runner = web.AppRunner(build_app(RelayServer(config, store)), access_log=None)
    await runner.setup()
    assert runner.server is not None
    listening = await listener.serve_public(runner.server, "127.0.0.1", port, tls=tls)
    base = f"https://127.0.0.1:{port}/rp/v6.0"
    connector = aiohttp.TCPConnector(ssl=site_tls)
    async with aiohttp.ClientSession(connector=connector) as http:
        refs = []
        for _ in range(clients):
            async with http.post(f"{base}/auth", json={"endUserIp": "192.0.2.1"}) as r:
                refs.append((await r.json())["orderRef"])
    relay_took = await collects(base, refs)
    listening.close()
    await runner.cleanup()
    store.close()

    async def bare(request: web.Request) -> web.Response:
        transport = request.transport
        peer = transport.get_extra_info("ssl_object") if transport is not None else None
        assert peer is not None and peer.getpeercert(binary_form=True)
        body = await request.json()
        return web.json_response(
            {"orderRef": body["orderRef"], "status": "pending", "hintCode": "started"}
        )

    bare_tls = tls  # the same context: the handler asserts the certificate came
    app = web.Application()
    app.router.add_post("/rp/v6.0/collect", bare)
    bare_port = _free_port()
    bare_runner = web.AppRunner(app, access_log=None)
    await bare_runner.setup()
    await web.TCPSite(bare_runner, "127.0.0.1", bare_port, ssl_context=bare_tls).start()
    bare_took = await collects(f"https://127.0.0.1:{bare_port}/rp/v6.0", refs)
    await bare_runner.cleanup()
    p50, bare_p50 = statistics.median(relay_took), statistics.median(bare_took)
    return Figure(
        "relay: /rp/v6.0/collect over mutual TLS, 8 sites at once (p50)",
        "ms",
        p50 * 1000,
        "a bare aiohttp handler behind the same mutual TLS",
        bare_p50 * 1000,
        "— (reported)",
        True,
        f"{calls} calls; p99 {percentile(relay_took, 99) * 1000:.1f} ms "
        f"(bare {percentile(bare_took, 99) * 1000:.1f} ms); the relay reads the order from "
        "SQLite and names the party by its certificate on every call",
    )
