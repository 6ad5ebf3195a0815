"""Self-update from signed TUF metadata (docs/updates.md): ``policy`` (the machine:
required, recommended, automatic, the fall-back to a manual install; pure), ``remote``
(the only tufup/tuf importer), ``install`` (versions side by side, switch, roll-back),
``service`` (the driver on the agent's loop), ``errors`` (one base, ``UpdateError``) and
``conformance`` (``eid-tuf-client``). The release side is ``installer/``."""

from types import ModuleType

from agent.updater.errors import InstallError, UpdateError
from agent.updater.install import Layout, archive_name, bundle_version, running_layout
from agent.updater.policy import (
    OUTCOME_MESSAGES,
    ApplyOutcome,
    Phase,
    Policy,
    PolicyError,
    Standing,
    StateName,
    UpdaterState,
    apply_outcome,
    refusal,
    standing,
    state_name,
    step,
)
from agent.updater.service import UpdaterService, load_state, rollout_draw, state_file

__all__ = [
    "OUTCOME_MESSAGES",
    "ApplyOutcome",
    "InstallError",
    "Layout",
    "Phase",
    "Policy",
    "PolicyError",
    "Standing",
    "StateName",
    "UpdateError",
    "UpdaterService",
    "UpdaterState",
    "apply_outcome",
    "archive_name",
    "bundle_version",
    "load_state",
    "refusal",
    "remote",
    "rollout_draw",
    "running_layout",
    "standing",
    "state_file",
    "state_name",
    "step",
]


def __getattr__(name: str) -> ModuleType:
    """``remote`` (tufup, tuf, requests: ~14 MiB) is loaded on first use, by a check or
    a download, not by the agent's start."""
    if name == "remote":
        import importlib

        return importlib.import_module("agent.updater.remote")
    raise AttributeError(name)
