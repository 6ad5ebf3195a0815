"""Log in from npm ``openid-client`` 6 (certified by the OpenID Foundation) through the
real Chromium: the site's server (openid-client) makes the authorization URL, Chromium
follows it to the provider's login page and clicks its button, the person's agent (the
console agent, password typed) carries out the ``eid-agent://`` link the page shows and
names the way back, Chromium goes back through it and lands on the site's callback with
a code, and openid-client exchanges it, validates the ID token and asks userinfo."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser

from tests.conftest import ANNA, PASSWORD
from tests.door_kit import console
from tests.oidc_kit import LOCAL_CALLBACK, SCOPE, SECRET, Oidc

pytestmark = pytest.mark.slow

NODE_CLIENT = Path(__file__).parent / "node" / "oidc-client.mjs"
PNR_CLAIM = "https://id.oidc.se/claim/personalIdentityNumber"


def _node(oidc: Oidc, *args: str) -> dict[str, Any]:
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(oidc.tls[0])}
    callback = LOCAL_CALLBACK.format(port=oidc.callback_port)
    argv = ["node", str(NODE_CLIENT), oidc.issuer, "site", SECRET, callback, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    answer: dict[str, Any] = json.loads(done.stdout or "{}")
    assert done.returncode == 0, (answer, done.stderr)
    return answer


async def test_openid_client_logs_a_person_in_through_chromium(
    oidc: Oidc, person: Path, browser: Browser
) -> None:
    started = await asyncio.to_thread(_node, oidc, "start", SCOPE)
    context = await browser.new_context(ignore_https_errors=True, locale="sv-SE")
    arrived: list[str] = []

    async def the_site(request: web.Request) -> web.Response:  # its callback only records
        arrived.append(str(request.url))
        return web.Response(text="ok")

    site = web.Application()
    site.router.add_get("/callback", the_site)
    runner = web.AppRunner(site)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", oidc.callback_port).start()
    page = await context.new_page()
    await page.goto(started["url"])
    assert await page.get_attribute("html", "lang") == "sv"  # the browser's language
    assert "Exempelsajten vill att du loggar in med ditt BankID." in await page.inner_text("main")
    await page.click("#start")
    link = await page.get_attribute("#open", "href")
    assert link is not None and link.startswith("eid-agent:///?autostarttoken=")
    assert await page.inner_text("#open") == "Öppna E-legitimation"
    done = await asyncio.to_thread(console, ["open", link], person, oidc.tls, typed=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    back = re.search(r"Go back to the website: (\S+)", done.stderr)
    assert back, done.stderr
    await page.goto(back.group(1))
    await runner.cleanup()
    callback = LOCAL_CALLBACK.format(port=oidc.callback_port)
    assert arrived and arrived[-1].startswith(callback + "?"), arrived
    assert page.url == arrived[-1]  # the browser itself landed there
    finished = await asyncio.to_thread(
        _node,
        oidc,
        "finish",
        arrived[-1],
        started["verifier"],
        started["state"],
        started["nonce"],
    )
    claims, info = finished["claims"], finished["userinfo"]
    assert claims["iss"] == oidc.issuer and claims["aud"] == "site"
    assert claims["nonce"] == started["nonce"] and claims["amr"] == ["pwd"]
    assert claims["given_name"] == "Anna" and claims[PNR_CLAIM] == str(ANNA.personal_number)
    assert info["sub"] == claims["sub"] and info["name"] == "Anna Andersson"
    await context.close()
