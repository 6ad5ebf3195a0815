"""Where an installed agent's update repository is, and where it keeps what it trusts.
Apart from ``remote`` so that knowing the place does not import the TUF client (an
agent that is not installed never loads it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

__all__ = ["APP_NAME", "DOWNLOAD_DEADLINE", "Source", "Staging"]

APP_NAME = "eid-agent"
DOWNLOAD_DEADLINE = 300.0  # seconds for one whole check or download


@dataclass(frozen=True)
class Source:
    """Where the repository is and where this agent keeps its trusted metadata."""

    base_url: str  # the repository's root: <base>/metadata/, <base>/targets/
    metadata_dir: Path  # holds the trusted root.json (and what TUF verified since)
    targets_dir: Path  # downloaded archives; the current one makes patches possible
    # A check or download that has not finished by then has failed, however the server
    # trickles its bytes: an updater must never hang on a slow or hostile server.
    deadline: float = DOWNLOAD_DEADLINE

    @property
    def metadata_url(self) -> str:
        return self.base_url.rstrip("/") + "/metadata/"

    @property
    def targets_url(self) -> str:
        return self.base_url.rstrip("/") + "/targets/"


@dataclass(frozen=True)
class Staging:
    """This agent's place in staged roll-outs (agent.updater.rollout): its draw, and now."""

    draw: float
    now: dt.datetime
