from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.credentials import CredentialDamaged, KeyPurpose, UnsupportedVersion, fileformat
from agent.credentials.fileformat import WrongSecret
from tests.conftest import ANNA, BERTIL, FAST_KDF, NOW, PASSWORD, MakeToken


@pytest.fixture(scope="module")
def blob(make_token: MakeToken) -> bytes:
    return fileformat.dumps(make_token())


def test_round_trip_keeps_everything(blob: bytes) -> None:
    token = fileformat.loads(blob)
    assert fileformat.dumps(token) == blob
    info = token.info()
    assert info.owner.personal_number == ANNA.personal_number
    assert info.owner.name == "Anna Andersson"
    assert info.development
    assert info.tries_left == 5
    assert info.issuer == "Test Issuing CA"


def test_certificates_are_readable_without_the_password(blob: bytes) -> None:
    doc = json.loads(blob)
    der = base64.b64decode(doc["certificates"]["identification"][0])
    assert x509.load_der_x509_certificate(der).subject.rfc4514_string().find("198112189876") >= 0
    assert PASSWORD.encode() not in blob


def test_open_gives_keys_that_match_and_sign(blob: bytes) -> None:
    token = fileformat.loads(blob)
    keys = token.open(PASSWORD)
    for purpose in KeyPurpose:
        cert = x509.load_der_x509_certificate(token.chains[purpose][0])
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        der_sig = keys[purpose].sign(b"data", ec.ECDSA(hashes.SHA256()))
        public.verify(der_sig, b"data", ec.ECDSA(hashes.SHA256()))
    assert len(fileformat.sign_raw(keys[KeyPurpose.IDENTIFICATION], b"x")) == 64


def test_wrong_password(blob: bytes) -> None:
    with pytest.raises(WrongSecret):
        fileformat.loads(blob).open("not-the-right-one")


def test_password_is_unicode_normalised(make_token: MakeToken) -> None:
    composed, decomposed = "lösenord-å-ö", "lo\u0308senord-a\u030a-o\u0308"
    token = make_token(password=composed)
    assert token.open(decomposed)


def test_same_keys_never_share_salt_or_nonce(make_token: MakeToken) -> None:
    a, b = make_token(), make_token()
    assert a.salt != b.salt and a.nonce != b.nonce


def _edit(blob: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    """Change the document and re-seal its checksum, as a deliberate editor would."""
    doc = json.loads(blob)
    change(doc)
    if isinstance(doc, dict) and "checksum" in doc:
        doc["checksum"] = fileformat._checksum(doc)
    return json.dumps(doc).encode()


def test_accidental_damage_is_caught_by_the_checksum(blob: bytes) -> None:
    doc = json.loads(blob)
    first = doc["ciphertext"][0]
    doc["ciphertext"] = ("B" if first == "A" else "A") + doc["ciphertext"][1:]  # always a change
    with pytest.raises(CredentialDamaged, match="checksum"):
        fileformat.loads(json.dumps(doc).encode())


def test_swapping_certificates_makes_the_password_fail(blob: bytes, make_token: MakeToken) -> None:
    other = json.loads(fileformat.dumps(make_token(BERTIL)))

    def swap(doc: dict) -> None:  # type: ignore[type-arg]
        doc["certificates"] = other["certificates"]

    # The certificates are bound as associated data: someone who replaces them (to have a
    # signature attributed to another person) cannot get the file to open.
    with pytest.raises(WrongSecret):
        fileformat.loads(_edit(blob, swap)).open(PASSWORD)


def test_weakened_kdf_parameters_make_the_password_fail(blob: bytes) -> None:
    def weaken(doc: dict) -> None:  # type: ignore[type-arg]
        doc["kdf"]["iterations"] = 2

    with pytest.raises(WrongSecret):
        fileformat.loads(_edit(blob, weaken)).open(PASSWORD)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(version=0),
        lambda d: d.update(version="1"),
        lambda d: d.update(version=True),
        lambda d: d.update(format="something-else"),
        lambda d: d.pop("lock"),
        lambda d: d.update(extra=1),
        lambda d: d["kdf"].update(memoryKiB=1024),  # too weak to accept
        lambda d: d["kdf"].update(memoryKiB=64 * 1024 * 1024),  # 64 GiB: refuse, don't try
        lambda d: d["kdf"].update(iterations=10_000),
        lambda d: d["kdf"].update(lanes=0),
        lambda d: d["kdf"].update(algorithm="pbkdf2"),
        lambda d: d["kdf"].update(salt="not base64!"),
        lambda d: d["cipher"].update(nonce="AAAA"),
        lambda d: d["lock"].update(failedAttempts=-1),
        lambda d: d["lock"].update(locked="no"),
        lambda d: d["certificates"].update(identification=[]),
        lambda d: d["certificates"]["signature"].__setitem__(0, "AAAA"),
        lambda d: d["certificates"].update(identification=["AAAA"] * 9),
        lambda d: d.update(certificates=d["certificates"]["identification"]),
        lambda d: d.update(development="yes"),
    ],
)
def test_malformed_fields_are_damage(blob: bytes, change) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CredentialDamaged):
        fileformat.loads(_edit(blob, change))


