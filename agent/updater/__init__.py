"""Self-update from signed TUF metadata (docs/updates.md): ``policy`` (the machine:
required, recommended, automatic, the fall-back to a manual install; pure), ``remote``
(the only tufup/tuf importer), ``install`` (versions side by side, switch, roll-back),
``service`` (the driver on the agent's loop), ``errors`` (one base, ``UpdateError``) and
``conformance`` (``eid-tuf-client``). The release side is ``installer/``."""

from agent.updater import remote  # the repository client, as a namespace
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
