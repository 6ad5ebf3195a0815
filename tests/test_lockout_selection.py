from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.credentials import (
    MAX_PASSWORD_TRIES,
    CredentialInfo,
    CredentialKind,
    KeyPurpose,
    NoneReason,
    NoUsableCredential,
    select,
)
from agent.credentials.lockout import LockState
from tests.conftest import ANNA, BERTIL, NOW, MakeToken


@given(st.lists(st.booleans(), max_size=30))
def test_lockout_follows_the_rule_for_any_sequence(outcomes: list[bool]) -> None:
    """Model: count consecutive failures; at 5 the state locks and never unlocks."""
    state, streak, locked = LockState(), 0, False
    for success in outcomes:
        if state.locked:
            with pytest.raises(RuntimeError):
                state.after_success()
            state = state.after_failure()
        elif success:
            state, streak = state.after_success(), 0
        else:
            state, streak = state.after_failure(), streak + 1
            locked = locked or streak >= MAX_PASSWORD_TRIES
        assert state.locked is locked
        assert state.tries_left == (0 if locked else MAX_PASSWORD_TRIES - streak)


def test_counter_at_limit_normalises_to_locked() -> None:
    assert LockState.normalised(5, False).locked
    assert not LockState.normalised(4, False).locked


@pytest.fixture(scope="module")
def anna(make_token: MakeToken) -> CredentialInfo:
    return make_token(ANNA).info()


@pytest.fixture(scope="module")
def bertil(make_token: MakeToken) -> CredentialInfo:
    return make_token(BERTIL).info()


def _expired(c: CredentialInfo) -> CredentialInfo:
    return dataclasses.replace(c, not_after=NOW - dt.timedelta(days=1))


def _reason(*args, **kwargs) -> NoneReason:  # type: ignore[no-untyped-def]
    with pytest.raises(NoUsableCredential) as err:
        select(*args, **kwargs)
    return err.value.reason


def test_usable_are_returned(anna: CredentialInfo, bertil: CredentialInfo) -> None:
    assert select([bertil, anna], KeyPurpose.SIGNATURE, NOW) == (anna, bertil)
    only = select(
        [anna, bertil], KeyPurpose.IDENTIFICATION, NOW, personal_number=BERTIL.personal_number
    )
    assert only == (bertil,)


def test_the_four_reasons(anna: CredentialInfo, bertil: CredentialInfo) -> None:
    ident, sign = KeyPurpose.IDENTIFICATION, KeyPurpose.SIGNATURE
    assert _reason([], ident, NOW) is NoneReason.NO_BANKID
    assert _reason([_expired(anna), _expired(bertil)], ident, NOW) is NoneReason.ALL_EXPIRED
    locked = dataclasses.replace(anna, locked=True)
    assert _reason([locked, _expired(bertil)], ident, NOW) is NoneReason.NO_VALID
    assert (
        _reason([anna], ident, NOW, personal_number=BERTIL.personal_number)
        is NoneReason.NONE_FOR_IDENTIFICATION
    )
    assert (
        _reason([anna], sign, NOW, kinds=frozenset({CredentialKind.CARD}))
        is NoneReason.NONE_FOR_SIGNATURE
    )
    ident_only = dataclasses.replace(anna, purposes=frozenset({ident}))
    assert _reason([ident_only], sign, NOW) is NoneReason.NONE_FOR_SIGNATURE


def test_not_yet_valid_is_not_usable(anna: CredentialInfo) -> None:
    early = anna.not_before - dt.timedelta(seconds=1)
    assert _reason([anna], KeyPurpose.IDENTIFICATION, early) is NoneReason.NO_VALID


def test_rsa_bankids_are_left_out_where_only_es256_signs(
    anna: CredentialInfo, bertil: CredentialInfo
) -> None:
    """A bridge order's signedData v2 is ES256: a BankID with RSA keys is not offered
    there (and is, for a relay order's XML)."""
    with_rsa = dataclasses.replace(bertil, rsa=True)
    ident = KeyPurpose.IDENTIFICATION
    assert select([anna, with_rsa], ident, NOW, es256=True) == (anna,)
    assert select([anna, with_rsa], ident, NOW) == (anna, with_rsa)
    assert _reason([with_rsa], ident, NOW, es256=True) is NoneReason.NONE_FOR_IDENTIFICATION
