"""Self-update from signed TUF metadata. So far: the update policy (pure); the tufup
seam, the Linux install with roll-back and the release tools come next."""

from agent.updater.policy import Policy, PolicyError, Standing, UpdaterState, standing, step

__all__ = ["Policy", "PolicyError", "Standing", "UpdaterState", "standing", "step"]
