"""The wrong-password rule for BankID on file: 5 wrong in a row locks it for good.

Pure: the store decides when to call these and writes the result.

The counter is a guard against guessing at the keyboard, not against someone who has
copied the file: a copy can be attacked offline, and there the memory-hard KDF is the
defence (see docs/credential-file-format.md). A lock is therefore never lifted by this
module, and an import keeps the counter the file carries.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PASSWORD_TRIES = 5


@dataclass(frozen=True)
class LockState:
    failed_attempts: int = 0
    locked: bool = False

    def __post_init__(self) -> None:
        if self.failed_attempts < 0:
            raise ValueError("failed_attempts < 0")

    @property
    def tries_left(self) -> int:
        return 0 if self.locked else max(0, MAX_PASSWORD_TRIES - self.failed_attempts)

    def after_failure(self) -> LockState:
        failed = self.failed_attempts + 1
        return LockState(failed, self.locked or failed >= MAX_PASSWORD_TRIES)

    def after_success(self) -> LockState:
        """Raises: RuntimeError when called on a locked state (a locked file never opens)."""
        if self.locked:
            raise RuntimeError("a locked credential cannot succeed")
        return LockState()

    @classmethod
    def normalised(cls, failed_attempts: int, locked: bool) -> LockState:
        # A counter at the limit means locked even if the flag was lost or edited away.
        return cls(failed_attempts, locked or failed_attempts >= MAX_PASSWORD_TRIES)
