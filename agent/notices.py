"""The one place where failures become catalogue messages for people.

Every typed error a person can meet maps to a code and the values its text needs. An
exception not in the table is a bug or an unforeseen fault: the person gets 10024
(internal error) and the log gets the detail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from agent.credentials import (
    AlreadyPresent,
    CannotOpenFile,
    CannotSaveFile,
    CredentialDamaged,
    CredentialLocked,
    NoneReason,
    NoSuchCredential,
    NoUsableCredential,
    PasswordTooWeak,
    RemoveFailed,
    StorageFailed,
    UnsupportedVersion,
    WrongCurrentPassword,
    WrongPassword,
)
from agent.credentials.card import (
    CardProtocolError,
    CardRemoved,
    CardReset,
    NoCard,
    NoReader,
    NotOurCard,
    PcscUnavailable,
    PinBlocked,
    PinFormat,
    PinRef,
    PinsDiffer,
    PukBlocked,
    WrongCurrentPin,
    WrongPin,
    WrongPuk,
)
from agent.credentials.pkcs11 import (
    AdminKeyUnreadable,
    CannotEnrolHere,
    ManagementKeyRefused,
    PinEntryCancelled,
    TokenFault,
)
from eidcore.atomicfile import NotPrivate
from eidcore.messages import Action, Language, MessageCode, Term, catalogue
from eidcore.personal_number import InvalidPersonalNumber, Reason
from eidcore.prompt import NoInput, PasswordsDiffer

__all__ = ["Notice", "NoticeError", "format_notice", "notice_for"]


@dataclass(frozen=True)
class Notice:
    code: MessageCode
    params: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    link: str | None = None  # what the notice's OK opens (the signed install page)


class NoticeError(Exception):
    """An error of a layer above this table (enrolment, the relay door) that names its own
    message: the table looks only down, and such a layer knows its failures best."""

    def notice(self) -> Notice:
        return Notice(MessageCode.INTERNAL_ERROR)


_NONE_REASONS = {
    NoneReason.NO_BANKID: MessageCode.NO_BANKID_FOUND,
    NoneReason.ALL_EXPIRED: MessageCode.ALL_EXPIRED,
    NoneReason.NO_VALID: MessageCode.NO_VALID_BANKID,
    NoneReason.NONE_FOR_IDENTIFICATION: MessageCode.NONE_USABLE_FOR_IDENTIFICATION,
    NoneReason.NONE_FOR_SIGNATURE: MessageCode.NONE_USABLE_FOR_SIGNATURE,
}


def _tries(code: MessageCode) -> Callable[[BaseException], Notice]:
    def make(exc: BaseException) -> Notice:
        assert isinstance(exc, WrongPassword)
        return Notice(code, {"tries_left": exc.tries_left})

    return make


def _fixed(code: MessageCode) -> Callable[[BaseException], Notice]:
    return lambda _exc: Notice(code)


def _none_usable(exc: BaseException) -> Notice:
    assert isinstance(exc, NoUsableCredential)
    return Notice(_NONE_REASONS[exc.reason])


def _personal_number(exc: BaseException) -> Notice:
    assert isinstance(exc, InvalidPersonalNumber)
    if exc.reason is Reason.FORMAT:
        return Notice(MessageCode.PERSONAL_NUMBER_FORMAT)
    return Notice(MessageCode.PERSONAL_NUMBER_INVALID)


def _weak(exc: BaseException) -> Notice:
    assert isinstance(exc, PasswordTooWeak)
    return Notice(MessageCode.PASSWORD_TOO_WEAK, {"min_length": exc.min_length})


def _no_such(exc: BaseException) -> Notice:
    assert isinstance(exc, NoSuchCredential)
    return Notice(MessageCode.NO_SUCH_BANKID, {"token_id": exc.token_id})


STATE_TERMS = {  # CredentialState's values, as people read them
    "usable": Term.STATE_USABLE,
    "expired": Term.STATE_EXPIRED,
    "notYetValid": Term.STATE_NOT_YET_VALID,
    "locked": Term.STATE_LOCKED,
}

KIND_TERMS = {  # CredentialKind's values, as people read them (the wire keeps "file"/"card")
    "file": Term.KIND_FILE,
    "card": Term.KIND_CARD,
    "token": Term.KIND_TOKEN,
}

PIN_TERMS = {
    PinRef.USER: Term.TOKEN_PIN,
    PinRef.IDENTIFICATION: Term.IDENTIFICATION_PIN,
    PinRef.SIGNATURE: Term.SIGNATURE_PIN,
    PinRef.PUK: Term.PUK,
}


def _wrong_pin(code: MessageCode, untold: MessageCode) -> Callable[[BaseException], Notice]:
    def make(exc: BaseException) -> Notice:
        assert isinstance(exc, WrongPin)
        if exc.tries_left is None:  # a PKCS#11 token that says only "wrong"
            return Notice(untold, {"pin": PIN_TERMS[exc.pin]})
        return Notice(code, {"pin": PIN_TERMS[exc.pin], "tries_left": exc.tries_left})

    return make


def _pin_blocked(exc: BaseException) -> Notice:
    assert isinstance(exc, PinBlocked)
    return Notice(MessageCode.PIN_BLOCKED, {"pin": PIN_TERMS[exc.pin]})


def _wrong_puk(exc: BaseException) -> Notice:
    assert isinstance(exc, WrongPuk)
    if exc.tries_left is None:
        return Notice(MessageCode.WRONG_TOKEN_PUK, {"pin": PIN_TERMS[exc.pin]})
    return Notice(MessageCode.WRONG_PUK, {"pin": PIN_TERMS[exc.pin], "tries_left": exc.tries_left})


def _pin_format(exc: BaseException) -> Notice:
    assert isinstance(exc, PinFormat)
    if exc.pin is PinRef.USER:  # the token's own rule, which PKCS#11 does not tell
        return Notice(MessageCode.TOKEN_PIN_FORMAT)
    return Notice(
        MessageCode.PIN_FORMAT, {"pin": PIN_TERMS[exc.pin], "low": exc.low, "high": exc.high}
    )


# Looked up along the exception's MRO, so the most specific class wins.
_TABLE: Mapping[type[BaseException], Callable[[BaseException], Notice]] = {
    WrongCurrentPassword: _tries(MessageCode.PASSWORD_CHANGE_FAILED),
    WrongPassword: _tries(MessageCode.WRONG_PASSWORD),
    CredentialLocked: _fixed(MessageCode.FILE_LOCKED),
    UnsupportedVersion: _fixed(MessageCode.CREDENTIAL_TOO_NEW),
    CredentialDamaged: _fixed(MessageCode.CREDENTIAL_DAMAGED),
    CannotOpenFile: _fixed(MessageCode.FILE_NOT_OPENED),
    CannotSaveFile: _fixed(MessageCode.FILE_NOT_SAVED),
    RemoveFailed: _fixed(MessageCode.REMOVE_FAILED),
    StorageFailed: _fixed(MessageCode.TECHNICAL_ERROR),
    AlreadyPresent: _fixed(MessageCode.ALREADY_PRESENT),
    PasswordTooWeak: _weak,
    PasswordsDiffer: _fixed(MessageCode.PASSWORDS_DIFFER),
    NoSuchCredential: _no_such,
    NoUsableCredential: _none_usable,
    InvalidPersonalNumber: _personal_number,
    NoInput: _fixed(MessageCode.USER_CANCELLED),
    WrongCurrentPin: _wrong_pin(MessageCode.PIN_CHANGE_FAILED, MessageCode.TOKEN_PIN_CHANGE_FAILED),
    WrongPin: _wrong_pin(MessageCode.WRONG_PIN, MessageCode.WRONG_TOKEN_PIN),
    PinBlocked: _pin_blocked,
    WrongPuk: _wrong_puk,
    PukBlocked: _fixed(MessageCode.PUK_BLOCKED),
    PinFormat: _pin_format,
    PinsDiffer: _fixed(MessageCode.PINS_DIFFER),
    CardRemoved: _fixed(MessageCode.CARD_REMOVED),
    CardReset: _fixed(MessageCode.CARD_RESET),
    NoReader: _fixed(MessageCode.NO_CARD_READER),
    NoCard: _fixed(MessageCode.NO_CARD),
    PcscUnavailable: _fixed(MessageCode.SMART_CARD_SERVICE_UNAVAILABLE),
    NotOurCard: _fixed(MessageCode.CARD_NOT_SUPPORTED),
    CardProtocolError: _fixed(MessageCode.TECHNICAL_ERROR),
    TokenFault: _fixed(MessageCode.TECHNICAL_ERROR),
    CannotEnrolHere: _fixed(MessageCode.TOKEN_NOT_ENROLLABLE),
    PinEntryCancelled: _fixed(MessageCode.USER_CANCELLED),  # Cancel on a PIN pad
    ManagementKeyRefused: lambda exc: Notice(
        MessageCode.MANAGEMENT_KEY_REFUSED, {"credential": getattr(exc, "label", "")}
    ),
    AdminKeyUnreadable: lambda exc: Notice(
        MessageCode.MANAGEMENT_KEY_UNREADABLE, {"path": str(exc)}
    ),
    NotPrivate: lambda exc: Notice(
        MessageCode.FOLDER_NOT_PRIVATE, {"path": getattr(exc, "path", "")}
    ),
}


def notice_for(exc: BaseException) -> Notice:
    if isinstance(exc, NoticeError):
        return exc.notice()
    for cls in type(exc).__mro__:
        make = _TABLE.get(cls)
        if make is not None:
            return make(exc)
    return Notice(MessageCode.INTERNAL_ERROR)


def format_notice(notice: Notice, language: Language) -> str:
    """``[code] title``, the body, and what the notice's OK would do, for a terminal or a
    log a person reads."""
    texts = catalogue()
    text = texts.render(notice.code, language, **notice.params)
    lines = f"[{int(notice.code)}] {text.title}\n{text.console or text.body}\n"
    if notice.link:
        lines += texts.term(Term.UPDATE_PAGE, language).format(url=notice.link) + "\n"
    elif texts.entry(notice.code).action is Action.START_UPDATE:
        lines += texts.term(Term.UPDATE_HOW, language) + "\n"
    return lines
