"""A login with a PIV card in a real browser: Debian's Chromium (Playwright), the demo
website, a real ``eid-agent run`` that reaches the virtual PIV card only through the real
OpenSC, pcscd and vpcd; the PIN typed at the agent's console as a person would."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from issuer import CertificateAuthority
from tests.agent_process import AgentProcess
from tests.browser_kit import CHROMIUM, Site, open_page
from tests.card_kit import Pcscd
from tests.piv_kit import OPENSC, PIV_PIN, PivInReader, personalised_piv

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="./dev setup installs chromium"),
]


@pytest.fixture
def piv_world(pcscd: Pcscd, tmp_path: Path) -> Iterator[tuple[Path, PivInReader]]:
    if not Path(OPENSC).exists():
        pytest.skip("needs opensc-pkcs11 (./dev setup installs it)")
    ca = CertificateAuthority.create("PIV Web", dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    ca.save(tmp_path / "ca")
    card = personalised_piv(tmp_path / "piv", ca)
    card.insert()
    try:
        yield tmp_path, card
    finally:
        card.remove()


async def test_login_with_a_piv_card_in_the_browser(
    browser: Browser,
    piv_world: tuple[Path, PivInReader],
) -> None:
    root, card = piv_world
    config = root / "agent-config.toml"
    config.write_text(
        f"[pkcs11]\nmodules = [{json.dumps(OPENSC)}]\np11kit = false\n"
        f"intermediates = [{json.dumps(str(card.intermediates))}]\n"
    )
    with AgentProcess(root / "data", "--allow-http-localhost", "--config", str(config)) as agent:
        agent.ready()
        agent.wait_for_output("token BankID", stream="stderr")
        site = Site(root, agent.port, ca_dir=root / "ca")
        try:
            page = await open_page(browser, site.url + "/?lang=en")
            await page.fill("#pnr", "198112189876")
            await page.click("#go")
            agent.wait_for_output("PIN for Anna Andersson")
            assert "BankID on a security key" in agent.stdout
            agent.type(PIV_PIN)
            await page.wait_for_selector("#result:not([hidden])", timeout=20_000)
            assert await page.text_content("#who") == "Anna Andersson (198112189876)"
        finally:
            site.stop()
    assert card.card.state.pin.tries_left == 3
