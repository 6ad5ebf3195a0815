"""Bodies of the relay's two APIs, validated into values at the edge. Pure.

Field names, limits and error codes are BankID's RP API v6 where the meaning is the same
(docs/relay-api.md lists where ours differ). Unknown fields are refused, as at the bridge:
a server that misspells ``userNonVisibleData`` should learn it now.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eidcore import phoneproof, returnurl
from eidcore.fields import (
    FieldRefused,
    ShownAndSigned,
    base64_field,
    json_object,
    shown_and_signed,
)
from eidcore.jsonapi import ApiError
from eidcore.signeddata import OrderKind
from eidcore.status import Hint

__all__ = [
    "MAX_BODY_BYTES",
    "AgentReport",
    "AgentStep",
    "ErrorCode",
    "OrderStart",
    "Proof",
    "RelayError",
    "ip_address",
    "parse_json",
    "parse_proofs",
    "parse_ref",
    "parse_report",
    "parse_step",
    "parse_token",
    "return_url",
    "start_data",
]

MAX_BODY_BYTES = 512 * 1024  # the two data limits below, and a completion, with room
MAX_RETURN_URL = returnurl.MAX
MAX_JSON_DEPTH = 6  # a completion's {"completionData": {"user": {...}}} is 3; room, no more
MAX_REF = 64
BODY_DEADLINE = 10.0  # seconds for a request's body, once its headers are in
MAX_TRACKED_ADDRESSES = 65_536  # the agent API's budgets (relay.config's [limits])
MAX_TOKEN = 128
_UHI = re.compile(r"[A-Za-z0-9+/=_-]{1,64}")
_VERSION = re.compile(r"[0-9A-Za-z.+_-]{1,32}")
_DIGEST = re.compile(r"[A-Za-z0-9_-]{43}")


class ErrorCode(enum.StrEnum):
    INVALID_PARAMETERS = "invalidParameters"
    ALREADY_IN_PROGRESS = "alreadyInProgress"  # v6: an order for that number is pending
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "notFound"
    METHOD_NOT_ALLOWED = "methodNotAllowed"
    REQUEST_TIMEOUT = "requestTimeout"  # the body did not arrive within BODY_DEADLINE
    UNSUPPORTED_MEDIA_TYPE = "unsupportedMediaType"
    REQUEST_TOO_LARGE = "requestTooLarge"
    VERIFICATION_FAILED = "verificationFailed"  # the agent's result did not verify
    TOO_MANY_REQUESTS = "tooManyRequests"
    INTERNAL_ERROR = "internalError"
    MAINTENANCE = "maintenance"  # the database is unreachable: try again


STATUS = {
    ErrorCode.INVALID_PARAMETERS: 400,
    ErrorCode.ALREADY_IN_PROGRESS: 400,
    ErrorCode.VERIFICATION_FAILED: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.MAINTENANCE: 503,
}


class RelayError(ApiError):
    """Answered as ``{"errorCode", "details"}`` with the code's HTTP status; ``details``
    names the field, never echoes a value."""

    code: ErrorCode

    def __init__(self, code: ErrorCode, details: str) -> None:
        super().__init__(code, details, STATUS[code])


def _invalid(details: str) -> RelayError:
    return RelayError(ErrorCode.INVALID_PARAMETERS, details)


@dataclass(frozen=True)
class OrderStart:
    """A start, validated (``relay.v6``; the return URL's registration is the party's
    rule, checked by the driver)."""

    kind: OrderKind
    end_user_ip: str
    return_url: str | None = None
    visible: str | None = None
    visible_format: str = "plaintext"
    non_visible: bytes | None = None
    personal_number: str | None = None
    token_kinds: tuple[str, ...] = ()
    pin_pad: bool = False  # cardReader class2: the PIN typed on the reader's own pad


@dataclass(frozen=True)
class AgentReport:
    """``/agent/v1/progress``, ``/complete`` or ``/fail``: the order, the agent's secret,
    and a hint code or the completion: the XML signature (base64) and the agent's
    ``uhi`` for this party."""

    order_ref: str
    agent_secret: str
    hint: Hint | None = None
    signature: str | None = None
    uhi: str | None = None


def parse_json(body: bytes) -> dict[str, Any]:
    """Raises: RelayError(invalidParameters)."""
    try:
        return json_object(body, MAX_JSON_DEPTH)
    except FieldRefused as exc:
        raise _invalid(exc.details) from None


def start_data(
    kind: OrderKind, body: Mapping[str, Any], auth_fields: set[str], sign_fields: set[str]
) -> ShownAndSigned:
    """What a start checks first: no field but the kind's, then what is shown and signed.
    Raises: RelayError(invalidParameters) naming the field."""
    unknown = sorted(set(body) - (auth_fields if kind is OrderKind.AUTH else sign_fields))
    if unknown:
        raise _invalid(f"unknown field: {unknown[0]}")
    try:
        return shown_and_signed(kind, body)
    except FieldRefused as exc:
        raise _invalid(exc.details) from None


def parse_ref(body: Mapping[str, Any]) -> str:
    if set(body) != {"orderRef"}:
        raise _invalid("the body must be exactly {orderRef}")
    return _ref(body["orderRef"])


@dataclass(frozen=True)
class Proof:
    """One BankID an agent shows for its phone orders: the identification certificate's
    chain (DER, leaf first) and its signature over ``eidcore.phoneproof.proof_bytes``."""

    chain: tuple[bytes, ...]
    signature: bytes


MAX_CERTIFICATE = 8 * 1024  # characters of base64
MAX_SIGNATURE = 1400  # characters of base64: ES256's is 88, RSA-8192's 1,368


def parse_proofs(body: Mapping[str, Any]) -> tuple[str, tuple[Proof, ...]]:
    """``/agent/v1/phone/orders``: the relay's challenge and up to MAX_PROOFS proofs.
    Raises: RelayError(invalidParameters)."""
    if set(body) != {"challenge", "proofs"}:
        raise _invalid("the body must be exactly {challenge, proofs}")
    challenge = body["challenge"]
    if not isinstance(challenge, str) or not 0 < len(challenge) <= MAX_TOKEN:
        raise _invalid("challenge must be a short string")
    if not challenge.isascii():
        raise _invalid("challenge must be a short string")
    proofs = body["proofs"]
    if not isinstance(proofs, list) or not 0 < len(proofs) <= phoneproof.MAX_PROOFS:
        raise _invalid(f"proofs must be 1 to {phoneproof.MAX_PROOFS} proofs")
    parsed = []
    for proof in proofs:
        if not isinstance(proof, dict) or set(proof) != {"certificateChain", "signature"}:
            raise _invalid("a proof is exactly {certificateChain, signature}")
        chain = proof["certificateChain"]
        if not isinstance(chain, list) or not 0 < len(chain) <= 4:
            raise _invalid("certificateChain must be 1 to 4 certificates")
        try:
            parsed.append(
                Proof(
                    tuple(base64_field(c, "certificateChain", MAX_CERTIFICATE) for c in chain),
                    base64_field(proof["signature"], "signature", MAX_SIGNATURE),
                )
            )
        except FieldRefused as exc:
            raise _invalid(exc.details) from None
    return challenge, tuple(parsed)


def parse_token(body: Mapping[str, Any]) -> str:
    if set(body) != {"autoStartToken"}:
        raise _invalid("the body must be exactly {autoStartToken}")
    token = body["autoStartToken"]
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN or not token.isascii():
        raise _invalid("autoStartToken must be a short string")
    return token


_REPORT_HINTS = {
    "progress": frozenset({Hint.USER_SIGN}),
    "fail": frozenset(
        {Hint.USER_CANCEL, Hint.CERTIFICATE_ERR, Hint.START_FAILED, Hint.UPDATE_REQUIRED}
    ),
}


def parse_report(what: str, body: Mapping[str, Any]) -> AgentReport:
    """``what``: progress, complete, fail or status (which carries nothing more)."""
    if what == "status":
        if set(body) != {"orderRef", "agentSecret"}:
            raise _invalid("the body must be exactly {orderRef, agentSecret}")
        secret = body["agentSecret"]
        if not isinstance(secret, str) or not 0 < len(secret) <= MAX_TOKEN:
            raise _invalid("agentSecret must be a short string")
        return AgentReport(_ref(body["orderRef"]), secret)
    extra = "completionData" if what == "complete" else "hintCode"
    if set(body) != {"orderRef", "agentSecret", extra}:
        raise _invalid(f"the body must be exactly {{orderRef, agentSecret, {extra}}}")
    secret = body["agentSecret"]
    if not isinstance(secret, str) or not 0 < len(secret) <= MAX_TOKEN:
        raise _invalid("agentSecret must be a short string")
    if what == "complete":
        completion = body["completionData"]
        if not isinstance(completion, dict) or set(completion) != {"signature", "uhi"}:
            raise _invalid("completionData must be exactly {signature, uhi}")
        signature, uhi = completion["signature"], completion["uhi"]
        if not isinstance(signature, str) or not 0 < len(signature) <= MAX_BODY_BYTES:
            raise _invalid("signature must be the XML signature in base64")
        if not isinstance(uhi, str) or not _UHI.fullmatch(uhi):
            raise _invalid("uhi must be up to 64 characters of base64")
        return AgentReport(_ref(body["orderRef"]), secret, signature=signature, uhi=uhi)
    try:
        hint = Hint(body["hintCode"])
    except (ValueError, TypeError):
        raise _invalid("hintCode is not one this call takes") from None
    if hint not in _REPORT_HINTS[what]:
        raise _invalid("hintCode is not one this call takes")
    return AgentReport(_ref(body["orderRef"]), secret, hint=hint)


def _ref(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REF:
        raise _invalid("orderRef must be a short string")
    return value


def ip_address(value: object) -> str:
    """``endUserIp``, as both APIs take it. Raises: RelayError(invalidParameters)."""
    if not isinstance(value, str) or len(value) > 45:
        raise _invalid("endUserIp is required: the person's IP address as the site saw it")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _invalid("endUserIp is not an IPv4 or IPv6 address") from None


def return_url(value: object) -> str | None:
    """``returnUrl``, as both APIs take it. Raises: RelayError(invalidParameters)."""
    if value is None:
        return None
    try:
        return returnurl.check(value)
    except returnurl.ReturnUrlRefused as exc:
        raise _invalid(f"returnUrl must be {exc}") from None


# -- the agent API v2: one WebSocket per order (relay.channel) ------------------------------


class Step(enum.StrEnum):
    """What an agent's message on its order's WebSocket says: its one key."""

    FETCH = "fetch"  # the autostart token
    RESUME = "resume"  # {orderRef, agentSecret}: the same order on a new connection
    PROGRESS = "progress"  # "userSign": the person is asked
    RESULT = "result"  # {signatureValue, chain, version, uhi}: the relay rebuilds the XML
    CHAIN = "chain"  # the certificate chain, when the relay asked for it
    FAIL = "fail"  # a hint code: why the order ended at the agent


@dataclass(frozen=True)
class AgentStep:
    """One message from an agent, validated. ``chain_digest``: ``xmlsig.chain_digest``
    of the chain that signed; ``chain``: that chain (DER, leaf first)."""

    step: Step
    token: str = ""
    order_ref: str = ""
    agent_secret: str = ""
    hint: Hint | None = None
    signature_value: bytes = b""
    chain_digest: str = ""
    version: str = ""
    uhi: str = ""
    chain: tuple[bytes, ...] = ()


MAX_STEP_BYTES = 48 * 1024  # a chain of four certificates in base64, with room


def parse_step(raw: bytes) -> AgentStep:
    """Raises: RelayError(invalidParameters) naming what was wrong."""
    body = parse_json(raw)
    if len(body) != 1:
        raise _invalid("a message has exactly one key")
    ((key, value),) = body.items()
    try:
        step = Step(key)
    except ValueError:
        raise _invalid("not a message this API takes") from None
    if step is Step.FETCH:
        return AgentStep(step, token=parse_token({"autoStartToken": value}))
    if step is Step.RESUME:
        if not isinstance(value, dict):
            raise _invalid("resume must be {orderRef, agentSecret}")
        report = parse_report("status", value)
        return AgentStep(step, order_ref=report.order_ref, agent_secret=report.agent_secret)
    if step in (Step.PROGRESS, Step.FAIL):
        what = "progress" if step is Step.PROGRESS else "fail"
        try:
            hint = Hint(value)
        except (ValueError, TypeError):
            raise _invalid("not a hint code this message takes") from None
        if hint not in _REPORT_HINTS[what]:
            raise _invalid("not a hint code this message takes")
        return AgentStep(step, hint=hint)
    if step is Step.CHAIN:
        if not isinstance(value, list) or not 0 < len(value) <= 4:
            raise _invalid("chain must be 1 to 4 certificates")
        try:
            chain = tuple(base64_field(c, "chain", MAX_CERTIFICATE) for c in value)
        except FieldRefused as exc:
            raise _invalid(exc.details) from None
        return AgentStep(step, chain=chain)
    return _result(value)


def _result(value: object) -> AgentStep:
    if not isinstance(value, dict) or set(value) != {"signatureValue", "chain", "version", "uhi"}:
        raise _invalid("result must be exactly {signatureValue, chain, version, uhi}")
    try:
        signature = base64_field(value["signatureValue"], "signatureValue", MAX_SIGNATURE)
    except FieldRefused as exc:
        raise _invalid(exc.details) from None
    digest, version, uhi = value["chain"], value["version"], value["uhi"]
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise _invalid("chain must be the chain's digest")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise _invalid("version must be up to 32 letters, digits and .+_-")
    if not isinstance(uhi, str) or not _UHI.fullmatch(uhi):
        raise _invalid("uhi must be up to 64 characters of base64")
    return AgentStep(
        Step.RESULT, signature_value=signature, chain_digest=digest, version=version, uhi=uhi
    )
