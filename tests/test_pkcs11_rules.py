"""The pure rules of the PKCS#11 path: which modules to load (p11-kit's configuration) and
what counts as a BankID on a token, with real certificates from the tests' CA — and the
same rule fed hostile token contents, which must come out as reasons, never exceptions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.credentials.model import CredentialKind, CredentialState, KeyPurpose
from agent.credentials.pkcs11 import contents as rules
from agent.credentials.pkcs11.contents import CertObject, KeyObject, TokenContents, TokenRef
from agent.credentials.pkcs11.modules import merged, p11kit_modules, parse_module_file
from issuer.ca import CertificateAuthority
from tests.conftest import ANNA, BERTIL

DER = serialization.Encoding.DER
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
FLAGS = rules.TOKEN_INITIALIZED | rules.LOGIN_REQUIRED | rules.USER_PIN_INITIALIZED
REF = TokenRef("/usr/lib/softhsm/libsofthsm2.so", 7, "2cffe22bfdc29e87")


# -- modules ---------------------------------------------------------------------------------


def test_a_module_file_reads_like_p11kit() -> None:
    text = "# comment\nmodule: opensc-pkcs11.so\n\nCritical: yes\nbroken line\nmodule: x.so\n"
    assert parse_module_file(text) == {"module": "x.so", "critical": "yes"}


def test_p11kit_modules_follow_its_rules() -> None:
    files = [
        ("opensc-pkcs11.module", "module: opensc-pkcs11.so\n"),
        ("p11-kit-trust.module", "module: p11-kit-trust.so\ntrust-policy: yes\n"),
        ("softhsm2.module", "module: /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so\n"),
        ("gnome.module", "module: gkm.so\nenable-in: seahorse, gnome-keyring\n"),
        ("spy.module", "module: pkcs11-spy.so\ndisable-in: eid-agent\n"),
        ("mine.module", "module: mine.so\nenable-in: eid-agent\n"),
        ("README", "module: not-a-module-file.so\n"),
        ("softhsm2.module", "module: /opt/softhsm/libsofthsm2.so\n"),  # the person's wins
    ]
    found = p11kit_modules(files, Path("/usr/lib/x86_64-linux-gnu/pkcs11"))
    assert [(e.name, str(e.path)) for e in found] == [
        ("mine", "/usr/lib/x86_64-linux-gnu/pkcs11/mine.so"),
        ("opensc-pkcs11", "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so"),
        ("softhsm2", "/opt/softhsm/libsofthsm2.so"),
    ]


def test_p11kits_own_proxy_and_client_are_never_loaded() -> None:
    files = [
        ("proxy.module", "module: p11-kit-proxy.so\n"),
        ("client.module", "module: p11-kit-client.so\n"),
    ]
    assert p11kit_modules(files, Path("/lib")) == []


def test_a_configured_module_is_loaded_once(tmp_path: Path) -> None:
    real = tmp_path / "libreal.so"
    real.write_bytes(b"")
    (tmp_path / "link.so").symlink_to(real)
    found = p11kit_modules([("real.module", f"module: {real}\n")], tmp_path)
    both = merged(found, [str(tmp_path / "link.so"), "/opt/org/bank.so"])
    assert [(e.path.name, e.source) for e in both] == [
        ("libreal.so", "p11-kit"),
        ("bank.so", "config"),
    ]


# -- what counts as a BankID ----------------------------------------------------------------


@pytest.fixture(scope="module")
def issued() -> tuple[CertificateAuthority, dict[str, bytes]]:
    ca = CertificateAuthority.create("Token Test", NOW - dt.timedelta(days=10))
    ident, sign = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pair = ca.issue_pair(
        ANNA, ident.public_key(), sign.public_key(), NOW - dt.timedelta(days=1), kind="token"
    )
    old = ca.issue_pair(
        ANNA,
        ident.public_key(),
        sign.public_key(),
        NOW - dt.timedelta(days=9),
        kind="token",
        days=2,
    )
    other = ca.issue_pair(BERTIL, ident.public_key(), sign.public_key(), NOW, kind="token")
    return ca, {
        "ident": pair.identification.public_bytes(DER),
        "sign": pair.signature.public_bytes(DER),
        "old_ident": old.identification.public_bytes(DER),
        "old_sign": old.signature.public_bytes(DER),
        "bertil_sign": other.signature.public_bytes(DER),
        "issuing": ca.issuing_certificate.public_bytes(DER),
        "root": ca.root_certificate.public_bytes(DER),
    }


def _token(
    *certs: CertObject,
    keys: tuple[KeyObject, ...] | None = None,
    flags: int = FLAGS,
    manufacturer: str = "SoftHSM project",
) -> TokenContents:
    if keys is None:
        keys = tuple(KeyObject(c.id, "", private=False) for c in certs)
    return TokenContents(REF, "anna", manufacturer, "SoftHSM v2", flags, tuple(certs), keys)


def test_a_pair_with_its_keys_is_one_bankid(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    reading = rules.read(
        _token(
            CertObject(b"\x01", "identification", der["ident"]),
            CertObject(b"\x02", "signature", der["sign"]),
            CertObject(b"\xcc", "issuing CA", der["issuing"]),
            CertObject(b"\xcd", "root", der["root"]),
        )
    )
    (cred,) = reading.credentials
    assert cred.info.kind is CredentialKind.TOKEN and cred.info.owner.name == ANNA.name
    assert cred.info.issuer == "Token Test Issuing CA"
    assert cred.info.state(NOW) is CredentialState.USABLE
    assert cred.key_ids == {KeyPurpose.IDENTIFICATION: b"\x01", KeyPurpose.SIGNATURE: b"\x02"}
    # the issuing CA goes along (the verifier needs it), the root does not (its own anchor)
    assert cred.chains[KeyPurpose.IDENTIFICATION] == (der["ident"], der["issuing"])
    assert cred.chains[KeyPurpose.SIGNATURE] == (der["sign"], der["issuing"])
    assert reading.not_offered == ()


def test_a_lone_certificate_is_not_offered(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    reading = rules.read(_token(CertObject(b"\x01", "identification", der["ident"])))
    assert reading.credentials == ()
    assert reading.not_offered == (
        "certificate identification: no signature certificate of its holder",
    )
    reading = rules.read(_token(CertObject(b"\x02", "signature", der["sign"])))
    assert reading.not_offered == (
        "certificate signature: no identification certificate of its holder",
    )


def test_certificates_of_two_people_do_not_pair(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    reading = rules.read(
        _token(
            CertObject(b"\x01", "anna", der["ident"]),
            CertObject(b"\x02", "bertil", der["bertil_sign"]),
        )
    )
    assert reading.credentials == ()


def test_a_key_missing_from_the_token_is_said(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    certs = (
        CertObject(b"\x01", "identification", der["ident"]),
        CertObject(b"\x02", "signature", der["sign"]),
    )
    reading = rules.read(_token(*certs, keys=(KeyObject(b"\x01", "", private=True),)))
    assert reading.credentials == ()
    assert "certificate signature: its key is not on the token" in reading.not_offered
    # without a login requirement, public keys prove nothing: the private key must show
    reading = rules.read(_token(*certs, flags=rules.TOKEN_INITIALIZED))
    assert reading.credentials == ()


def test_an_expired_pair_is_listed_as_expired(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    (cred,) = rules.read(
        _token(
            CertObject(b"\x01", "i", der["old_ident"]), CertObject(b"\x02", "s", der["old_sign"])
        )
    ).credentials
    assert cred.info.state(NOW) is CredentialState.EXPIRED


def test_the_newer_signature_certificate_pairs(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    (cred,) = rules.read(
        _token(
            CertObject(b"\x01", "i", der["ident"]),
            CertObject(b"\x03", "old", der["old_sign"]),
            CertObject(b"\x02", "s", der["sign"]),
        )
    ).credentials
    assert cred.key_ids[KeyPurpose.SIGNATURE] == b"\x02"


def _cert(key: object, usage: x509.KeyUsage | None, ca: CertificateAuthority) -> bytes:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "198112189876"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Anna Andersson"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.issuing_certificate.subject)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=100))
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(ca.issuing_key, hashes.SHA256()).public_bytes(DER)


def _usage(**on: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    )
    return x509.KeyUsage(
        **{n: on.get(n, False) for n in names}, encipher_only=False, decipher_only=False
    )


def test_piv_slots_name_the_keys_when_the_usage_says_nothing(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    ca, _ = issued
    ident = _cert(ec.generate_private_key(ec.SECP256R1()), None, ca)
    sign = _cert(ec.generate_private_key(ec.SECP256R1()), None, ca)
    certs = (
        CertObject(b"\x01", "Certificate for PIV Authentication", ident),
        CertObject(b"\x02", "Certificate for Digital Signature", sign),
    )
    assert rules.read(_token(*certs)).credentials == ()  # not a PIV card: no slots
    (cred,) = rules.read(_token(*certs, manufacturer="piv_II")).credentials
    assert cred.key_ids == {KeyPurpose.IDENTIFICATION: b"\x01", KeyPurpose.SIGNATURE: b"\x02"}


def test_rsa_keys_of_2048_bits_are_a_bankid_shorter_ones_are_not(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    """PIV cards and security keys often hold RSA keys: such a pair is a BankID marked
    ``rsa`` (it signs BankID's XML, never a bridge order's ES256 signedData); a key
    under 2048 bits is not offered, and the log says why."""
    ca, _ = issued
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    reading = rules.read(
        _token(
            CertObject(b"\x01", "rsa", _cert(good, _usage(digital_signature=True), ca)),
            CertObject(b"\x02", "rsa2", _cert(good, _usage(content_commitment=True), ca)),
        )
    )
    (cred,) = reading.credentials
    assert cred.info.rsa and str(cred.info.owner.personal_number) == "198112189876"
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the one it refuses
    reading = rules.read(
        _token(
            CertObject(b"\x01", "short", _cert(short, _usage(digital_signature=True), ca)),
            CertObject(b"\x02", "short2", _cert(short, _usage(content_commitment=True), ca)),
        )
    )
    assert reading.credentials == ()
    assert (
        "certificate short: its key is neither ECDSA P-256 nor RSA of 2048 bits or more"
        in reading.not_offered
    )


def test_the_pin_flags() -> None:
    assert rules.pin_state(FLAGS) == rules.PinState(False, None)
    assert rules.pin_state(FLAGS | rules.USER_PIN_COUNT_LOW) == rules.PinState(False, None, True)
    assert rules.pin_state(FLAGS | rules.USER_PIN_FINAL_TRY).tries_left == 1
    assert rules.pin_state(FLAGS | rules.USER_PIN_LOCKED) == rules.PinState(True, 0)


def test_a_locked_pin_locks_the_listed_bankid(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    (cred,) = rules.read(
        _token(
            CertObject(b"\x01", "i", der["ident"]),
            CertObject(b"\x02", "s", der["sign"]),
            flags=FLAGS | rules.USER_PIN_LOCKED,
        )
    ).credentials
    assert cred.info.locked and cred.info.state(NOW) is CredentialState.LOCKED


def test_an_uninitialised_token_holds_nothing() -> None:
    assert rules.read(_token(flags=0)).not_offered == ("token not initialised",)


# -- hostile contents: reasons, never an exception ------------------------------------------

_ids = st.one_of(st.just(b""), st.just(b"\x01"), st.just(b"\x02"), st.binary(max_size=70))
_labels = st.one_of(st.text(max_size=20), st.just("\u202e" * 5000), st.just("x" * 100_000))


@st.composite
def _hostile(draw: st.DrawFn) -> TokenContents:
    ders = st.one_of(
        st.binary(max_size=200), st.just(b"\x30\x82\xff\xff" + b"\x00" * 50), st.just(b"0" * 20000)
    )
    certs = draw(st.lists(st.builds(CertObject, _ids, _labels, ders), max_size=6))
    keys = draw(st.lists(st.builds(KeyObject, _ids, _labels, st.booleans()), max_size=6))
    flags = draw(st.integers(min_value=0, max_value=2**64 - 1))
    manufacturer = draw(st.sampled_from(["piv_II", "SoftHSM project", "\x00" * 40]))
    return TokenContents(REF, draw(_labels), manufacturer, "m", flags, tuple(certs), tuple(keys))


@settings(max_examples=300, deadline=None)
@given(_hostile())
def test_hostile_token_contents_give_reasons_only(token: TokenContents) -> None:
    reading = rules.read(token)
    assert reading.credentials == ()
    assert all(isinstance(r, str) for r in reading.not_offered)


def test_hostile_objects_beside_a_real_pair_do_not_hide_it(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    _, der = issued
    junk = (
        CertObject(b"", "\u202e" * 64, b"\x30\x03\x02\x01"),
        CertObject(b"\x09" * 64, "x" * 64, der["ident"][:-10]),
        CertObject(b"\x01", "duplicate id", b"not a certificate"),
    )
    reading = rules.read(
        _token(CertObject(b"\x01", "i", der["ident"]), *junk, CertObject(b"\x02", "s", der["sign"]))
    )
    assert len(reading.credentials) == 1 and len(reading.not_offered) == 3


def test_a_piv_cards_empty_verify_gives_the_tries_left() -> None:
    from agent.credentials.pkcs11.pivtries import tries_from

    assert [tries_from(0x63C0 | n) for n in (3, 2, 1, 0)] == [3, 2, 1, 0]
    assert tries_from(0x6983) == 0  # blocked
    assert tries_from(0x9000) is None  # verified in this session: no count given
    assert tries_from(0x6A88) is None and tries_from(0x6D00) is None  # not a PIV answer


def test_placeholder_certificates_on_a_piv_card_are_never_a_bankid() -> None:
    from agent.enrol.token import placeholder

    certs = tuple(
        CertObject(
            slot,
            label,
            placeholder(ec.generate_private_key(ec.SECP256R1()).public_key(), NOW).public_bytes(
                DER
            ),
        )
        for slot, label in ((b"\x01", "PIV AUTH"), (b"\x02", "SIGN"))
    )
    reading = rules.read(_token(*certs, manufacturer="piv_II"))
    assert reading.credentials == ()
    assert "names no personal number" in reading.not_offered[0]


def test_issuing_cas_kept_from_orders(
    tmp_path: Path, issued: tuple[CertificateAuthority, dict[str, bytes]]
) -> None:
    from agent.credentials.pkcs11 import authorities

    ca, der = issued
    assert authorities.learned(tmp_path) == ()
    authorities.learn(tmp_path, [ca.issuing_certificate, ca.root_certificate])
    authorities.learn(tmp_path, [ca.issuing_certificate])  # again: kept once
    assert authorities.learned(tmp_path) == (der["issuing"],)  # the root is the verifier's
    assert (tmp_path / authorities.FILE).stat().st_mode & 0o777 == 0o600
    assert authorities.chain_authorities((b"configured",), tmp_path) == (
        b"configured",
        der["issuing"],
    )
    (tmp_path / authorities.FILE).write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage")
    assert authorities.learned(tmp_path) == ()  # a damaged file costs the chain, not the agent


def test_a_management_key_file_holds_48_hex_digits(tmp_path: Path) -> None:
    from agent.credentials.pkcs11.pivtool import AdminKeyUnreadable, read_admin_key

    key = tmp_path / "admin.key"
    key.write_text("01:02:03:04:05:06:07:08" * 3 + "\n")
    assert read_admin_key(key) == bytes([1, 2, 3, 4, 5, 6, 7, 8]) * 3
    for text in ("00" * 23, "00" * 25, "zz" * 24, "ä" * 48):
        key.write_text(text)
        with pytest.raises(AdminKeyUnreadable):
            read_admin_key(key)
    with pytest.raises(AdminKeyUnreadable):
        read_admin_key(tmp_path / "missing.key")


def test_certificates_for_other_keys_are_refused_from_an_issuer(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    """An issuer that answers a token order with certificates for keys the token did not
    make: nothing is written (the BankID could never sign for itself)."""
    from agent.enrol.errors import IssuerUnreachable
    from agent.enrol.token import _leaves

    ca, _ = issued
    ident, sign = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pair = ca.issue_pair(ANNA, ident.public_key(), sign.public_key(), NOW, kind="token")
    pem = serialization.Encoding.PEM
    answer = {
        "identification": pair.identification.public_bytes(pem).decode(),
        "signature": pair.signature.public_bytes(pem).decode(),
    }

    def point(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    made = {KeyPurpose.IDENTIFICATION: point(ident), KeyPurpose.SIGNATURE: point(sign)}
    assert set(_leaves(answer, made)) == set(KeyPurpose)
    swapped = {KeyPurpose.IDENTIFICATION: point(sign), KeyPurpose.SIGNATURE: point(ident)}
    with pytest.raises(IssuerUnreachable):
        _leaves(answer, swapped)
    with pytest.raises(IssuerUnreachable):
        _leaves({"identification": "garbage"}, made)


def test_only_the_authorities_above_the_leaves_are_kept_from_an_answer(
    issued: tuple[CertificateAuthority, dict[str, bytes]],
) -> None:
    from agent.enrol.token import _chain

    ca, _ = issued
    stranger = CertificateAuthority.create("Stranger", NOW - dt.timedelta(days=1))
    ident, sign = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pair = ca.issue_pair(ANNA, ident.public_key(), sign.public_key(), NOW, kind="token")
    pem = serialization.Encoding.PEM
    answer = {
        "chain": [
            c.public_bytes(pem).decode()
            for c in (stranger.issuing_certificate, ca.root_certificate, ca.issuing_certificate)
        ]
    }
    leaves = {KeyPurpose.IDENTIFICATION: pair.identification, KeyPurpose.SIGNATURE: pair.signature}
    assert _chain(answer, leaves) == [ca.issuing_certificate]  # no stranger, no root
