"""End to end in a real browser: Debian's Chromium driven by Playwright, the demo website
and a real ``eid-agent run --ui console`` on loopback; the test types into the agent's
console as the person would."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from agent.credentials import CredentialStore
from issuer import CertificateAuthority, make_file_credential
from tests.agent_process import AgentProcess
from tests.bridge_kit import free_port
from tests.browser_kit import ARGS, CHROMIUM, Site, open_page
from tests.conftest import ANNA, FAST_KDF, PASSWORD

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="./dev setup installs chromium"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web")
    ca = CertificateAuthority.create("Web Test", dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    ca.save(root / "ca")
    token = make_file_credential(ca, ANNA, PASSWORD, dt.datetime.now(dt.UTC), kdf=FAST_KDF)
    CredentialStore(root / "data").add(token)
    return root


@pytest.fixture(scope="module")
def agent(world: Path) -> Iterator[AgentProcess]:
    with AgentProcess(world / "data", "--allow-http-localhost") as process:
        yield process.ready()


@pytest.fixture(scope="module")
def site(world: Path, agent: AgentProcess) -> Iterator[Site]:
    s = Site(world, agent.port)
    yield s
    s.stop()


async def _status(page: Page, state: str) -> dict[str, str]:
    await page.wait_for_selector(f'#status[data-state="{state}"]', timeout=20_000)
    return dict(await page.eval_on_selector("#status", "e => ({...e.dataset})"))


async def test_login_shows_the_person(browser: Browser, site: Site, agent: AgentProcess) -> None:
    page = await open_page(browser, site.url + "/?lang=sv")
    await page.fill("#pnr", "198112189876")
    before = agent.stdout.count("Password for")
    # every message the page shows on the way, to check none contradicts the agent
    await page.evaluate("""() => { window.codes = [];
        new MutationObserver(() => window.codes.push(document.querySelector('#status')
            .dataset.code)).observe(document.querySelector('#status'), {attributes: true}); }""")
    await page.click("#go")
    # the agent runs (it answered): the page says "identify yourself" (10049) from the start
    await page.wait_for_selector('#status[data-code="10049"]', timeout=20_000)
    assert "Legitimera dig" in (await page.text_content("#status") or "")
    agent.wait_for_output("Password for", count=before + 1)
    assert f"{site.url} wants you to identify yourself." in agent.stdout
    agent.type(PASSWORD)
    await page.wait_for_selector("#result:not([hidden])", timeout=20_000)
    assert await page.text_content("#who") == "Anna Andersson (198112189876)"
    assert "10048" not in await page.evaluate("() => window.codes")
    # the page is Swedish throughout, its time too: a date in words, not an ISO stamp
    assert "Inloggad som" in (await page.text_content("#result") or "")
    when = await page.text_content("#when") or ""
    months = [
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ]
    assert any(m in when for m in months) and "T" not in when, when


async def test_sign_shows_what_was_signed(
    browser: Browser, site: Site, agent: AgentProcess
) -> None:
    page = await open_page(browser, site.url + "/sign")
    await page.fill("#text", "Jag godkänner villkoren.\nRad två — åäö")
    count = agent.stdout.count("Password for")
    await page.click("#go")
    agent.wait_for_output("Password for", count=count + 1)
    assert (
        "wants you to sign this text:\n  │ Jag godkänner villkoren.\n  │ Rad två — åäö"
        in agent.stdout
    )
    agent.type(PASSWORD)
    await page.wait_for_selector("#result:not([hidden])", timeout=20_000)
    assert await page.text_content("#signed-text") == "Jag godkänner villkoren.\nRad två — åäö"


@pytest.mark.parametrize(
    ("pnr", "code"),
    [("19811218-9876", "10034"), ("8112189876", "10034"), ("198112189875", "10045")],
)
async def test_wrong_personal_number_is_explained_and_never_reaches_the_agent(
    browser: Browser, site: Site, agent: AgentProcess, pnr: str, code: str
) -> None:
    started = agent.stderr.count("started: auth")
    page = await open_page(browser, site.url)
    await page.fill("#pnr", pnr)
    await page.click("#go")
    status = await _status(page, "error")
    assert status["code"] == code
    if code == "10034":
        assert "12 digits" in (await page.text_content("#status") or "")
    assert agent.stderr.count("started: auth") == started


async def test_cancel_on_the_page(browser: Browser, site: Site, agent: AgentProcess) -> None:
    page = await open_page(browser, site.url)
    count = agent.stdout.count("Password for")
    await page.click("#go")
    agent.wait_for_output("Password for", count=count + 1)
    closed = agent.stdout.count("(The request was closed.)")
    await page.click("#cancel")
    status = await _status(page, "error")
    assert (status["hint"], status["code"]) == ("cancelled", "10051")
    agent.wait_for_output("(The request was closed.)", count=closed + 1)


async def test_person_cancels_in_the_agent(
    browser: Browser, site: Site, agent: AgentProcess
) -> None:
    page = await open_page(browser, site.url)
    count = agent.stdout.count("Password for")
    seen = agent.stdout.count("Press Enter to see it")
    await page.click("#go")
    # right after a question another test's page cancelled, the agent first makes sure
    # the person sees the new one (tests/test_daemon.py, consent)
    deadline = asyncio.get_running_loop().time() + 20
    while agent.stdout.count("Password for") <= count:
        if agent.stdout.count("Press Enter to see it") > seen:
            seen += 1
            agent.type("")
        assert asyncio.get_running_loop().time() < deadline, agent.stdout
        await asyncio.sleep(0.1)
    agent.type("")
    status = await _status(page, "error")
    assert (status["hint"], status["code"]) == ("userCancel", "10036")


async def test_timeout(browser: Browser, world: Path, tmp_path: Path) -> None:
    # a second agent needs a person of its own: one agent runs per data folder
    shutil.copytree(world / "data", tmp_path / "data")
    with AgentProcess(tmp_path / "data", "--allow-http-localhost", "--order-ttl", "3") as slow:
        slow.ready()
        s = Site(world, slow.port)
        try:
            page = await open_page(browser, s.url)
            await page.click("#go")
            status = await _status(page, "error")
            assert (status["hint"], status["code"]) == ("expiredTransaction", "10035")
        finally:
            s.stop()


async def test_agent_not_running(browser: Browser, world: Path) -> None:
    s = Site(world, free_port())
    try:
        page = await open_page(browser, s.url)
        await page.click("#go")
        status = await _status(page, "error")
        assert (status["hint"], status["code"]) == ("unreachable", "10053")
    finally:
        s.stop()


async def test_local_network_access_from_a_public_page(site: Site, agent: AgentProcess) -> None:
    """Chromium applies Local Network Access to a public page calling the loopback
    agent: refused until the person allows it, then it works. (The page is made public
    with --ip-address-space-overrides; a real site is public anyway.)"""
    probe = f"new EidAgent({{port: {agent.port}}}).info().then(i => 'ok', e => e.code)"
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[*ARGS, f"--ip-address-space-overrides=127.0.0.1:{site.port}=public"],
        )
        try:
            denied = await (await b.new_context()).new_page()
            await denied.goto(site.url)
            assert await denied.evaluate(probe) == "unreachable"
            allowed_context = await b.new_context()
            await allowed_context.grant_permissions(["local-network-access"], origin=site.url)
            allowed = await allowed_context.new_page()
            await allowed.goto(site.url)
            assert await allowed.evaluate(probe) == "ok"
        finally:
            await b.close()


def test_browser_is_debians() -> None:
    assert shutil.which("chromium") == CHROMIUM


async def test_login_with_a_card(
    browser: Browser, world: Path, pcscd: object, card_ca: CertificateAuthority, tmp_path: Path
) -> None:
    """The same login, with BankID on card: no file credential in this agent's data dir;
    the page waits (noClient) until the card is inserted, the agent asks for the
    identification PIN, and the site's server verifies against the card issuer's root."""
    from tests.card_kit import ID_PIN, personalised_card

    card = personalised_card(tmp_path, card_ca)
    card_ca.save(tmp_path / "card-ca")
    with AgentProcess(tmp_path / "empty-data", "--allow-http-localhost") as agent:
        agent.ready()
        s = Site(tmp_path, agent.port, ca_dir=tmp_path / "card-ca")
        try:
            page = await open_page(browser, s.url)
            await page.click("#go")
            # page and agent say the same: insert your card (10025)
            await page.wait_for_selector('#status[data-code="10025"]', timeout=20_000)
            agent.wait_for_output("[10025]")
            card.link.insert()
            try:
                agent.wait_for_output("Identification PIN for Anna Andersson")
                agent.type(ID_PIN)
                await page.wait_for_selector("#result:not([hidden])", timeout=20_000)
                assert await page.text_content("#who") == "Anna Andersson (198112189876)"
            finally:
                card.link.remove()
                card.wait_removed()
        finally:
            s.stop()
