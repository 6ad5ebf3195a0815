"""Stable message codes. A code never changes meaning once released; retired codes stay
reserved. 10024, 10026 and 10027 keep the numbers people already quote to support."""

from __future__ import annotations

import enum

__all__ = ["Action", "MessageCode", "Severity"]


class MessageCode(enum.IntEnum):
    TECHNICAL_ERROR = 10001
    NO_VALID_BANKID = 10002
    NONE_USABLE_FOR_IDENTIFICATION = 10003
    NONE_USABLE_FOR_SIGNATURE = 10004
    PIN_BLOCKED = 10005
    COMMUNICATION_ERROR = 10006
    UPDATE_REQUIRED = 10007
    REMOVE_FAILED = 10008
    PASSWORD_CHANGE_FAILED = 10009
    NO_BANKID_FOUND = 10010
    PIN_CHANGE_FAILED = 10011
    PIN_UNBLOCK_FAILED = 10012
    FILE_NOT_OPENED = 10013
    FILE_NOT_SAVED = 10014
    DIALOG_BLOCKED = 10015
    WRONG_PASSWORD = 10016
    UPDATE_RECOMMENDED = 10017
    NEWER_VERSION_AVAILABLE = 10018
    AUTOMATIC_UPDATE = 10019
    NO_UPDATE_NEEDED = 10020
    UPDATE_FAILED_WILL_RETRY = 10021
    SELF_UPDATE_FAILED_MANUAL = 10022
    UPDATE_FAILED_REPEATEDLY = 10023
    INTERNAL_ERROR = 10024
    BANKID_MISSING = 10025
    ORDER_CANCELLED = 10026
    ORDER_FAILED = 10027
    UPDATE_UNREACHABLE_REPEATEDLY = 10028
    ALL_EXPIRED = 10029
    WRONG_CODE = 10030
    ACTIVATION_CODE_BLOCKED = 10031
    ORDER_TOOK_TOO_LONG = 10032
    FILE_LOCKED = 10033
    PERSONAL_NUMBER_FORMAT = 10034
    TIMED_OUT = 10035
    USER_CANCELLED = 10036
    WRONG_PIN = 10037
    PUK_BLOCKED = 10038
    WRONG_PUK = 10039
    CREDENTIAL_DAMAGED = 10040
    CREDENTIAL_TOO_NEW = 10041
    ALREADY_PRESENT = 10042
    PASSWORD_TOO_WEAK = 10043
    PASSWORDS_DIFFER = 10044
    PERSONAL_NUMBER_INVALID = 10045
    CARD_REMOVED = 10046
    NO_SUCH_BANKID = 10047


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Action(enum.StrEnum):
    """What the notice offers besides closing it."""

    OK = "ok"
    RETRY = "retry"
    OPEN_URL = "openUrl"  # opens the catalogue entry's url (support or install page)
    START_UPDATE = "startUpdate"
    MANUAL_UPDATE = "manualUpdate"  # opens the install page from the signed update policy
    MANAGE_PIN = "managePin"
    REMOVE_BANKID = "removeBankid"
