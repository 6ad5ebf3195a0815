"""The second door as a person meets it: Debian's Chromium, headed on a virtual screen, on
the demo website (``eid-rp demo --relay``); an organisation's policy lets the site open
``eid-agent://`` links without asking (``AutoLaunchProtocolsFromOrigins``); Chromium runs
the real ``xdg-open``, which finds the handler ``eid-agent desktop install`` registered in
a throw-away home; the handler hands the link to the agent (``--no-bridge``: no port at
all), starting it first when none runs; the relay is a real ``eid-relay`` over TLS on
loopback; the person types the password in the agent's GTK dialog (xdotool); the agent
sends the browser back through the return URL (xdg-open again, into the same Chromium), and
the page shows who logged in or what was signed. Then cancel on the page, cancel in the
dialog, and a link opened too late."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from playwright.async_api import BrowserContext, Page, async_playwright

from agent.app.instance import InstanceLock, stop_running
from agent.credentials import CredentialStore
from eidcore.messages import Language, MessageCode, catalogue
from issuer import CertificateAuthority, make_file_credential
from issuer.servecli import dev_tls
from relay.partycert import make_party_certificate
from tests.agent_process import BIN
from tests.bridge_kit import free_port
from tests.browser_kit import ARGS, CHROMIUM
from tests.conftest import ANNA, FAST_KDF, PASSWORD
from tests.desktop_kit import DIALOG_TITLES, Screen
from tests.relay_process_kit import RelayProcess

POLICIES = Path("/etc/chromium/policies/managed")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="./dev setup installs chromium"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a managed browser policy needs root"),
]


@dataclass
class World:
    root: Path
    data: Path
    site: str
    relay: RelayProcess
    env: dict[str, str]
    screen: Screen
    handler_options: list[str]

    def agent_runs(self) -> bool:
        lock = InstanceLock(self.data)
        try:
            lock.acquire()
        except Exception:
            return True
        lock.release()
        return False

    def log(self) -> str:
        path = self.data / "agent.log"
        return path.read_text()[-4000:] if path.exists() else "(no agent.log)"


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, screen: Screen) -> Iterator[World]:
    root = tmp_path_factory.mktemp("relay-web")
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.create("Relay Web Test", now - dt.timedelta(days=1))
    ca.save(root / "ca")
    data = root / "anna"
    CredentialStore(data).add(make_file_credential(ca, ANNA, PASSWORD, now, kdf=FAST_KDF))
    (root / "tls").mkdir()
    tls = dev_tls(root / "tls", now)
    site_port, relay_port = free_port(), free_port()
    site = f"http://127.0.0.1:{site_port}"
    _write(
        root / "relay" / "issuer-root.pem",
        ca.root_certificate.public_bytes(serialization.Encoding.PEM).decode(),
    )
    # the site's client certificate at its relay, from the relay's development RP CA
    made = make_party_certificate(root / "relay", "demo", root / "site-cert", "pw", now)
    config = _write(
        root / "relay" / "relay.toml",
        (
            f'origin = "https://127.0.0.1:{relay_port}"\ntrust = ["issuer-root.pem"]\n\n'
            f'[[party]]\nid = "demo"\nname = "Demobanken AB"\n'
            f'client_cert_sha256 = "{made.sha256}"\n'
            f'return_urls = ["{site}/eid/return"]\n'
        ),
    )
    relay = RelayProcess(config, f"sqlite:///{root / 'relay.db'}", tls, port=relay_port)
    # the bridge port the page tries first: nothing listens there (as when the browser's
    # local-network permission is denied), so the page takes the relay
    site_proc = subprocess.Popen(
        [
            str(BIN / "eid-rp"),
            "demo",
            "--port",
            str(site_port),
            "--origin",
            site,
            "--agent-port",
            str(free_port()),
            "--ca-dir",
            str(root / "ca"),
            "--relay",
            f"https://127.0.0.1:{relay_port}",
            "--relay-cert",
            str(made.certificate),
            "--relay-key",
            str(made.key),
            "--relay-party",
            "demo",
            "--relay-ca",
            str(tls[0]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "site.log", "w"),  # noqa: SIM115
    )
    # the person's session: a throw-away home whose default browser for http is this same
    # Chromium (a second chromium process hands the URL to the running one, as on a desktop)
    home, profile = root / "home", root / "profile"
    skip = ("XDG_CURRENT_DESKTOP", "WAYLAND_DISPLAY", "BROWSER")
    env = {k: v for k, v in os.environ.items() if k not in skip} | screen.env
    env |= {
        "XDG_DATA_HOME": str(home / "share"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "BROWSER": "/bin/true",
    }
    _write(
        home / "share" / "applications" / "eid-test-browser.desktop",
        (
            "[Desktop Entry]\nType=Application\nName=browser\n"
            f"Exec={CHROMIUM} --no-sandbox --user-data-dir={profile} %u\n"
            "MimeType=x-scheme-handler/http;x-scheme-handler/https;\nNoDisplay=true\n"
        ),
    )
    agent_config = _write(root / "agent.toml", f'[relay]\nallow = ["127.0.0.1:{relay_port}"]\n')
    xdg_mime = shutil.which("xdg-mime") or "/usr/bin/xdg-mime"
    done = subprocess.run(
        [xdg_mime, "default", "eid-test-browser.desktop", "x-scheme-handler/http"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    options = [
        "--data-dir",
        str(data),
        "--no-bridge",
        "--config",
        str(agent_config),
        "--relay-ca",
        str(tls[0]),
        "--allow-http-relay",
    ]
    policy = POLICIES / f"eid-agent-test-{os.getpid()}.json"
    _write(
        policy,
        json.dumps(
            {
                "AutoLaunchProtocolsFromOrigins": [
                    {"protocol": "eid-agent", "allowed_origins": ["http://127.0.0.1"]}
                ]
            }
        ),
    )
    try:
        _wait_listening(site_port)
        world = World(root, data, site, relay, env, screen, options)
        _install_handler(world)
        yield world
    finally:
        policy.unlink()
        with contextlib.suppress(TimeoutError):
            stop_running(data)
        site_proc.terminate()
        site_proc.wait(timeout=10)
        relay.stop()


def _install_handler(world: World) -> None:
    done = subprocess.run(
        [str(BIN / "eid-agent"), "desktop", "install", *world.handler_options],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _window_titled(screen: Screen, titles: list[str], timeout: float = 20) -> str:
    """The window with one of these titles (the agent speaks the session's language)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for title in titles:
            found = screen.windows(title)
            if found:
                return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no window titled {titles}")


def _wait_listening(port: int) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the demo site did not start")


@pytest.fixture
async def browser(world: World) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(world.root / "profile"),
            executable_path=CHROMIUM,
            headless=False,
            args=ARGS,
            env=dict[str, str | float | bool](world.env),
        )
        try:
            yield context
        finally:
            await context.close()


