"""``eid-agent run``: the composition root.

Who owns what:
- one asyncio loop (the main thread) runs the bridge, the order service, the card
  monitor and the updater; the monitor's PC/SC waits run in executor threads;
- blocking work (credential files, the KDF) runs in the loop's default executor;
- the console UI owns one daemon thread that reads stdin; the desktop UI talks to its
  dialog helper process (GTK); both are reached only through the UI port;
- SIGTERM stops the agent; SIGINT cancels an open question, or stops the agent when none
  is open; SIGUSR1 is a person's "update now" (from ``eid-agent update apply``);
- an installed agent (one running from the versions layout with a repository) runs the
  updater; installing a new version hands the port over to it (``_HandOver``);
- one agent per person: the instance lock in the data folder (handed over with the
  port), then the port itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from aiohttp import web
from packaging.version import Version

from agent import __version__
from agent.app.instance import InstanceLock, remove_pid, write_pid
from agent.app.orders import Orders, OrderSettings, running_orders
from agent.app.selftest import self_test
from agent.autostart import (
    DoorSettings,
    RelayDoor,
    WaitingOrders,
    accepting,
    installation_key,
    serve_handoff,
    socket_path,
)
from agent.bridge import (
    DEFAULT_PORT,
    HOSTS,
    KEEPALIVE_SECONDS,
    BridgeConfig,
    GuardedSite,
    OriginPolicy,
    bridge_gate,
    build_app,
    raise_file_limit,
)
from agent.config import Settings
from agent.credentials import CredentialStore
from agent.enrol import IssuerConnection
from agent.notices import Notice
from agent.ui import ConsoleUi, DesktopPort, Presentation, UiPort
from agent.ui.desktop import DesktopUi, HelperUnavailable
from agent.updater import Layout, running_layout
from eidcore.listener import ConnectionGate
from eidcore.messages import Language, MessageCode, Term, catalogue

if TYPE_CHECKING:
    from agent.updater import UpdaterService

log = logging.getLogger(__name__)
REFUSAL_NOTICE_GAP = 10.0  # seconds between two "why orders are refused" notices


class PortTaken(Exception):
    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use")
        self.port = port


@dataclass(frozen=True)
class UpdateSettings:
    """How this agent takes part in its own updates."""

    argv: tuple[str, ...] = ()  # how this agent was started, to start the next version alike
    take_over: bool = False  # started by the previous version's update: prove health, commit
    tick: float = 30.0  # seconds between looks at the update policy
    health_timeout: float = 30.0  # seconds a new version has to become healthy


@dataclass(frozen=True)
class RunConfig:
    data_dir: Path
    port: int = DEFAULT_PORT
    language: Language = Language.EN
    session_language: Language = Language.EN  # "as the computer" in the Settings window
    ui: str = "console"  # "console", "desktop", or "auto" (desktop where a display is)
    bridge: bool = True  # --no-bridge: links from the order relay only
    policy: OriginPolicy = field(default_factory=OriginPolicy)
    orders: OrderSettings = field(default_factory=OrderSettings)
    door: DoorSettings = field(default_factory=DoorSettings)
    updates: UpdateSettings = field(default_factory=UpdateSettings)
    issuer: IssuerConnection | None = None  # where "Order BankID on file" goes
    settings_file: Path | None = None  # what the Settings window edits (None: no window)
    settings: Settings = field(default_factory=Settings)  # as stored when the agent started
    fixed_proxy: bool = False  # --proxy given: the Settings window's proxy does not apply


class SelfTestFailed(Exception):
    """The new version is not healthy; the previous one takes the port back."""


async def serve(config: RunConfig, stdin: TextIO, stdout: TextIO) -> int:
    """Run the agent until stopped. Raises: AlreadyRunning (this person's agent runs
    already), PortTaken, SelfTestFailed, NotPrivate (the data folder is another user's)."""
    CredentialStore(config.data_dir).make_private()  # before the lock file is made inside it
    lock = InstanceLock(config.data_dir)
    lock.acquire(patience=5.0 if config.updates.take_over else 0.0)  # before any window shows
    try:
        front = await _user_interface(config, stdin, stdout)
        async with running_orders(config.data_dir, front.ui, config.orders) as orders:
            return await _serve(config, front, orders, stdout, lock)
    finally:
        lock.release()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Refusals:
    """A website's order was refused: the person is told why, not more than once in a
    while (a page may retry in a loop)."""

    def __init__(self, why: Callable[[], MessageCode | None], ui: UiPort) -> None:
        self._why, self._ui = why, ui
        self._told_at = -REFUSAL_NOTICE_GAP
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self) -> None:
        code = self._why()
        if code is not None and time.monotonic() - self._told_at >= REFUSAL_NOTICE_GAP:
            self._told_at = time.monotonic()
            self.tasks.append(asyncio.create_task(_quietly(self._ui.tell(Notice(code)))))


