"""The layers above the message table name their own messages (the table looks only
down): every failure of enrolment and of the relay door reaches the person as its own
catalogue message, with the parameters it needs, never as 10024."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.autostart import errors as link_errors
from agent.enrol import errors as enrol_errors
from agent.notices import NoticeError, notice_for
from eidcore.atomicfile import NotPrivate
from eidcore.messages import Language, MessageCode, catalogue

CASES = [
    (link_errors.LinkRefused("server"), MessageCode.START_LINK_INVALID, {"reason": "server"}),
    (
        link_errors.RelayNotAllowed("https://10.0.0.1", "private address"),
        MessageCode.RELAY_NOT_ALLOWED,
        {"relay": "https://10.0.0.1"},
    ),
    (
        link_errors.RelayUnreachable("https://relay.example", "timed out"),
        MessageCode.RELAY_UNREACHABLE,
        {"relay": "https://relay.example", "reason": "timed out"},
    ),
    (link_errors.RelayOrderGone(), MessageCode.RELAY_ORDER_GONE, {}),
    (
        link_errors.RelayAnswerInvalid("https://relay.example", "not JSON"),
        MessageCode.RELAY_ANSWER_INVALID,
        {"relay": "https://relay.example"},
    ),
    (enrol_errors.IssuerUnreachable("refused", None), MessageCode.COMMUNICATION_ERROR, {}),
    (enrol_errors.IssuerCertificateUntrusted("x", None), MessageCode.ISSUER_NOT_TRUSTED, {}),
    (enrol_errors.EnrolmentRefused("wrongCodeOrNumber"), MessageCode.WRONG_CODE, {}),
    (enrol_errors.EnrolmentRefused("codeBlocked"), MessageCode.ACTIVATION_CODE_BLOCKED, {}),
    (enrol_errors.EnrolmentRefused("orderUsed"), MessageCode.ACTIVATION_CODE_USED, {}),
    (enrol_errors.EnrolmentRefused("somethingNew"), MessageCode.ORDER_FAILED, {}),
    (
        enrol_errors.AlreadyEnrolled("Anna Andersson"),
        MessageCode.ALREADY_ENROLLED,
        {"credential": "Anna Andersson"},
    ),
]


@pytest.mark.parametrize(("exc", "code", "params"), CASES, ids=lambda v: type(v).__name__)
def test_each_failure_names_its_message(
    exc: NoticeError, code: MessageCode, params: dict[str, str]
) -> None:
    notice = notice_for(exc)
    assert (notice.code, dict(notice.params)) == (code, params)
    for language in Language:  # and the message renders with those parameters
        assert catalogue().render(notice.code, language, **notice.params).title


def test_every_error_class_is_covered() -> None:
    def subclasses(base: type[Exception]) -> set[type[Exception]]:
        found: set[type[Exception]] = set()
        for sub in base.__subclasses__():
            found |= {sub} | subclasses(sub)
        return found

    classes = subclasses(link_errors.AutostartError) | subclasses(enrol_errors.EnrolmentError)
    assert classes <= {type(exc) for exc, _, _ in CASES}


def test_a_folder_of_another_user_is_its_own_message(tmp_path: Path) -> None:
    notice = notice_for(NotPrivate(tmp_path, "belongs to user 65534"))
    assert (notice.code, notice.params["path"]) == (MessageCode.FOLDER_NOT_PRIVATE, str(tmp_path))
