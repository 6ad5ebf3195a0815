"""Every way an update can fail, under one base (the shape of python-tuf's
``tuf/api/exceptions.py``): a caller that only needs "the update did not happen" catches
``UpdateError``; one that says why catches the subclass.

``IllegalEvent`` (agent.updater.policy) is not here on purpose: it is a bug in the
driver, not an update that failed, and must not be recorded as one.
"""

from __future__ import annotations

__all__ = ["CheckError", "FetchError", "InstallError", "PolicyError", "UpdateError"]


class UpdateError(Exception):
    """The update, or the check for one, did not happen; what was installed is unchanged."""


class CheckError(UpdateError):
    """The repository could not be checked: unreachable, expired, invalid or unsigned."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # unreachable, unsigned, expired, invalid, policy


class FetchError(UpdateError):
    """The update could not be downloaded or did not verify; nothing was installed."""

    def __init__(self, detail: str, *, by_patch: bool = False) -> None:
        super().__init__(detail)
        self.by_patch = by_patch


class InstallError(UpdateError):
    """The install could not be changed; what was there is unchanged."""


class PolicyError(UpdateError, ValueError):
    """The signed policy is not one this agent understands (a ValueError too: it is
    raised while reading a value)."""
