"""Self-update from signed TUF metadata (docs/updates.md): ``policy`` (the machine:
required, recommended, automatic, the fall-back to a manual install; pure), ``remote``
(the only tufup/tuf importer), ``install`` (versions side by side, switch, roll-back),
``service`` (the driver on the agent's loop), ``errors`` (one base, ``UpdateError``) and
``conformance`` (``eid-tuf-client``). The release side is ``installer/``."""

from agent.updater.policy import Policy, PolicyError, Standing, UpdaterState, standing, step

__all__ = ["Policy", "PolicyError", "Standing", "UpdaterState", "standing", "step"]
