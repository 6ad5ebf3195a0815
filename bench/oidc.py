"""The OpenID Provider (``oidc/``): what its part of a login costs. An in-process relay
behind mutual TLS (as ``eid-relay serve``), the provider in front of it as its party (its
own TLS, the relay reached with its client certificate, every result verified with the
rp kit), and the person's agent played by this code (fetch the order, send the
signature value on the agent API v2), whose time is left out of the figures:

- a whole login — authorize, the login page's start, the way back and the code, the
  token — against the relay's own start and collect for the same order;
- the token endpoint (p50/p99) against a bare aiohttp handler that reads a form and
  answers JSON of the same size, behind the same TLS;
- discovery and the JWKS, served from memory, against a bare handler's static JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import ssl
import statistics
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import rp
from agent.credentials import CredentialStore
from bench.common import Figure
from bench.relay import _config, _serve, _serve_guarded, _tls, agent_completes
from issuer import CertificateAuthority, make_file_credential
from oidc.config import OidcConfig, RelaySide
from oidc.rules import Client
from oidc.server import Provider, build_app
from oidc.store import OidcStore
from relay.server import RelayServer
from relay.server import build_app as relay_app
from relay.store import OrderStore
from tests.bridge_kit import free_port as _free_port
from tests.conftest import ANNA

__all__ = ["run"]

PASSWORD = "bench password"
SECRET = "bench-secret-0123456789"
CALLBACK = "https://site.example/callback"
CHALLENGE_VERIFIER = "x" * 43


def _challenge() -> str:
    import base64

    digest = hashlib.sha256(CHALLENGE_VERIFIER.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _logins(
    issuer: str,
    relay_base: str,
    count: int,
    credential: Any,
    browser_tls: ssl.SSLContext,
    agent_tls: ssl.SSLContext,
) -> tuple[list[float], list[float]]:
    """Logins one after another: (the provider's part of each, the token call's)."""
    parts, tokens = [], []
    query = urllib.parse.urlencode(
        {
            "client_id": "site",
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "openid profile",
            "code_challenge": _challenge(),
            "code_challenge_method": "S256",
            "state": "s",
            "nonce": "n",
        }
    )
    connector = aiohttp.TCPConnector(ssl=agent_tls)
    async with aiohttp.ClientSession(connector=connector) as agent:
        for _ in range(count):
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=browser_tls), cookie_jar=jar
            ) as browser:
                began = time.perf_counter()
                async with browser.get(f"{issuer}/authorize?{query}", allow_redirects=False) as r:
                    page = r.headers["Location"]
                async with browser.get(issuer + page) as r:
                    body = await r.text()
                login = re.search(r'name="l" value="([^"]+)"', body)
                assert login, body
                async with browser.post(f"{issuer}/login/start", data={"l": login.group(1)}) as r:
                    body = await r.text()
                link = re.search(r'id="open" href="([^"]+)"', body)
                assert link, body
                first = time.perf_counter() - began
                # the agent's part (not counted): fetch, sign, post
                token = urllib.parse.parse_qs(
                    urllib.parse.urlsplit(link.group(1).replace("&amp;", "&")).query
                )["autostarttoken"][0]
                order = await agent_completes(agent, relay_base, token, credential)
                began = time.perf_counter()
                async with browser.get(order["returnUrl"], allow_redirects=False) as r:
                    back = r.headers["Location"]
                code = urllib.parse.parse_qs(urllib.parse.urlsplit(back).query)["code"][0]
                asked = time.perf_counter()
                async with browser.post(
                    f"{issuer}/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": CALLBACK,
                        "code_verifier": CHALLENGE_VERIFIER,
                    },
                    auth=aiohttp.BasicAuth("site", SECRET),
                ) as r:
                    answer = await r.json()
                    assert "id_token" in answer, answer
                now = time.perf_counter()
                tokens.append(now - asked)
                parts.append(first + now - began)
    return parts, tokens


async def _relay_alone(
    relay_base: str,
    count: int,
    credential: Any,
    site: ssl.SSLContext,
    agent_tls: ssl.SSLContext,
) -> list[float]:
    """The relay's own start and collect for the same orders, the agent's part the same
    and not counted."""
    took = []
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=site)) as http,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=agent_tls)) as agent,
    ):
        for _ in range(count):
            began = time.perf_counter()
            async with http.post(
                f"{relay_base}/rp/v6.0/auth", json={"endUserIp": "192.0.2.1"}
            ) as r:
                started = await r.json()
            first = time.perf_counter() - began
            await agent_completes(agent, relay_base, started["autoStartToken"], credential)
            began = time.perf_counter()
            async with http.post(
                f"{relay_base}/rp/v6.0/collect", json={"orderRef": started["orderRef"]}
            ) as r:
                assert (await r.json())["status"] == "complete"
            took.append(first + time.perf_counter() - began)
    return took


def _bare_app(body: dict[str, object]) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        await request.post()
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def static(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/static", static)
    return app


async def _bare_times(
    port: int, tls: ssl.SSLContext, calls: int
) -> tuple[list[float], list[float]]:
    posts, gets = [], []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http:
        for _ in range(calls):
            began = time.perf_counter()
            async with http.post(
                f"https://127.0.0.1:{port}/token",
                data={"grant_type": "authorization_code", "code": "c" * 43},
                auth=aiohttp.BasicAuth("site", SECRET),
            ) as r:
                await r.read()
            posts.append(time.perf_counter() - began)
            began = time.perf_counter()
            async with http.get(f"https://127.0.0.1:{port}/static") as r:
                await r.read()
            gets.append(time.perf_counter() - began)
    return posts, gets


async def _metadata(issuer: str, tls: ssl.SSLContext, calls: int) -> list[float]:
    took = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http:
        for _ in range(calls):
            began = time.perf_counter()
            async with http.get(f"{issuer}/.well-known/openid-configuration") as r:
                await r.read()
            async with http.get(f"{issuer}/jwks") as r:
                await r.read()
            took.append((time.perf_counter() - began) / 2)
    return took


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(ca: CertificateAuthority, tmp: Path, now: dt.datetime, logins: int) -> list[Figure]:
    from issuer.servecli import dev_tls

    made = _tls(tmp / "oidc-relay", now)
    relay_port, oidc_port, bare_port = _free_port(), _free_port(), _free_port()
    relay_base = f"https://127.0.0.1:{relay_port}"
    issuer = f"https://127.0.0.1:{oidc_port}"
    config = _config(ca, relay_base, made.party_sha256, return_urls=(f"{issuer}/login/return",))
    relay_store = OrderStore(f"sqlite:///{tmp / 'oidc-relay.db'}")
    relay_runner, relay_listening = await _serve_guarded(
        relay_app(RelayServer(config, relay_store)), relay_port, made.server
    )
    (tmp / "oidc-tls").mkdir(parents=True, exist_ok=True)
    cert, key = dev_tls(tmp / "oidc-tls", now)
    provider_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    provider_tls.load_cert_chain(cert, key)
    browser_tls = ssl.create_default_context(cafile=str(cert))
    relay_cert, party_cert, party_key = made.files
    api = rp.RelayApi(relay_base, (party_cert, party_key), ca_file=relay_cert)
    client = Client(
        "site",
        frozenset({CALLBACK}),
        secret_sha256=(hashlib.sha256(SECRET.encode()).hexdigest(),),
        name="Exempelsajten",
    )
    oidc_config = OidcConfig(
        issuer,
        f"sqlite:///{tmp / 'oidc.db'}",
        (ca.root_certificate,),
        b"k" * 32,
        RelaySide(relay_base, relay_base, "shop", Path(), Path(), None),
        {"site": client},
    )
    store = OidcStore.open(oidc_config.database)
    provider_runner = await _serve(
        build_app(Provider(oidc_config, store, api)), oidc_port, provider_tls
    )
    bare_runner = await _serve(_bare_app({"x": "y" * 900}), bare_port, provider_tls)
    credential = CredentialStore(tmp / "oidc-files").add(
        make_file_credential(ca, ANNA, PASSWORD, now)
    )
    unlocked = CredentialStore(tmp / "oidc-files").unlock(credential.id, PASSWORD)
    try:
        agent_tls = ssl.create_default_context(cafile=str(relay_cert))
        await _logins(issuer, relay_base, 5, unlocked, browser_tls, agent_tls)  # warm
        parts, tokens = await _logins(issuer, relay_base, logins, unlocked, browser_tls, agent_tls)
        relay_only = await _relay_alone(relay_base, logins, unlocked, made.site, agent_tls)
        bare_posts, bare_gets = await _bare_times(bare_port, browser_tls, 500)
        metadata = await _metadata(issuer, browser_tls, 500)
    finally:
        for runner in (provider_runner, bare_runner, relay_runner):
            await runner.cleanup()
        relay_listening.close()
        store.close()
        relay_store.close()
    ms = 1000.0
    return [
        Figure(
            "oidc: a whole login, the agent's part excluded",
            "ms",
            statistics.median(parts) * ms,
            "the relay's own start + collect for the same order (mutual TLS)",
            statistics.median(relay_only) * ms,
            "— (reported)",
            True,
            f"{logins} logins one after another: authorize, login page, start (the relay's "
            f"auth), the way back (the relay's collect, the rp kit's verification, a code), "
            f"token; p99 {_p(parts, 0.99) * ms:.1f} ms "
            f"(relay alone {_p(relay_only, 0.99) * ms:.1f} ms)",
        ),
        Figure(
            "oidc: token endpoint (p50)",
            "ms",
            statistics.median(tokens) * ms,
            "a bare aiohttp handler: read the form, answer JSON, same TLS",
            statistics.median(bare_posts) * ms,
            "— (reported)",
            True,
            f"p99 {_p(tokens, 0.99) * ms:.1f} ms (bare {_p(bare_posts, 0.99) * ms:.1f} ms): "
            "client_secret_basic, the code redeemed in one transaction, PKCE, an ES256 ID "
            "token signed, an access token stored",
        ),
        Figure(
            "oidc: discovery and JWKS, from memory (each)",
            "ms",
            statistics.median(metadata) * ms,
            "a bare aiohttp handler's static JSON, same TLS",
            statistics.median(bare_gets) * ms,
            "— (reported)",
            True,
            "500 of each, kept-alive connection",
        ),
    ]


def run(
    ca: CertificateAuthority, now: dt.datetime, tmp: Path, *, logins: int = 100
) -> list[Figure]:
    return asyncio.run(_run(ca, tmp, now, logins))
