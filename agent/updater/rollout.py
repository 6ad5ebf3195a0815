"""Staged roll-out: which agents a release is offered to, day by day (ADR 0016). Pure.

Each agent draws one number in [0, 1) once and keeps it on the computer (never sent: a
TUF check is plain GETs of static files). A release rolling out over ``days`` days is
offered on its n-th day (n = 0, 1, …) to the agents whose draw is below (n + 1) / days;
Sparkle's seven groups are ``days = 7``. One number rather than a group lets the
administrator choose any length (1–30 days), and change it, without anyone drawing
again; an agent offered a release on one day is offered it on every later day.

A paused roll-out stays at the share it had when paused, and resuming carries on from
there (the start moves by the time it was paused). A halted release is offered to nobody
new; agents that installed it keep it. A required update (or a blocked version) ignores
staging: those agents must update now.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from agent.updater.errors import PolicyError

__all__ = ["MAX_DAYS", "Rollout", "offered"]

MAX_DAYS = 30
DAY = dt.timedelta(days=1)


def _time(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise PolicyError(f"rollout {name} must be a UTC time, YYYY-MM-DDTHH:MM:SSZ")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise PolicyError(f"rollout {name} must be a UTC time, YYYY-MM-DDTHH:MM:SSZ") from None
    if moment.utcoffset() != dt.timedelta(0):
        raise PolicyError(f"rollout {name} must be in UTC")
    return moment


def _text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Rollout:
    start: dt.datetime
    days: int
    paused_at: dt.datetime | None = None
    halted: bool = False

    @classmethod
    def from_custom(cls, doc: object) -> Rollout | None:
        """From a release's signed policy (``rollout``); None: offered to everyone.

        Raises: PolicyError."""
        if doc is None:
            return None
        if not isinstance(doc, dict) or not {"start", "days"} <= set(doc) <= {
            "start",
            "days",
            "pausedAt",
            "halted",
        }:
            raise PolicyError("rollout has start and days, and may have pausedAt and halted")
        days, halted = doc["days"], doc.get("halted", False)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise PolicyError(f"rollout days must be a whole number from 1 to {MAX_DAYS}")
        if not isinstance(halted, bool):
            raise PolicyError("rollout halted must be true or false")
        paused = doc.get("pausedAt")
        return cls(
            start=_time(doc["start"], "start"),
            days=days,
            paused_at=_time(paused, "pausedAt") if paused is not None else None,
            halted=halted,
        )

    def to_custom(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"start": _text(self.start), "days": self.days}
        if self.paused_at is not None:
            doc["pausedAt"] = _text(self.paused_at)
        if self.halted:
            doc["halted"] = True
        return doc

    def share(self, now: dt.datetime) -> float:
        """The share of agents the release is offered to at ``now``."""
        if self.halted:
            return 0.0
        at = min(now, self.paused_at) if self.paused_at is not None else now
        if at < self.start:
            return 0.0
        day = (at - self.start) // DAY
        return min(1.0, (day + 1) / self.days)

    def paused(self, now: dt.datetime) -> Rollout:
        return self if self.paused_at is not None else replace(self, paused_at=now)

    def resumed(self, now: dt.datetime) -> Rollout:
        """On from the share it had when paused: the start moves by the pause."""
        if self.paused_at is None:
            return self
        return replace(self, start=self.start + (now - self.paused_at), paused_at=None)

    def halt(self) -> Rollout:
        return replace(self, halted=True)


def offered(draw: float, rollout: Rollout | None, now: dt.datetime) -> bool:
    """Whether an agent that drew ``draw`` is offered a release rolling out so."""
    return rollout is None or draw < rollout.share(now)
