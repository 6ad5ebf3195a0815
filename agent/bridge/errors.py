"""What websites are told when the bridge refuses: a code, an HTTP status, a short detail.
Never a stack trace; the log gets the rest."""

from __future__ import annotations

import enum

from eidcore.jsonapi import ApiError


class ErrorCode(enum.StrEnum):
    INVALID_PARAMETERS = "invalidParameters"
    ALREADY_IN_PROGRESS = "alreadyInProgress"
    UPDATE_REQUIRED = "updateRequired"
    FORBIDDEN_ORIGIN = "forbiddenOrigin"
    FORBIDDEN_HOST = "forbiddenHost"
    FORBIDDEN_USER = "forbiddenUser"  # the agent belongs to another user of this computer
    NOT_FOUND = "notFound"
    REQUEST_TOO_LARGE = "requestTooLarge"
    RATE_LIMITED = "rateLimited"
    INTERNAL_ERROR = "internalError"


STATUS = {
    ErrorCode.INVALID_PARAMETERS: 400,
    ErrorCode.ALREADY_IN_PROGRESS: 409,
    ErrorCode.UPDATE_REQUIRED: 503,
    ErrorCode.FORBIDDEN_ORIGIN: 403,
    ErrorCode.FORBIDDEN_HOST: 421,
    ErrorCode.FORBIDDEN_USER: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
}


class BridgeError(ApiError):
    code: ErrorCode

    def __init__(self, code: ErrorCode, details: str, *, status: int | None = None) -> None:
        super().__init__(code, details, status if status is not None else STATUS[code])
