"""The update policy: what the agent does about updates, as a pure state machine.

Inputs are events carrying ``now`` (and a jitter fraction drawn by the driver); outputs are
the new state and the effects for the driver to carry out (tell the person, start an
update, refuse orders). No clock, no randomness, no I/O here. The state serialises to
JSON so the failure counters survive restarts.

The policy itself (minimum and recommended versions, automatic, manual-install URL,
failure threshold, check interval) comes only from TUF-verified custom metadata of the
release targets; ``Policy.from_custom`` validates it.

Behaviour (UPDATE-POLICY.md, the seed's eight update messages):
- below the minimum → REQUIRED: orders are refused, 10007 offers the update;
- below the recommended → RECOMMENDED: 10017, the person may postpone;
- newer exists, nothing demanded → 10018, quietly;
- automatic on → 10019, then the update starts, never while an order is active;
- up to date on a person's check → 10020;
- an automatic update failed → 10021, retried later with back-off, the old version
  keeps serving; a person-started one failed → 10022 (update manually);
- N failed updates in a row → 10023, whose OK opens the signed manual-install URL;
- N failed checks in a row (unreachable, expired metadata) → 10028.

Version status (BankID's version control: accepted, phase-out, blocked), signed in the
same policy as rules over version ranges, the first that matches wins:
- blocked → BLOCKED: orders are refused (``updateRequired``), 10092 offers the update;
- phase-out until a date → PHASE_OUT: 10093 says until when it works; from the day after,
  as blocked;
- and an agent that has not verified fresh metadata for longer than ``maxOfflineDays``
  (default 30) while its checks fail treats itself as blocked: 10094 (the network, with
  the proxy hint) or 10095 (the repository's metadata), until a check succeeds.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from agent.updater.errors import PolicyError  # raised here; defined with the others
from eidcore import strictjson
from eidcore.messages import MessageCode

__all__ = [
    "OUTCOME_MESSAGES",
    "Applied",
    "ApplyFailed",
    "ApplyOutcome",
    "CheckFailed",
    "Checked",
    "Effect",
    "Notify",
    "Phase",
    "Policy",
    "PolicyError",
    "Standing",
    "StartApply",
    "StartRequested",
    "StateName",
    "Tick",
    "UpdaterState",
    "VersionRule",
    "VersionStatus",
    "apply_outcome",
    "due",
    "refusal",
    "standing",
    "state_name",
    "step",
]

CHECK_RETRY = dt.timedelta(minutes=5)  # first retry after a failed check, doubling
APPLY_RETRY = dt.timedelta(minutes=30)  # first retry after a failed update, doubling
MAX_APPLY_RETRY = dt.timedelta(hours=24)
JITTER = 0.2  # ± share of the interval, so a fleet does not check in lockstep


MAX_RULES = 50


class VersionStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    PHASE_OUT = "phaseOut"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class VersionRule:
    """Versions in ``versions`` (a PEP 440 range: "<1.2", "==1.3.0", ">=1.0,<1.1") have
    ``status``; a phase-out ends after the day ``until`` (UTC)."""

    versions: SpecifierSet
    status: VersionStatus
    until: dt.date | None = None

    @classmethod
    def from_custom(cls, doc: object) -> VersionRule:
        """Raises: PolicyError."""
        if not isinstance(doc, dict) or not set(doc) <= {"versions", "status", "until"}:
            raise PolicyError(
                "a versionStatus rule has versions, status and (for a phaseOut) until, nothing else"
            )
        versions, status, until = doc.get("versions"), doc.get("status"), doc.get("until")
        if not isinstance(versions, str) or not 0 < len(versions) <= 200:
            raise PolicyError("versions must be a version range such as '<1.2.0'")
        try:
            specifier = SpecifierSet(versions)
            kind = VersionStatus(str(status))
        except (InvalidSpecifier, ValueError):
            raise PolicyError(f"not a version range and status: {versions!r}, {status!r}") from None
        if not str(specifier):
            raise PolicyError("versions must name a range")
        if (kind is VersionStatus.PHASE_OUT) != (until is not None):
            raise PolicyError("a phaseOut rule, and only one, has until (YYYY-MM-DD)")
        day = None
        if until is not None:
            if not isinstance(until, str) or len(until) != 10:
                raise PolicyError("until must be a date, YYYY-MM-DD")
            try:
                day = dt.date.fromisoformat(until)
            except ValueError:
                raise PolicyError("until must be a date, YYYY-MM-DD") from None
        return cls(specifier, kind, day)

    def ends(self) -> dt.datetime | None:
        """When a phase-out stops working: the start of the day after ``until``, UTC."""
        if self.until is None:
            return None
        return dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), dt.UTC)


class IllegalEvent(RuntimeError):
    """An event the current phase does not allow (a bug in the driver); nothing changed."""


@dataclass(frozen=True)
class Policy:
    minimum: Version | None = None
    recommended: Version | None = None
    automatic: bool = False
    manual_url: str = ""
    failure_threshold: int = 3
    check_interval: dt.timedelta = dt.timedelta(hours=6)
    version_status: tuple[VersionRule, ...] = ()
    max_offline: dt.timedelta = dt.timedelta(days=30)

    def status_of(self, version: Version) -> VersionRule | None:
        """The first rule whose range holds ``version``; None: accepted."""
        for rule in self.version_status:
            if rule.versions.contains(version, prereleases=True):
                return rule
        return None

    @classmethod
    def from_custom(cls, custom: Mapping[str, Any]) -> Policy:
        """From the ``custom`` metadata of a verified target. Every value is a string, an
        integer or a boolean: TUF signs canonical JSON, which has no floats.

        Raises: PolicyError."""
        url = custom.get("manualUrl", "")
        automatic = custom.get("automatic", False)
        threshold = custom.get("failureThreshold", 3)
        minutes = custom.get("checkIntervalMinutes", 360)
        offline = custom.get("maxOfflineDays", 30)
        rules = custom.get("versionStatus", [])
        if not isinstance(rules, list) or len(rules) > MAX_RULES:
            raise PolicyError(f"versionStatus must be a list of at most {MAX_RULES} rules")
        if not isinstance(url, str) or (url and not url.startswith(("https://", "http://"))):
            raise PolicyError("manualUrl must be an http(s) URL")
        if not isinstance(automatic, bool):
            raise PolicyError("automatic must be true or false")
        for name, value, low, high in (
            ("failureThreshold", threshold, 1, 100),
            ("checkIntervalMinutes", minutes, 3, 43200),
            ("maxOfflineDays", offline, 1, 365),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise PolicyError(f"{name} must be a whole number from {low} to {high}")
        try:
            return cls(
                minimum=_version(custom.get("requiredMinimum")),
                recommended=_version(custom.get("recommended")),
                automatic=automatic,
                manual_url=url,
                failure_threshold=threshold,
                check_interval=dt.timedelta(minutes=minutes),
                version_status=tuple(VersionRule.from_custom(rule) for rule in rules),
                max_offline=dt.timedelta(days=offline),
            )
        except InvalidVersion as exc:
            raise PolicyError(str(exc)) from None


def _version(value: object) -> Version | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidVersion(f"a version must be a string, not {value!r}")
    return Version(value)


class Standing(enum.Enum):
    """Where the running version stands, with the notice each standing gives."""

    BLOCKED = MessageCode.VERSION_BLOCKED
    REQUIRED = MessageCode.UPDATE_REQUIRED
    PHASE_OUT = MessageCode.VERSION_PHASE_OUT
    RECOMMENDED = MessageCode.UPDATE_RECOMMENDED
    NEWER_AVAILABLE = MessageCode.NEWER_VERSION_AVAILABLE
    UP_TO_DATE = MessageCode.NO_UPDATE_NEEDED


def standing(
    current: Version, latest: Version | None, policy: Policy, now: dt.datetime | None = None
) -> Standing:
    """Where ``current`` stands; ``now`` ends phase-outs (None: none has ended)."""
    rule = policy.status_of(current)
    ends = rule.ends() if rule is not None else None
    if rule is not None and rule.status is VersionStatus.BLOCKED:
        return Standing.BLOCKED
    if ends is not None and now is not None and now >= ends:
        return Standing.BLOCKED
    if policy.minimum is not None and current < policy.minimum:
        return Standing.REQUIRED
    if ends is not None:
        return Standing.PHASE_OUT
    if policy.recommended is not None and current < policy.recommended:
        return Standing.RECOMMENDED
    if latest is not None and current < latest:
        return Standing.NEWER_AVAILABLE
    return Standing.UP_TO_DATE


class Phase(enum.StrEnum):
    IDLE = "idle"  # nothing to do until the next check
    AVAILABLE = "available"  # a newer version is known; waiting for the person or for idle
    APPLYING = "applying"
    MANUAL = "manual"  # self-update gave up: the person installs by hand


@dataclass(frozen=True)
class UpdaterState:
    phase: Phase = Phase.IDLE
    next_check: dt.datetime | None = None  # None: check at once
    apply_failures: int = 0  # in a row
    check_failures: int = 0  # in a row
    target: str | None = None  # the version to install
    standing: Standing = Standing.UP_TO_DATE
    automatic: bool = False
    retry_apply_at: dt.datetime | None = None
    last_success: dt.datetime | None = None
    manual_url: str = ""
    threshold: int = 3
    phase_out_ends: dt.datetime | None = None  # PHASE_OUT: blocked from then on
    max_offline: dt.timedelta = dt.timedelta(days=30)
    failing_since: dt.datetime | None = None  # the first failed check of this streak
    failure_reason: str | None = None  # the last failed check's CheckError reason
    stale_told: bool = False  # the person was told this streak made the agent refuse

    def to_json(self) -> str:
        def t(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return json.dumps(
            {
                "phase": self.phase.value,
                "nextCheck": t(self.next_check),
                "applyFailures": self.apply_failures,
                "checkFailures": self.check_failures,
                "target": self.target,
                "standing": self.standing.name,
                "automatic": self.automatic,
                "retryApplyAt": t(self.retry_apply_at),
                "lastSuccess": t(self.last_success),
                "manualUrl": self.manual_url,
                "threshold": self.threshold,
                "phaseOutEnds": t(self.phase_out_ends),
                "maxOfflineDays": self.max_offline.days,
                "failingSince": t(self.failing_since),
                "failureReason": self.failure_reason,
                "staleTold": self.stale_told,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> UpdaterState:
        """A damaged state file starts afresh rather than stopping updates.

        Raises: nothing."""
        try:
            doc = strictjson.loads(text)

            def t(key: str) -> dt.datetime | None:
                return dt.datetime.fromisoformat(doc[key]) if doc.get(key) else None

            return cls(
                phase=Phase(doc["phase"]),
                next_check=t("nextCheck"),
                apply_failures=int(doc["applyFailures"]),
                check_failures=int(doc["checkFailures"]),
                target=doc.get("target"),
                standing=Standing[doc["standing"]],
                automatic=bool(doc["automatic"]),
                retry_apply_at=t("retryApplyAt"),
                last_success=t("lastSuccess"),
                manual_url=str(doc.get("manualUrl", "")),
                threshold=int(doc.get("threshold", 3)),
                phase_out_ends=t("phaseOutEnds"),
                max_offline=dt.timedelta(days=int(doc.get("maxOfflineDays", 30))),
                failing_since=t("failingSince"),
                failure_reason=doc.get("failureReason"),
                stale_told=bool(doc.get("staleTold", False)),
            )
        except (ValueError, KeyError, TypeError, OverflowError):
            return cls()


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """A check that reached the repository and verified its metadata."""

    now: dt.datetime
    current: Version
    latest: Version | None  # None: the repository has nothing newer
    policy: Policy
    jitter: float  # in [0, 1), drawn by the driver
    by_person: bool = False  # the person asked ("Check for updates"): always answer


@dataclass(frozen=True)
class CheckFailed:
    """Unreachable, garbage, or expired/invalid metadata: not 'nothing new'."""

    now: dt.datetime
    jitter: float
    by_person: bool = False
    reason: str = "unreachable"  # CheckError.reason: the network, or the metadata


@dataclass(frozen=True)
class Tick:
    """Time passes; ``order_active`` tells whether an update may start now."""

    now: dt.datetime
    order_active: bool


@dataclass(frozen=True)
class StartRequested:
    """The person pressed OK on an update notice."""

    now: dt.datetime
    order_active: bool


@dataclass(frozen=True)
class Applied:
    now: dt.datetime
    version: Version
    jitter: float


@dataclass(frozen=True)
class ApplyFailed:
    now: dt.datetime
    automatic: bool


Event = Checked | CheckFailed | Tick | StartRequested | Applied | ApplyFailed


# -- effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notify:
    code: MessageCode
    url: str | None = None  # for 10022/10023: what OK opens
    params: tuple[tuple[str, str], ...] = ()  # the message's placeholders


@dataclass(frozen=True)
class StartApply:
    version: str


# Whether orders are refused (a required update) is not an effect: it is the state's
# ``refusal``, which the bridge and the relay door read on every order.
Effect = Notify | StartApply


# -- the machine ---------------------------------------------------------------------------


def _after(now: dt.datetime, interval: dt.timedelta, jitter: float) -> dt.datetime:
    return now + interval * (1 + JITTER * (2 * jitter - 1))


def step(state: UpdaterState, event: Event) -> tuple[UpdaterState, list[Effect]]:
    """The state after ``event`` and what to do about it. Pure.

    Raises:
        TypeError: an event of an unknown type (a bug in the driver).
    """
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"not an updater event: {event!r}")
    if state.phase not in ALLOWED[type(event)]:
        raise IllegalEvent(f"{type(event).__name__} in phase {state.phase}")
    result: tuple[UpdaterState, list[Effect]] = handler(state, event)
    return result


def _checked(state: UpdaterState, e: Any) -> tuple[UpdaterState, list[Effect]]:
    assert isinstance(e, Checked)
    now, policy = e.now, e.policy
    place = standing(e.current, e.latest, policy, now)
    rule = policy.status_of(e.current)
    target = str(e.latest) if e.latest is not None and e.latest > e.current else None
    new = replace(
        state,
        next_check=_after(now, policy.check_interval, e.jitter),
        check_failures=0,
        last_success=now,
        standing=place,
        automatic=policy.automatic,
        manual_url=policy.manual_url,
        threshold=policy.failure_threshold,
        target=target,
        phase_out_ends=rule.ends() if rule is not None else None,
        max_offline=policy.max_offline,
        failing_since=None,
        failure_reason=None,
        stale_told=False,
    )
    effects: list[Effect] = []
    if target is None:
        new = replace(new, phase=Phase.IDLE, apply_failures=0, retry_apply_at=None)
        if place is Standing.BLOCKED:  # nothing to update to: the person must still know
            effects.append(Notify(MessageCode.VERSION_BLOCKED))
        elif e.by_person:
            effects.append(Notify(MessageCode.NO_UPDATE_NEEDED))
        return new, effects
    gave_up = state.apply_failures >= policy.failure_threshold  # the threshold may have moved
    refused = place in (Standing.REQUIRED, Standing.BLOCKED)
    if state.phase is Phase.MANUAL and state.target == target and gave_up:
        if e.by_person or refused:
            effects.append(Notify(MessageCode.UPDATE_FAILED_REPEATEDLY, policy.manual_url))
        return new, effects  # self-update gave up on this version; the person installs it
    if state.phase is Phase.APPLYING:
        return new, effects
    new = replace(new, phase=Phase.AVAILABLE)
    if state.target != target:
        new = replace(new, apply_failures=0, retry_apply_at=None)
    first_time = state.target != target or e.by_person
    if policy.automatic:
        if first_time:
            effects.append(Notify(MessageCode.AUTOMATIC_UPDATE))
    elif first_time or refused or (place is Standing.PHASE_OUT and state.standing is not place):
        effects.append(_standing_notice(place, new))
    return new, effects


def _standing_notice(place: Standing, state: UpdaterState) -> Notify:
    if place is Standing.PHASE_OUT and state.phase_out_ends is not None:
        last_day = (state.phase_out_ends - dt.timedelta(days=1)).date().isoformat()
        return Notify(place.value, params=(("date", last_day),))
    return Notify(place.value)


def _check_failed(state: UpdaterState, e: Any) -> tuple[UpdaterState, list[Effect]]:
    assert isinstance(e, CheckFailed)
    failures = state.check_failures + 1
    delay = min(CHECK_RETRY * 2 ** (failures - 1), dt.timedelta(hours=6))
    new = replace(
        state,
        check_failures=failures,
        next_check=_after(e.now, delay, e.jitter),
        failing_since=state.failing_since or e.now,
        failure_reason=e.reason,
    )
    effects: list[Effect] = []
    stale = _stale_code(new, e.now)
    if stale is not None:  # said at the first failed check past the limit, or when asked
        told = not state.stale_told or e.by_person
        return replace(new, stale_told=True), [Notify(stale)] if told else []
    if failures == state.threshold or e.by_person:
        repeated = failures >= state.threshold
        code = (
            MessageCode.UPDATE_UNREACHABLE_REPEATEDLY
            if repeated
            else MessageCode.COMMUNICATION_ERROR
        )
        effects.append(Notify(code))
    return new, effects


def _tick(state: UpdaterState, e: Any) -> tuple[UpdaterState, list[Effect]]:
    assert isinstance(e, Tick)
    due = state.retry_apply_at is None or e.now >= state.retry_apply_at
    if state.phase is Phase.AVAILABLE and state.automatic and due and not e.order_active:
        assert state.target is not None
        return replace(state, phase=Phase.APPLYING), [StartApply(state.target)]
    return state, []


def _start_requested(state: UpdaterState, e: Any) -> tuple[UpdaterState, list[Effect]]:
    assert isinstance(e, StartRequested)
    if state.phase not in (Phase.AVAILABLE, Phase.MANUAL) or state.target is None:
        return state, []
    if e.order_active:
        return replace(state, automatic=True, retry_apply_at=None), []  # as soon as idle
    return replace(state, phase=Phase.APPLYING), [StartApply(state.target)]


def _applied(state: UpdaterState, e: Any) -> tuple[UpdaterState, list[Effect]]:
    assert isinstance(e, Applied)
    return UpdaterState(
        next_check=_after(e.now, dt.timedelta(hours=6), e.jitter),
        last_success=state.last_success,
        manual_url=state.manual_url,
        threshold=state.threshold,
        max_offline=state.max_offline,
    ), []


def _apply_failed(state: UpdaterState, e: Any) -> tuple[UpdaterState, list[Effect]]:
    assert isinstance(e, ApplyFailed)
    failures = state.apply_failures + 1
    if failures >= state.threshold:
        return replace(state, phase=Phase.MANUAL, apply_failures=failures), [
            Notify(MessageCode.UPDATE_FAILED_REPEATEDLY, state.manual_url or None)
        ]
    delay = min(APPLY_RETRY * 2 ** (failures - 1), MAX_APPLY_RETRY)
    new = replace(
        state, phase=Phase.AVAILABLE, apply_failures=failures, retry_apply_at=e.now + delay
    )
    if e.automatic:
        return new, [Notify(MessageCode.UPDATE_FAILED_WILL_RETRY)]
    return new, [Notify(MessageCode.SELF_UPDATE_FAILED_MANUAL, state.manual_url or None)]


# Which events each phase accepts: the outcome of an update (Applied, ApplyFailed) only
# while one runs; everything else at any time (a person's OK on a notice that is no
# longer current does nothing).
ALLOWED: dict[type, frozenset[Phase]] = {
    Checked: frozenset(Phase),
    CheckFailed: frozenset(Phase),
    Tick: frozenset(Phase),
    StartRequested: frozenset(Phase),
    Applied: frozenset({Phase.APPLYING}),
    ApplyFailed: frozenset({Phase.APPLYING}),
}

_HANDLERS: dict[type, Any] = {
    Checked: _checked,
    CheckFailed: _check_failed,
    Tick: _tick,
    StartRequested: _start_requested,
    Applied: _applied,
    ApplyFailed: _apply_failed,
}


def _stale_code(state: UpdaterState, now: dt.datetime) -> MessageCode | None:
    """10094/10095 when the checks fail and fresh metadata was last verified longer than
    ``max_offline`` ago (or never, since the first failure)."""
    since = state.last_success or state.failing_since
    if not state.check_failures or since is None or now - since <= state.max_offline:
        return None
    if state.failure_reason == "unreachable":
        return MessageCode.UPDATE_OFFLINE_TOO_LONG
    return MessageCode.UPDATE_METADATA_TOO_OLD


def refusal(state: UpdaterState, now: dt.datetime) -> MessageCode | None:
    """Why orders are refused now (the notice that says so), or None: they are not."""
    if state.standing is Standing.BLOCKED:
        return MessageCode.VERSION_BLOCKED
    if state.phase_out_ends is not None and now >= state.phase_out_ends:
        return MessageCode.VERSION_BLOCKED
    if state.standing is Standing.REQUIRED:
        return MessageCode.UPDATE_REQUIRED
    return _stale_code(state, now)


class StateName(enum.StrEnum):
    """The word ``/v1/info`` and ``update status`` use for the updater's state."""

    UNMANAGED = "unmanaged"  # no updater runs: not installed with ``eid-agent install``
    NOT_CHECKED = "notChecked"
    CHECK_FAILED = "checkFailed"
    UP_TO_DATE = "upToDate"
    AVAILABLE = "available"
    RECOMMENDED = "recommended"
    REQUIRED = "required"
    PHASE_OUT = "phaseOut"  # works until a date, then blocked
    BLOCKED = "blocked"  # this version may not be used
    OFFLINE_TOO_LONG = "offlineTooLong"  # no fresh metadata for too long: treated as blocked
    UPDATING = "updating"
    MANUAL_UPDATE_NEEDED = "manualUpdateNeeded"