async def _status(page: Page, state: str, timeout: float = 30) -> dict[str, str]:
    await page.wait_for_selector(
        f'#status[data-state="{state}"]', timeout=timeout * 1000, state="attached"
    )
    return dict(await page.eval_on_selector("#status", "e => ({...e.dataset})"))


async def _dialog(world: World, timeout: float = 20) -> str:
    found = await asyncio.to_thread(world.screen.wait_window, DIALOG_TITLES, timeout)
    return found[0]


async def _type_password(world: World, window: str) -> None:
    await asyncio.to_thread(world.screen.type_into, window, PASSWORD)
    await asyncio.to_thread(world.screen.key, window, "Return")


async def test_login_through_the_relay_starting_the_agent(
    browser: BrowserContext, world: World
) -> None:
    with contextlib.suppress(TimeoutError):
        stop_running(world.data)
    assert not world.agent_runs()  # the handler has to start it
    page = await browser.new_page()
    await page.goto(world.site + "/?lang=en")
    returned = asyncio.ensure_future(browser.wait_for_event("page", timeout=90_000))
    await page.click("#go")  # a trusted click: the link may open
    window = await _dialog(world, timeout=30)
    await asyncio.to_thread(world.screen.screenshot, window, "relay-browser-dialog")
    status = dict(await page.eval_on_selector("#status", "e => ({...e.dataset})"))
    assert status["door"] == "relay"
    assert await page.is_visible("#open-agent")  # the page's own way to open it again
    assert world.agent_runs()
    await _type_password(world, window)
    back = await returned  # the agent sent the browser back through the return URL
    await back.wait_for_load_state()
    url = urllib.parse.urlsplit(back.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == world.site + "/"
    assert "relay=returned" in url.query
    shown = await _status(back, "done")
    assert shown["door"] == "relay"
    assert "Anna Andersson (198112189876)" in await back.inner_text("#who")
    # the tab that started it sees the same session logged in
    await _status(page, "done")
    assert "198112189876" in await page.inner_text("#who")
    assert PASSWORD not in world.log()


async def test_a_signature_through_the_relay(browser: BrowserContext, world: World) -> None:
    page = await browser.new_page()
    await page.goto(world.site + "/sign?lang=sv")
    text = "Jag godkänner avtalet om demokontot."
    await page.fill("#text", text)
    returned = asyncio.ensure_future(browser.wait_for_event("page", timeout=90_000))
    await page.click("#go")
    window = await _dialog(world, timeout=30)
    await _type_password(world, window)
    back = await returned
    await _status(back, "done")
    assert await back.inner_text("#signed-text") == text
    assert "Anna Andersson" in await back.inner_text("#who")


async def _login_asked(browser: BrowserContext, world: World) -> tuple[Page, str]:
    """A login started on the page, its dialog open in the agent."""
    page = await browser.new_page()
    await page.goto(world.site + "/?lang=en")
    await page.click("#go")
    return page, await _dialog(world, timeout=30)


async def test_cancel_on_the_page_closes_the_dialog(browser: BrowserContext, world: World) -> None:
    page, window = await _login_asked(browser, world)
    await page.click("#cancel")
    await asyncio.to_thread(world.screen.wait_gone, window, 10)  # the agent asked the relay
    status = await _status(page, "error")
    assert status["hint"] == "cancelled"


async def test_cancel_in_the_dialog_is_told_on_the_page(
    browser: BrowserContext, world: World
) -> None:
    page, window = await _login_asked(browser, world)
    await asyncio.to_thread(world.screen.key, window, "Escape")
    await asyncio.to_thread(world.screen.wait_gone, window, 10)
    status = await _status(page, "error")
    assert (status["hint"], status["code"]) == ("userCancel", "10036")


async def test_a_link_opened_too_late(browser: BrowserContext, world: World) -> None:
    """No agent is installed (no handler for the scheme): nothing fetches the order within
    its 30 s and the page says the agent did not start; the same link opened later, once
    the agent is there, is refused (10080) and nothing is signed."""
    removed = subprocess.run(
        [str(BIN / "eid-agent"), "desktop", "uninstall", "--data-dir", str(world.data)],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    try:
        page = await browser.new_page()
        await page.goto(world.site + "/?lang=en")
        await page.click("#go")
        await page.wait_for_selector("#open-agent:not([hidden])", timeout=20_000)
        link = await page.get_attribute("#open-agent", "href")
        assert link and link.startswith("eid-agent:///?")
        status = await _status(page, "error", timeout=60)
        assert (status["hint"], status["code"]) == ("startFailed", "10084")
    finally:
        _install_handler(world)
    late = subprocess.run(
        [str(BIN / "eid-agent"), "open", link, *world.handler_options],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert late.returncode == 0, late.stderr  # handed to the agent, which tells the person
    titles = [catalogue().render(MessageCode.RELAY_ORDER_GONE, lang).title for lang in Language]
    notice = await asyncio.to_thread(_window_titled, world.screen, titles)
    await asyncio.to_thread(world.screen.screenshot, notice, "relay-browser-too-late")
    await asyncio.to_thread(world.screen.key, notice, "Return")
    await asyncio.to_thread(world.screen.wait_gone, notice, 10)
