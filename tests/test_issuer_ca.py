from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.credentials import KeyPurpose, NoneReason, NoUsableCredential
from agent.notices import notice_for
from eidcore import policies
from eidcore.messages import MessageCode
from issuer import CertificateAuthority, Person
from issuer.ca import new_key
from tests.conftest import ANNA, NOW, MakeToken


def test_person_certificates(ca: CertificateAuthority) -> None:
    pair = ca.issue_pair(ANNA, new_key().public_key(), new_key().public_key(), NOW, kind="file")
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
        ca.issue_pair(
            ANNA, new_key().public_key(), new_key().public_key(), NOW, kind="file", days=20 * 365
        )
    with pytest.raises(ValueError):
        ca.issue_pair(
            ANNA, new_key().public_key(), new_key().public_key(), NOW, kind="file", days=0
        )


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
    from agent.credentials import select

    info = make_token(now=NOW - dt.timedelta(days=400), days=30).info()
    with pytest.raises(NoUsableCredential) as err:
        select([info], KeyPurpose.IDENTIFICATION, NOW)
    assert err.value.reason is NoneReason.ALL_EXPIRED
    assert notice_for(err.value).code is MessageCode.ALL_EXPIRED


def test_every_token_error_has_its_own_message(make_token: MakeToken) -> None:
    """The mapping is total over the token errors: none falls through to 10024."""
    import agent.credentials.errors as errors

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
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.CredentialError)
    } - {errors.CredentialError}
    assert classes == {type(s) for s in samples}
    for exc in samples:
        assert notice_for(exc).code is not MessageCode.INTERNAL_ERROR, exc
    assert notice_for(RuntimeError("bug")).code is MessageCode.INTERNAL_ERROR


def _policies(cert: x509.Certificate) -> list[str]:
    found = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    return [p.policy_identifier.dotted_string for p in found]


@pytest.mark.parametrize("kind", ["file", "card", "token"])
def test_each_kind_has_its_certificate_policy(ca: CertificateAuthority, kind: str) -> None:
    pair = ca.issue_pair(ANNA, new_key().public_key(), new_key().public_key(), NOW, kind=kind)
    for cert in (pair.identification, pair.signature):
        assert _policies(cert) == [policies.POLICY_FOR_KIND[kind]]
        assert policies.kind_of(_policies(cert)) == kind
    with pytest.raises(ValueError):
        ca.issue_pair(ANNA, new_key().public_key(), new_key().public_key(), NOW, kind="usb")


def test_an_issuer_names_its_own_policies(tmp_path: Path, ca: CertificateAuthority) -> None:
    ca.save(tmp_path)
    (tmp_path / "policies.toml").write_text('card = "1.2.752.999.1.2"\n')
    loaded = CertificateAuthority.load(tmp_path)
    pair = loaded.issue_pair(ANNA, new_key().public_key(), new_key().public_key(), NOW, kind="card")
    assert _policies(pair.identification) == ["1.2.752.999.1.2"]
    file_pair = loaded.issue_pair(
        ANNA, new_key().public_key(), new_key().public_key(), NOW, kind="file"
    )
    assert _policies(file_pair.signature) == [policies.POLICY_FOR_KIND["file"]]
    bad_tables = [
        'card = "not an oid"',
        'usb = "1.2.3"',
        'card = ["1.2.3", "1.2.4"]',
        'file = "1.2.3"\ncard = "1.2.3"',
        "card =",
    ]
    for bad in bad_tables:
        (tmp_path / "policies.toml").write_text(bad + "\n")
        with pytest.raises(ValueError):
            CertificateAuthority.load(tmp_path)


def test_a_verifier_reads_kinds_from_the_project_and_the_issuers_table() -> None:
    table = policies.verifier_table({"card": ("1.2.752.999.1.2",)})
    assert policies.kind_of(["1.2.752.999.1.2"], table) == "card"
    assert policies.kind_of([policies.POLICY_FOR_KIND["token"], "2.5.29.32.0"], table) == "token"
    assert policies.kind_of(["2.5.29.32.0"], table) is None
    with pytest.raises(policies.ConflictingPolicies):
        policies.kind_of(list(policies.POLICY_FOR_KIND.values())[:2], table)
    with pytest.raises(ValueError):  # the project's OID may not be given another kind
        policies.verifier_table({"card": (policies.POLICY_FOR_KIND["file"],)})
