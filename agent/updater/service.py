"""The updater's driver: runs the policy machine against the clock, the repository and
the install, and carries out its effects.

The state file is the single source of truth (``eid-agent update check`` in another
process writes it too): every step loads it, steps, and writes it back atomically. The
blocking work (TUF, unpacking, copying) runs in executor threads.

Installing is a hand-over (``hand_over``, given by the daemon): the running agent stops
listening, starts the new version, and exits once that version reports healthy by making
itself current; otherwise it rolls back and listens again. The new process records the
outcome (``recover``), because the old one is gone by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from packaging.version import InvalidVersion, Version

from agent.notices import Notice
from agent.updater.errors import CheckError, InstallError, UpdateError
from agent.updater.install import Layout
from agent.updater.policy import (
    Applied,
    ApplyFailed,
    Checked,
    CheckFailed,
    Effect,
    Event,
    Notify,
    Phase,
    StartApply,
    StartRequested,
    StateName,
    Tick,
    UpdaterState,
    due,
    refusal,
    state_name,
    step,
)
from agent.updater.source import Source, Staging
from eidcore import strictjson
from eidcore.atomicfile import atomic_write_bytes
from eidcore.messages import MessageCode

__all__ = ["UpdaterService", "load_state", "rollout_draw", "state_file", "state_name"]

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0


def state_file(data_dir: Path) -> Path:
    """Where the updater keeps its state: the agent and ``eid-agent update`` share it."""
    return data_dir / "updater.json"


def rollout_draw(data_dir: Path, random: Callable[[], float]) -> float:
    """This computer's place in staged roll-outs (agent.updater.rollout): drawn once with
    ``random``, kept owner-only in the data folder, never sent anywhere. A damaged file is
    drawn again (the agent then joins another group; nothing worse)."""
    path = data_dir / "rollout.json"
    try:
        draw = strictjson.loads(path.read_text(encoding="utf-8"))["draw"]
        if isinstance(draw, float) and 0.0 <= draw < 1.0:
            return draw
    except (OSError, ValueError, KeyError, TypeError):
        pass
    draw = random()
    data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({"draw": draw}).encode(), mode=0o600)
    return draw


def load_state(path: Path) -> UpdaterState:
    try:
        return UpdaterState.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UpdaterState()
    except OSError as exc:
        log.warning("update state unreadable (%s); starting afresh", exc.strerror)
        return UpdaterState()


class UpdaterService:
    def __init__(
        self,
        *,
        layout: Layout,
        source: Source,
        state_file: Path,
        current: Version,
        clock: Callable[[], dt.datetime],
        jitter: Callable[[], float],
        notify: Callable[[Notice], Awaitable[None]],
        order_active: Callable[[], bool],
        hand_over: Callable[[Version], Awaitable[bool]],
        tick_seconds: float = TICK_SECONDS,
        draw: float | None = None,
    ) -> None:
        """``draw``: this agent's place in staged roll-outs (``rollout_draw``); None: every
        release is offered."""
        self._layout = layout
        self._source = source
        self._file = state_file
        self._current = current
        self._clock = clock
        self._jitter = jitter
        self._notify = notify
        self._order_active = order_active
        self._hand_over = hand_over
        self._tick = tick_seconds
        self._draw = draw
        self._lock = asyncio.Lock()
        self._cached = load_state(state_file)
        self._person_started = False
        self._wake = asyncio.Event()

    # -- what others read -------------------------------------------------------------------

    def refuse_orders(self) -> bool:
        return self.refusal() is not None

    def refusal(self) -> MessageCode | None:
        """Why orders are refused now (blocked, required, too long unchecked), or None."""
        return refusal(self._cached, self._clock())

    @property
    def repository(self) -> str:
        """The update repository this agent follows."""
        return self._source.base_url

    def state_name(self) -> StateName:
        return state_name(self._cached, self._clock())

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.recover()
        while True:
            try:
                if due(self._cached, self._clock()):
                    await self.check(by_person=False)
                else:
                    await self._step(Tick(self._clock(), self._order_active()))
            except Exception:  # the updater must never take the agent down with it
                log.exception("updater step failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick)

    def wake(self) -> None:
        """Look again now (an order just ended, say)."""
        self._wake.set()

    async def recover(self) -> None:
        """Record the outcome of an update that was under way when the last process ended."""
        state = load_state(self._file)
        if state.phase is not Phase.APPLYING:
            self._cached = state
            return
        try:
            target = Version(state.target or "")
        except InvalidVersion:
            target = None
        if target is not None and self._current == target:
            log.info("update to %s complete", target)
            await self._step(Applied(self._clock(), target, self._jitter()))
        else:
            log.warning(
                "the update to %s did not complete; %s keeps running", target, self._current
            )
            await self._step(ApplyFailed(self._clock(), automatic=state.automatic))

    async def applied(self, version: Version) -> None:
        """An update installed without a running agent (``update apply``) is done."""
        await self._step(Applied(self._clock(), version, self._jitter()))

    async def check(self, *, by_person: bool, tick: bool = True) -> list[Effect]:
        """Check the repository; ``tick`` lets an automatic update start right after."""
        from agent.updater import remote  # tufup on first use, not at the agent's start

        try:
            found = await asyncio.to_thread(
                remote.check, self._source, self._current, self._staging()
            )
        except CheckError as exc:
            log.warning("update check failed (%s)", exc)
            failed = CheckFailed(self._clock(), self._jitter(), by_person, reason=exc.reason)
            effects = await self._step(failed)
        else:
            log.info("update check: latest %s, update %s", found.latest, found.update)
            event = Checked(
                self._clock(), self._current, found.latest, found.policy, self._jitter(), by_person
            )
            effects = await self._step(event)
        if not tick:
            return effects
        return effects + await self._step(Tick(self._clock(), self._order_active()))

    async def start(self) -> list[Effect]:
        """The person asked to update now: check afresh, then start if there is one."""
        effects = await self.check(by_person=True)
        if any(isinstance(e, StartApply) for e in effects):
            return effects
        self._person_started = True
        return effects + await self._step(StartRequested(self._clock(), self._order_active()))

    def _staging(self) -> Staging | None:
        return Staging(self._draw, self._clock()) if self._draw is not None else None

    # -- stepping and effects ----------------------------------------------------------------

    async def _step(self, event: Event) -> list[Effect]:
        async with self._lock:
            state = load_state(self._file)
            if isinstance(event, Tick) and state.phase is Phase.APPLYING:
                return []  # an update is under way (perhaps in another process)
            new, effects = step(state, event)
            if new != state:
                atomic_write_bytes(self._file, new.to_json().encode(), mode=0o600)
            self._cached = new
        for effect in effects:
            await self._carry_out(effect)
        return effects

    async def _carry_out(self, effect: Effect) -> None:
        if isinstance(effect, Notify):
            await self._notify(Notice(effect.code, dict(effect.params), link=effect.url))
        elif isinstance(effect, StartApply):
            person, self._person_started = self._person_started, False
            await self._apply(Version(effect.version), automatic=not person)

    async def _apply(self, version: Version, *, automatic: bool) -> None:
        log.info(
            "updating %s to %s (%s)",
            self._current,
            version,
            "automatic" if automatic else "asked for",
        )
        installed: Version | None = None
        from agent.updater import remote

        try:
            staging = await asyncio.to_thread(self._layout.new_staging_dir)
            _, unpacked = await asyncio.to_thread(
                remote.fetch, self._source, self._current, staging, self._staging()
            )
            installed = await asyncio.to_thread(self._layout.add, unpacked, move=True)
            if installed <= self._current:
                raise InstallError(f"the repository offered {installed}, not newer")
            if await self._hand_over(installed):
                return  # the new version records the outcome; this process is stopping
            raise InstallError(f"{installed} did not become healthy")
        except (UpdateError, OSError) as exc:
            log.warning("update failed: %s", exc)
            if installed is not None:
                await asyncio.to_thread(self._layout.roll_back, installed)
            await asyncio.to_thread(self._layout.prune, self._source)
            await self._step(ApplyFailed(self._clock(), automatic=automatic))