def _updater(
    config: RunConfig,
    orders: Orders,
    ui: UiPort,
    layout: Layout | None,
    hand_over: Callable[[Version], Awaitable[bool]],
) -> UpdaterService | None:
    """The updater of an installed agent (one running from the versions layout with a
    repository); None for a checkout."""
    source = layout.source() if layout is not None else None
    if layout is None or source is None:
        return None
    from agent.updater import UpdaterService, rollout_draw, state_file  # the TUF client

    return UpdaterService(
        layout=layout,
        source=source,
        state_file=state_file(config.data_dir),
        current=Version(__version__),
        clock=_now,
        jitter=random.random,
        notify=ui.tell,
        order_active=orders.service.busy,
        hand_over=hand_over,
        tick_seconds=config.updates.tick,
        draw=rollout_draw(config.data_dir, random.random),
    )


async def _serve(
    config: RunConfig, front: _Front, orders: Orders, stdout: TextIO, lock: InstanceLock
) -> int:
    """The lifecycle: the doors built with their gates, bound, handed over; signals."""
    ui, desktop, service = front.ui, front.desktop, orders.service
    stop = asyncio.Event()
    layout = running_layout(config.data_dir)
    hand_over = _HandOver(config, lambda: runner, layout, stop, lock) if layout else None
    updater = _updater(config, orders, ui, layout, hand_over) if hand_over else None
    refusal = updater.refusal if updater is not None else accepting
    refusals = _Refusals(refusal, ui)
    tasks = refusals.tasks
    sites = config.settings
    bridge = BridgeConfig(
        port=config.port,
        policy=config.policy.with_person_sites(sites.allow, sites.block),
        update_required=updater.refuse_orders if updater is not None else lambda: False,
        update_state=updater.state_name if updater is not None else lambda: "unmanaged",
        refused=refusals,
    )
    door = RelayDoor(
        service,
        config.door,
        refused=refusal,
        tell=ui.tell,
        open_url=_returner(ui, desktop is not None, stdout, config.language),
        device_key=lambda: installation_key(config.data_dir, os.urandom),
    )
    issuer = config.issuer

    def apply_settings(settings: Settings) -> None:
        """The Settings window saved: the running agent follows at once."""
        nonlocal issuer
        if not config.fixed_proxy:
            door.settings = replace(door.settings, proxy=settings.proxy)
            if issuer is not None:
                issuer = replace(issuer, proxy=settings.proxy)
        bridge.policy = config.policy.with_person_sites(settings.allow, settings.block)
        if desktop is not None:
            desktop.language = Language(settings.language or config.session_language)
            desktop.presentation = _presentation(settings)

    if desktop is not None:
        desktop.presentation = _presentation(config.settings)
    runner = web.AppRunner(
        build_app(service, bridge),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    raise_file_limit()
    await runner.setup()
    handoff: asyncio.Server | None = None
    links = socket_path(config.data_dir)
    # Before anything says "listening": a SIGTERM sent the moment the agent is seen ready
    # stops it cleanly instead of killing it by default (it did, in a loaded CI run).
    _on_signals(stop, front, updater, tasks)
    try:
        try:
            handoff = await serve_handoff(links, door.take)
        except OSError as exc:
            log.warning("no eid-agent:// links: cannot listen on %s (%s)", links, exc)
        if config.bridge:
            patience = 5.0 if config.updates.take_over else 0.0
            bound = await _bind(runner, config.port, retry=patience)
        else:
            bound = [str(links)]  # links only: no port is opened at all
        log.info("eid-agent %s listening on %s", __version__, ", ".join(bound))
        if config.updates.take_over:
            _commit(config, layout)
            if desktop is not None:  # a finished update is news, not a question
                installed = Notice(MessageCode.UPDATE_INSTALLED, {"version": __version__})
                tasks.append(asyncio.create_task(_quietly(desktop.notify(installed))))
        write_pid(config.data_dir)
        if updater is not None:
            tasks.append(asyncio.create_task(updater.run()))
        if desktop is not None:
            from agent.desktop import SettingsHooks, Tray

            hooks = (
                SettingsHooks(config.settings_file, apply_settings)
                if config.settings_file
                else None
            )
            tray = Tray(
                desktop,
                config.data_dir,
                config.port,
                order_active=service.busy,
                updater=updater,
                stop=stop,
                clock=_now,
                hardware=orders.hardware,
                issuer=lambda: issuer,
                settings=hooks,
                modules=config.orders.pkcs11,
                tokens=orders.tokens,
                waiting=WaitingOrders(
                    desktop, CredentialStore(config.data_dir), door, _now, orders.hardware
                ).look
                if config.door.ask
                else None,
            )
            tasks.append(asyncio.create_task(tray.run()))
        await stop.wait()
    finally:
        log.info("eid-agent stopping")
        for task in tasks:
            task.cancel()
        await door.aclose()
        await service.aclose()
        await runner.cleanup()
        if handoff is not None:
            handoff.close()
            with contextlib.suppress(OSError):
                links.unlink()
        if desktop is not None:
            await desktop.aclose()
        remove_pid(config.data_dir)
    return 0


def _on_signals(
    stop: asyncio.Event,
    front: _Front,
    updater: UpdaterService | None,
    tasks: list[asyncio.Task[None]],
) -> None:
    """SIGTERM stops; SIGINT cancels an open console question, else stops; SIGUSR1 is a
    person's "update now"."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def on_sigint() -> None:
        if front.console is None or not front.console.interrupt():
            stop.set()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    if updater is not None:
        person = updater

        def on_usr1() -> None:
            tasks.append(asyncio.create_task(_quietly(person.start())))

        loop.add_signal_handler(signal.SIGUSR1, on_usr1)


@dataclass(frozen=True)
class _Front:
    """The person's side of the agent: the UI port the orders ask through, and the same
    object as the desktop port where there is a desktop (tray, My BankIDs, Settings) or
    as the console (whose Ctrl-C cancels a question before it stops the agent)."""

    ui: UiPort
    desktop: DesktopPort | None = None
    console: ConsoleUi | None = None


def _presentation(settings: Settings) -> Presentation:
    return Presentation(raise_dialogs=settings.raise_dialogs, plain_window=settings.plain_window)


async def _user_interface(config: RunConfig, stdin: TextIO, stdout: TextIO) -> _Front:
    """The desktop dialogs where a display is; otherwise (said once in the log) the
    console."""
    wants_desktop = config.ui == "desktop" or (
        config.ui == "auto" and bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    )
    if wants_desktop:
        desktop = DesktopUi(config.language)
        try:
            await desktop.start()
            return _Front(desktop, desktop=desktop)
        except HelperUnavailable as exc:
            log.warning("no desktop dialogs (%s); questions go to the console", exc)
    console = ConsoleUi(stdin, stdout, config.language)
    return _Front(console, console=console)


def _returner(
    ui: UiPort, desktop: bool, stdout: TextIO, language: Language
) -> Callable[[str], Awaitable[None]]:
    """How the person's browser gets back to the site: opened (desktop, or a console with
    a display, as ``./dev demo`` in a desktop's terminal); when that fails, or there is
    no display, the person is shown the address — in a notice whose OK tries again, or
    on the console. A page left pending because opening failed in silence is no way back."""
    display = desktop or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

    async def back(url: str) -> None:
        if display and await _open_in_browser(url):
            return
        if desktop:
            await ui.tell(Notice(MessageCode.RETURN_TO_SITE, {"url": url}, link=url))
            return
        stdout.write(catalogue().term(Term.CONSOLE_RETURN_TO, language).format(url=url) + "\n")
        stdout.flush()

    return back


async def _open_in_browser(url: str) -> bool:
    """The person's browser, back at the site (xdg-open; the URL is the relay's, registered
    for the party, https); whether xdg-open said it did."""
    opener = shutil.which("xdg-open")
    if opener is None:
        log.info("no xdg-open to return to the website with")
        return False
    process = await asyncio.create_subprocess_exec(
        opener,
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        status = await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        log.info("xdg-open did not finish in 30 s")
        return False
    if status != 0:
        log.info("xdg-open could not open the way back (status %d)", status)
    return status == 0


async def _quietly(work: Any) -> None:
    try:
        await work
    except Exception:
        log.exception("a background task failed")


def _commit(config: RunConfig, layout: Layout | None) -> None:
    """This process is a new version on trial: healthy means bridge up and self-test
    passed; then it makes itself current, which is what the previous version waits for.

    Raises:
        SelfTestFailed: not healthy; nothing was switched.
    """
    bundle = layout.versions / __version__ if layout is not None else None
    problems = self_test(config.data_dir, bundle)
    if problems or layout is None:
        for problem in problems or ["not running from an install"]:
            log.error("self-test: %s", problem)
        raise SelfTestFailed("; ".join(problems))
    layout.switch(Version(__version__))
    layout.prune(layout.source())
    log.info("self-test passed; %s is now the current version", __version__)


class _HandOver:
    """Stop listening, start the new version, and wait for it to make itself current."""

    def __init__(
        self,
        config: RunConfig,
        runner: Callable[[], web.AppRunner],
        layout: Layout,
        stop: asyncio.Event,
        lock: InstanceLock,
    ) -> None:
        self._config = config
        self._runner = runner  # made after the updater that may call this
        self._layout = layout
        self._stop = stop
        self._lock = lock

    async def __call__(self, version: Version) -> bool:
        launcher = self._layout.launcher(version)
        argv = [a for a in self._config.updates.argv if a != "--take-over"]
        started = time.monotonic()
        for site in list(self._runner().sites):
            await site.stop()
        self._lock.release()  # the new version takes the lock with the port
        log.info("bridge closed; starting %s", version)
        try:
            child = subprocess.Popen([str(launcher), *argv, "--take-over"], start_new_session=True)
        except OSError as exc:
            log.error("could not start %s: %s", version, exc)
            await self._reopen()
            return False
        deadline = started + self._config.updates.health_timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                break
            if self._layout.current_version() == version:
                log.info(
                    "%s is healthy and current (bridge down %.2f s); handing over",
                    version,
                    time.monotonic() - started,
                )
                self._stop.set()
                return True
            await asyncio.sleep(0.05)
        if child.poll() is None:
            child.terminate()
            try:
                await asyncio.to_thread(child.wait, 5)
            except subprocess.TimeoutExpired:
                child.kill()
        log.error("%s did not become healthy (exit %s); rolling back", version, child.returncode)
        await self._reopen()
        return False

    async def _reopen(self) -> None:
        await asyncio.to_thread(self._lock.acquire, patience=5.0)
        await _bind(self._runner(), self._config.port, retry=5.0)
        write_pid(self._config.data_dir)
        log.info("eid-agent %s listening again", __version__)


async def _bind(runner: web.AppRunner, port: int, *, retry: float = 0.0) -> list[str]:
    """Listen on the loopback addresses; ``retry`` seconds of patience for a port that
    the previous version is just giving up (a hand-over). One gate counts the
    connections of both addresses."""
    gate = bridge_gate()
    bound = []
    deadline = time.monotonic() + retry
    for host in HOSTS:
        try:
            await _start_site(runner, host, port, deadline, gate)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortTaken(port) from None
            if host == "::1" and exc.errno in {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}:
                log.warning("IPv6 loopback unavailable; listening on IPv4 only")
                continue
            raise
        bound.append(f"{'[::1]' if host == '::1' else host}:{port}")
    return bound


async def _start_site(
    runner: web.AppRunner, host: str, port: int, deadline: float, gate: ConnectionGate
) -> None:
    while True:
        site = GuardedSite(runner, host, port, gate)
        try:
            await site.start()
            return
        except OSError as exc:
            await site.stop()  # a site that failed to start stays registered otherwise
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.05)
