"""The order relay's rules, pure: the order machine as a table, the autostart token's
life, and what a relying party may ask for. Time comes in as ``now``; randomness is
drawn by the driver.

An order is started by a relying party's server (``/rp/v6.0/auth`` or ``/sign``), fetched
once by the person's agent with the autostart token, moved on by the agent's reports,
and ended by the agent's result (which the relay verifies before ``collect`` says
``complete``), by the party's cancel, or by time.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
from dataclasses import dataclass, replace

from eidcore.signeddata import OrderKind
from eidcore.status import Hint, PhaseWords, Status

__all__ = [
    "CALL_INITIATORS",
    "CHALLENGE_TTL",
    "KEEP_FINISHED",
    "ORDER_TTL",
    "START_WITHIN",
    "TOKEN_BYTES",
    "Event",
    "IllegalTransition",
    "Phase",
    "RelayOrder",
    "advance",
    "current",
    "token_hash",
    "tokens_match",
]

TOKEN_BYTES = 32  # the autostart token and the agent's secret: 256 random bits each
START_WITHIN = dt.timedelta(seconds=30)  # the token's one fetch must come this soon
CHALLENGE_TTL = dt.timedelta(seconds=60)  # an agent's proof for phone orders comes this soon
CALL_INITIATORS = frozenset({"user", "RP"})
ORDER_TTL = dt.timedelta(minutes=3)  # then the order expires, as the bridge's do
KEEP_FINISHED = ORDER_TTL + dt.timedelta(minutes=3)  # a result stays collectable; then gone


class Phase(PhaseWords):
    """(status, hintCode) on the wire, the bridge's words."""

    OUTSTANDING = (Status.PENDING, Hint.OUTSTANDING_TRANSACTION)  # the token not fetched
    STARTED = (Status.PENDING, Hint.STARTED)  # the agent has it; its dialog is opening
    USER_SIGN = (Status.PENDING, Hint.USER_SIGN)
    COMPLETE = (Status.COMPLETE, None)
    EXPIRED = (Status.FAILED, Hint.EXPIRED_TRANSACTION)
    USER_CANCELLED = (Status.FAILED, Hint.USER_CANCEL)
    CANCELLED = (Status.FAILED, Hint.CANCELLED)
    CERTIFICATE_ERR = (Status.FAILED, Hint.CERTIFICATE_ERR)
    START_FAILED = (Status.FAILED, Hint.START_FAILED)
    UPDATE_REQUIRED = (Status.FAILED, Hint.UPDATE_REQUIRED)  # blocked, too old, too long unchecked
    NOT_SUPPORTED = (Status.FAILED, Hint.NOT_SUPPORTED)  # asked for what no agent can do


class Event(enum.Enum):
    FETCHED = "fetched"  # the agent fetched the order with its autostart token
    USER_SIGN = "userSign"  # the agent reports the person is typing
    COMPLETED = "completed"  # the agent's result verified
    USER_CANCEL = "userCancel"
    NO_CREDENTIAL = "certificateErr"  # no usable BankID, or it was blocked now
    AGENT_FAILED = "startFailed"  # the agent could not go on, or its result did not verify
    AGENT_OUTDATED = "updateRequired"  # the agent refuses orders until it is updated
    RP_CANCEL = "rpCancel"
    NOT_STARTED = "notStarted"  # the token was not fetched in time
    NOT_SUPPORTED = "notSupported"  # the site asked for what no agent can do (mrtd)
    EXPIRE = "expire"


_PENDING = [p for p in Phase if p.pending]
_WITH_AGENT = (Phase.STARTED, Phase.USER_SIGN)

TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (Phase.OUTSTANDING, Event.FETCHED): Phase.STARTED,
    (Phase.OUTSTANDING, Event.NOT_STARTED): Phase.START_FAILED,
    (Phase.OUTSTANDING, Event.NOT_SUPPORTED): Phase.NOT_SUPPORTED,
    **{(p, Event.USER_SIGN): Phase.USER_SIGN for p in _WITH_AGENT},
    **{(p, Event.COMPLETED): Phase.COMPLETE for p in _WITH_AGENT},
    **{(p, Event.USER_CANCEL): Phase.USER_CANCELLED for p in _WITH_AGENT},
    **{(p, Event.NO_CREDENTIAL): Phase.CERTIFICATE_ERR for p in _WITH_AGENT},
    **{(p, Event.AGENT_FAILED): Phase.START_FAILED for p in _WITH_AGENT},
    **{(p, Event.AGENT_OUTDATED): Phase.UPDATE_REQUIRED for p in _WITH_AGENT},
    **{(p, Event.RP_CANCEL): Phase.CANCELLED for p in _PENDING},
    **{(p, Event.EXPIRE): Phase.EXPIRED for p in _PENDING},
}


class IllegalTransition(Exception):
    def __init__(self, phase: Phase, event: Event) -> None:
        super().__init__(f"{event.value} is not allowed in {phase.name}")
        self.phase, self.event = phase, event


@dataclass(frozen=True)
class RelayOrder:
    """One order as the relay keeps it. Tokens are kept as hashes: a copy of the database
    starts no one's order."""

    ref: str
    party: str
    kind: OrderKind
    nonce: bytes  # the relay's nonce for this order, signed by the agent
    token_hash: str | None  # of the autostart token; None once used or ended
    created: dt.datetime
    end_user_ip: str
    phase: Phase = Phase.OUTSTANDING
    visible: str | None = None  # userVisibleData, decoded
    visible_format: str = "plaintext"
    non_visible: bytes | None = None
    return_url: str | None = None
    personal_number: str | None = None  # requirement.personalNumber
    token_kinds: tuple[str, ...] = ()  # from requirement.certificatePolicies; empty: any
    agent_hash: str | None = None  # of the secret the agent got at its fetch
    finished: dt.datetime | None = None
    completion: str | None = None  # the verified completionData, as JSON text
    # a phone order (BankID's phone/auth, phone/sign): who called whom, "user" or "RP".
    # No link is opened: the person's agent finds it, proving the personal number.
    call_initiator: str | None = None
    pin_pad: bool = False  # cardReader class2: the PIN on a reader's pad (the agent's word)

    @property
    def phone(self) -> bool:
        return self.call_initiator is not None

    @property
    def start_deadline(self) -> dt.datetime:
        return self.created + START_WITHIN

    @property
    def deadline(self) -> dt.datetime:
        return self.created + ORDER_TTL


def current(order: RelayOrder, now: dt.datetime) -> RelayOrder:
    """The order as it stands at ``now``: one whose token was not fetched in time failed
    (``startFailed``), one past its life expired. A phone order waits its whole life for
    the person's agent to look for it: no link is opened for it."""
    if order.phase is Phase.OUTSTANDING and not order.phone and now >= order.start_deadline:
        return replace(order, phase=Phase.START_FAILED, finished=order.start_deadline)
    if order.phase.pending and now >= order.deadline:
        return replace(order, phase=Phase.EXPIRED, finished=order.deadline)
    return order


def advance(order: RelayOrder, event: Event, now: dt.datetime) -> RelayOrder:
    """The order after ``event`` at ``now`` (time first). Raises: IllegalTransition."""
    order = current(order, now)
    target = TRANSITIONS.get((order.phase, event))
    if target is None:
        raise IllegalTransition(order.phase, event)
    return replace(order, phase=target, finished=None if target.pending else now)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def tokens_match(token: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and hmac.compare_digest(token_hash(token), stored_hash)