_STANDING_NAMES = {
    Standing.BLOCKED: StateName.BLOCKED,
    Standing.PHASE_OUT: StateName.PHASE_OUT,
    Standing.REQUIRED: StateName.REQUIRED,
    Standing.RECOMMENDED: StateName.RECOMMENDED,
    Standing.NEWER_AVAILABLE: StateName.AVAILABLE,
    Standing.UP_TO_DATE: StateName.UP_TO_DATE,
}


def state_name(state: UpdaterState, now: dt.datetime | None = None) -> StateName:
    """The state's word; with ``now``, also a phase-out that has ended and stale metadata."""
    if state.phase is Phase.APPLYING:
        return StateName.UPDATING
    code = refusal(state, now) if now is not None else None
    if code is MessageCode.VERSION_BLOCKED:
        return StateName.BLOCKED
    if code in (MessageCode.UPDATE_OFFLINE_TOO_LONG, MessageCode.UPDATE_METADATA_TOO_OLD):
        return StateName.OFFLINE_TOO_LONG
    if state.phase is Phase.MANUAL:
        return StateName.MANUAL_UPDATE_NEEDED
    if state.last_success is None:
        return StateName.CHECK_FAILED if state.check_failures else StateName.NOT_CHECKED
    return _STANDING_NAMES[state.standing]


