from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.notices import notice_for
from agent.tokens import KeyPurpose, NoneReason, NoUsableCredential
from eidcore.messages import MessageCode
from issuer import CertificateAuthority, Person
from issuer.ca import new_key
from tests.conftest import ANNA, NOW, MakeToken


def test_person_certificates(ca: CertificateAuthority) -> None:
    pair = ca.issue_pair(ANNA, new_key().public_key(), new_key().public_key(), NOW)
    for cert, digital, nonrep in (
        (pair.identification, True, False),
        (pair.signature, False, True),
    ):
        cert.verify_directly_issued_by(ca.issuing_certificate)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert (usage.digital_signature, usage.content_commitment) == (digital, nonrep)
        serial = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
        assert serial == "198112189876"
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.issuing_certificate.verify_directly_issued_by(ca.root_certificate)
    assert pair.identification.not_valid_after_utc == pair.signature.not_valid_after_utc


def test_development_label_is_visible(ca: CertificateAuthority) -> None:
    org = ca.issuing_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert "development" in str(org[0].value)


def test_validity_must_fit_the_issuing_ca(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError):
        ca.issue_pair(ANNA, new_key().public_key(), new_key().public_key(), NOW, days=20 * 365)
    with pytest.raises(ValueError):
        ca.issue_pair(ANNA, new_key().public_key(), new_key().public_key(), NOW, days=0)


def test_save_and_load(tmp_path: Path, ca: CertificateAuthority) -> None:
    ca.save(tmp_path / "ca")
    assert CertificateAuthority.exists(tmp_path / "ca")
    again = CertificateAuthority.load(tmp_path / "ca")
    assert again.root_certificate == ca.root_certificate
    assert (tmp_path / "ca" / "root.key").stat().st_mode & 0o077 == 0


def test_names_split_at_the_last_space() -> None:
    p = Person.from_full_name(ANNA.personal_number, "Anna Maria Andersson")
    assert (p.given_name, p.surname) == ("Anna Maria", "Andersson")


def test_credential_expiry_leads_to_all_expired(make_token: MakeToken) -> None:
    from agent.tokens import select

    info = make_token(now=NOW - dt.timedelta(days=400), days=30).info()
    with pytest.raises(NoUsableCredential) as err:
        select([info], KeyPurpose.IDENTIFICATION, NOW)
    assert err.value.reason is NoneReason.ALL_EXPIRED
    assert notice_for(err.value).code is MessageCode.ALL_EXPIRED


def test_every_token_error_has_its_own_message(make_token: MakeToken) -> None:
    """The mapping is total over the token errors: none falls through to 10024."""
    import agent.tokens.errors as errors

    samples = [
        errors.WrongPassword(3),
        errors.WrongCurrentPassword(3),
        errors.CredentialLocked(),
        errors.CredentialDamaged("x"),
        errors.UnsupportedVersion(9),
        errors.NoSuchCredential("ab"),
        errors.AmbiguousId("ab"),
        errors.AlreadyPresent("ab"),
        errors.PasswordTooWeak(8),
        errors.CannotOpenFile("x"),
        errors.CannotSaveFile("x"),
        errors.RemoveFailed("x"),
        errors.StorageFailed("x"),
        *(errors.NoUsableCredential(r) for r in errors.NoneReason),
    ]
    classes = {
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.TokenError)
    } - {errors.TokenError}
    assert classes == {type(s) for s in samples}
    for exc in samples:
        assert notice_for(exc).code is not MessageCode.INTERNAL_ERROR, exc
    assert notice_for(RuntimeError("bug")).code is MessageCode.INTERNAL_ERROR
