"""What ``collect`` answers, at the bridge and at the order relay alike: a status and a
hint code, in BankID's words (its RP API v6), so a website's code reads one vocabulary
whichever door an order came through. Pure."""

from __future__ import annotations

import enum

__all__ = ["Hint", "PhaseWords", "Status"]


class Status(enum.StrEnum):
    PENDING = "pending"
    FAILED = "failed"
    COMPLETE = "complete"


class Hint(enum.StrEnum):
    OUTSTANDING_TRANSACTION = "outstandingTransaction"  # not yet started on the device
    NO_CLIENT = "noClient"  # waiting for a card to be inserted
    STARTED = "started"  # the agent has the order; its dialog is opening
    USER_SIGN = "userSign"  # the person is typing a password or PIN
    EXPIRED_TRANSACTION = "expiredTransaction"
    USER_CANCEL = "userCancel"
    CANCELLED = "cancelled"  # by the website (or a newer order from it)
    CERTIFICATE_ERR = "certificateErr"  # no usable BankID, or it was blocked
    START_FAILED = "startFailed"  # the agent could not start the order
    UPDATE_REQUIRED = "updateRequired"  # the agent may not be used until it is updated
    NOT_SUPPORTED = "notSupportedByUserApp"  # asked what no agent can do (BankID's word)


class PhaseWords(enum.Enum):
    """Base of an order machine's phases whose values are ``(Status, Hint | None)``: what
    collect says in each phase, read the same way at the bridge and the relay."""

    @property
    def status(self) -> Status:
        status: Status = self.value[0]
        return status

    @property
    def hint(self) -> Hint | None:
        hint: Hint | None = self.value[1]
        return hint

    @property
    def pending(self) -> bool:
        return self.status is Status.PENDING