class ApplyOutcome(enum.Enum):
    """How a person's "update now" ended, read from the state before and after."""

    INSTALLED = "installed"
    UP_TO_DATE = "upToDate"
    FAILED = "failed"  # this attempt failed; the person may try again or install by hand
    FAILED_REPEATEDLY = "failedRepeatedly"  # the fall-back to a manual install
    NOT_YET = "notYet"  # nothing happened yet: an update waits for an order in progress


# What the person is told for each outcome (INSTALLED: the new version's number instead).
OUTCOME_MESSAGES: dict[ApplyOutcome, MessageCode] = {
    ApplyOutcome.UP_TO_DATE: MessageCode.NO_UPDATE_NEEDED,
    ApplyOutcome.FAILED: MessageCode.SELF_UPDATE_FAILED_MANUAL,
    ApplyOutcome.FAILED_REPEATEDLY: MessageCode.UPDATE_FAILED_REPEATEDLY,
}


def apply_outcome(before: UpdaterState, after: UpdaterState, *, installed: bool) -> ApplyOutcome:
    if installed:
        return ApplyOutcome.INSTALLED
    if after.phase is Phase.MANUAL:
        return ApplyOutcome.FAILED_REPEATEDLY
    if after.apply_failures > before.apply_failures:
        return ApplyOutcome.FAILED
    if state_name(after) is StateName.UP_TO_DATE:
        return ApplyOutcome.UP_TO_DATE
    return ApplyOutcome.NOT_YET


def due(state: UpdaterState, now: dt.datetime) -> bool:
    """Whether a check is due."""
    return state.next_check is None or now >= state.next_check