def test_certificates_of_two_people_are_damage(blob: bytes, make_token: MakeToken) -> None:
    other = json.loads(fileformat.dumps(make_token(BERTIL)))

    def mix(doc: dict) -> None:  # type: ignore[type-arg]
        doc["certificates"]["signature"] = other["certificates"]["signature"]

    with pytest.raises(CredentialDamaged, match="different people"):
        fileformat.loads(_edit(blob, mix))


def test_purposes_swapped_fail_key_usage(blob: bytes) -> None:
    def swap(doc: dict) -> None:  # type: ignore[type-arg]
        c = doc["certificates"]
        c["identification"], c["signature"] = c["signature"], c["identification"]

    with pytest.raises(CredentialDamaged, match="key usage"):
        fileformat.loads(_edit(blob, swap))


def test_newer_version_is_reported_as_such(blob: bytes) -> None:
    with pytest.raises(UnsupportedVersion):
        fileformat.loads(_edit(blob, lambda d: d.update(version=2)))


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"\xff\xfe", b"[]", b"null", b"{}", b"[" * 100_000, b" " * 300_000],
)
def test_garbage_is_damage(data: bytes) -> None:
    with pytest.raises(CredentialDamaged):
        fileformat.loads(data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0))
def test_any_truncation_is_damage(blob: bytes, cut: int) -> None:
    """Cutting anything but the closing newline is damage. (Losing only that newline
    leaves the same JSON, which reads fine: found when a fresh run drew cut = len - 1.)"""
    content = len(blob.rstrip(b"\n"))
    with pytest.raises(CredentialDamaged):
        fileformat.loads(blob[: cut % content])


def test_losing_only_the_final_newline_is_harmless(blob: bytes) -> None:
    assert fileformat.loads(blob.rstrip(b"\n")).id == fileformat.loads(blob).id


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_is_caught(blob: bytes, position: int, bit: int) -> None:
    """A flipped bit is reported as damage when the file is read, so it never costs the
    person a password try. (A flip that parses back to the very same content — none is
    known in this layout — would be harmless, and is allowed.)"""
    data = bytearray(blob)
    data[position % len(data)] ^= 1 << bit
    try:
        token = fileformat.loads(bytes(data))
    except CredentialDamaged:
        return
    assert fileformat.dumps(token) == blob


def test_weak_new_password_is_refused_before_anything(make_token: MakeToken) -> None:
    from agent.credentials import PasswordTooWeak

    with pytest.raises(PasswordTooWeak):
        make_token(password="short")


def test_info_validity_is_the_intersection(make_token: MakeToken) -> None:
    info = make_token(days=30).info()
    assert info.not_before < NOW < info.not_after
    assert (info.not_after - NOW).days == 30


@pytest.mark.slow
def test_default_parameters_round_trip(ca) -> None:  # type: ignore[no-untyped-def]
    """The shipped Argon2id setting (128 MiB) end to end, once."""
    from issuer import make_file_credential

    token = make_file_credential(ca, ANNA, PASSWORD, NOW)
    assert token.kdf == fileformat.DEFAULT_KDF
    parsed = fileformat.loads(fileformat.dumps(token))
    assert set(parsed.open(PASSWORD)) == set(KeyPurpose)


def test_a_sealed_blob_opens_only_with_its_password_and_purpose() -> None:
    """What waits on disk during an enrolment (its keys) is sealed like a credential."""
    sealed = fileformat.seal_blob(
        b"keys", PASSWORD, purpose="p", random_bytes=os.urandom, kdf=FAST_KDF
    )
    assert b"keys" not in sealed and PASSWORD.encode() not in sealed
    assert fileformat.open_blob(sealed, PASSWORD, purpose="p") == b"keys"
    with pytest.raises(WrongSecret):
        fileformat.open_blob(sealed, "not the password", purpose="p")
    with pytest.raises(CredentialDamaged):
        fileformat.open_blob(sealed, PASSWORD, purpose="another use")
    doc = json.loads(sealed)
    doc["kdf"]["memoryKiB"] += 1024  # weaker or stronger, the header is bound in
    with pytest.raises(WrongSecret):
        fileformat.open_blob(json.dumps(doc).encode(), PASSWORD, purpose="p")
    doc["kdf"]["memoryKiB"] = 1 << 30  # a hostile file cannot make opening it costly
    with pytest.raises(CredentialDamaged):
        fileformat.open_blob(json.dumps(doc).encode(), PASSWORD, purpose="p")
    for junk in (b"", b"\xff", b"[]", b'{"format": "p"}', sealed[:-9]):
        with pytest.raises(CredentialDamaged):
            fileformat.open_blob(junk, PASSWORD, purpose="p")
