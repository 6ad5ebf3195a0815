"""The issuer's rules without processes: order outcomes, activation codes, retry-safe
issuing, the OCSP responder's answers to odd requests, the rp kit's checks of odd answers,
and the agent's proxy choice and config file."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

import rp
from agent.config import ConfigError, load_config
from agent.net import proxy_for
from eidcore.personal_number import PersonalNumber
from issuer import CertificateAuthority, Person
from issuer.db import open_database
from issuer.enrolment import (
    CODE_ALPHABET,
    MAX_TRIES,
    Answer,
    BadRequest,
    EnrolmentError,
    Enrolments,
    IssuedCertificates,
    OrderState,
    new_activation_code,
    normalise_code,
    start_outcome,
)
from issuer.ocsp import respond
from rp.revocation import check_revocation

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
PNR = PersonalNumber.parse("198112189876")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Rules", NOW - dt.timedelta(days=1))


@pytest.fixture
def enrolments(tmp_path: Path, ca: CertificateAuthority) -> Enrolments:
    return Enrolments(
        open_database(str(tmp_path / "i.db")), ca, b"k" * 32, ocsp_url="http://issuer.example/ocsp"
    )


def _csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


# -- rules ---------------------------------------------------------------------------------


@given(st.sampled_from(list(OrderState)), st.booleans(), st.booleans(), st.integers(0, 5))
def test_start_outcome_never_lets_a_wrong_code_through(
    state: OrderState, expired: bool, right: bool, tries: int
) -> None:
    new_state, new_tries, refusal = start_outcome(state, expired, right, tries)
    if not right:
        assert refusal is Answer.WRONG_CODE  # as for no order: guessing learns nothing
        assert new_state in (state, OrderState.BLOCKED)
        assert state is not OrderState.STARTED or new_state is OrderState.STARTED
    if refusal is None:
        assert right and not expired and state in (OrderState.PENDING, OrderState.STARTED)
        assert new_state is OrderState.STARTED
    if new_state is OrderState.BLOCKED and state is not OrderState.BLOCKED:
        assert new_tries >= MAX_TRIES
    if state is OrderState.BLOCKED and right:
        assert refusal is Answer.BLOCKED  # blocked stays blocked, even for the right code
    if state in (OrderState.PENDING, OrderState.STARTED) and tries >= MAX_TRIES and right:
        assert refusal is Answer.BLOCKED  # the guesses block a new start


def test_activation_codes_are_unbiased_and_forgiving() -> None:
    counter = itertools.count()
    code = new_activation_code(lambda n: bytes((next(counter) * 7) % 256 for _ in range(n)))
    assert len(code) == 14 and code.count("-") == 2
    assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
    assert normalise_code(code.lower().replace("-", " ")) == code.replace("-", "")
    assert normalise_code("oIl0-") == "0110"


def test_orders_end_to_end_in_process(enrolments: Enrolments) -> None:
    created = enrolments.create_order(PNR, "Anna Andersson", NOW)
    with pytest.raises(EnrolmentError) as wrong:
        enrolments.start(PNR, "0000-0000-0000", NOW)
    assert wrong.value.answer is Answer.WRONG_CODE
    order_id, secret = enrolments.start(PNR, created.activation_code, NOW)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    first = enrolments.issue(order_id, secret, _csr(keys[0]), _csr(keys[1]), NOW)
    again = enrolments.issue(order_id, secret, _csr(keys[0]), _csr(keys[1]), NOW)
    assert first.identification == again.identification  # the retry gets the same
    assert first.signature.public_key() == keys[1].public_key()
    with pytest.raises(EnrolmentError) as other_keys:
        enrolments.issue(order_id, secret, _csr(keys[1]), _csr(keys[0]), NOW)
    assert other_keys.value.answer is Answer.USED
    with pytest.raises(EnrolmentError) as bad_secret:
        enrolments.issue(order_id, "guess", _csr(keys[0]), _csr(keys[1]), NOW)
    assert bad_secret.value.answer is Answer.WRONG_CODE
    with pytest.raises(EnrolmentError) as used:
        enrolments.start(PNR, created.activation_code, NOW)
    assert used.value.answer is Answer.USED
    assert [c["purpose"] for c in enrolments.credentials(PNR)] == ["identification", "signature"]


def test_a_refused_start_leaves_the_enrolment_in_progress_alone(enrolments: Enrolments) -> None:
    """Someone else's wrong guess must not break the person's enrolment, and a start
    with a spent code must not stop an issued enrolment's retry from getting its
    certificates (the agent resumes with them after a crash)."""
    created = enrolments.create_order(PNR, "Anna Andersson", NOW)
    order_id, secret = enrolments.start(PNR, created.activation_code, NOW)
    with pytest.raises(EnrolmentError):
        enrolments.start(PNR, "0000-0000-0000", NOW)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    first = enrolments.issue(order_id, secret, _csr(keys[0]), _csr(keys[1]), NOW)
    with pytest.raises(EnrolmentError) as used:
        enrolments.start(PNR, created.activation_code, NOW)
    assert used.value.answer is Answer.USED
    again = enrolments.issue(order_id, secret, _csr(keys[0]), _csr(keys[1]), NOW)
    assert again.identification == first.identification


def test_a_new_order_cancels_the_open_one_and_csrs_are_checked(enrolments: Enrolments) -> None:
    old = enrolments.create_order(PNR, "Anna Andersson", NOW)
    new = enrolments.create_order(PNR, "Anna Andersson", NOW)
    with pytest.raises(EnrolmentError) as exc:
        enrolments.start(PNR, old.activation_code, NOW)
    assert exc.value.answer is Answer.WRONG_CODE  # the newest order is the one that counts
    order_id, secret = enrolments.start(PNR, new.activation_code, NOW)
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(BadRequest, match="must differ"):
        enrolments.issue(order_id, secret, _csr(key), _csr(key), NOW)
    with pytest.raises(BadRequest, match="P-256"):
        enrolments.issue(
            order_id, secret, _csr(ec.generate_private_key(ec.SECP384R1())), _csr(key), NOW
        )
    with pytest.raises(BadRequest, match="not a certificate request"):
        enrolments.issue(order_id, secret, b"garbage", _csr(key), NOW)
    later = NOW + dt.timedelta(minutes=16)
    with pytest.raises(EnrolmentError) as late:
        enrolments.issue(
            order_id, secret, _csr(key), _csr(ec.generate_private_key(ec.SECP256R1())), later
        )
    assert late.value.answer is Answer.EXPIRED


# -- OCSP ----------------------------------------------------------------------------------


def _enrolled(
    enrolments: Enrolments, name: str = "Anna Andersson"
) -> tuple[IssuedCertificates, ec.EllipticCurvePrivateKey]:
    """A whole enrolment (order, start, issue): the certificates and the identification
    key."""
    created = enrolments.create_order(PNR, name, NOW)
    order_id, secret = enrolments.start(PNR, created.activation_code, NOW)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    return enrolments.issue(order_id, secret, _csr(keys[0]), _csr(keys[1]), NOW), keys[0]


def _issued(enrolments: Enrolments) -> x509.Certificate:
    return _enrolled(enrolments)[0].signature


def _ask(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    enrolments: Enrolments,
    ca: CertificateAuthority,
) -> ocsp.OCSPResponse:
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()  # noqa: S303
    der = respond(request.public_bytes(serialization.Encoding.DER), enrolments.status, ca, NOW)
    return ocsp.load_der_ocsp_response(der)


def test_ocsp_answers_good_revoked_unknown_and_refuses_odd_requests(
    enrolments: Enrolments, ca: CertificateAuthority
) -> None:
    leaf = _issued(enrolments)
    answer = _ask(leaf, ca.issuing_certificate, enrolments, ca)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    enrolments.revoke_person(PNR, "keyCompromise", NOW)
    answer = _ask(leaf, ca.issuing_certificate, enrolments, ca)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.key_compromise
    other_ca = CertificateAuthority.create("Other", NOW - dt.timedelta(days=1))
    stranger = other_ca.issue_pair(
        Person.from_full_name(PNR, "A B"),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        NOW,
        kind="file",
    ).signature
    refused = _ask(stranger, other_ca.issuing_certificate, enrolments, ca)
    assert refused.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    malformed = ocsp.load_der_ocsp_response(respond(b"\x30\x03junk", enrolments.status, ca, NOW))
    assert malformed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # a certificate this CA never issued (same issuer, unknown serial)
    unknown = ca.issue_pair(
        Person.from_full_name(PNR, "A B"),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        NOW,
        kind="file",
    ).signature
    assert (
        _ask(unknown, ca.issuing_certificate, enrolments, ca).certificate_status
        is ocsp.OCSPCertStatus.UNKNOWN
    )


def test_rp_kit_refuses_odd_ocsp_answers(enrolments: Enrolments, ca: CertificateAuthority) -> None:
    leaf = _issued(enrolments)
    issuer = ca.issuing_certificate

    def via(fetch: Callable[[str, bytes, float], bytes]) -> rp.OcspPolicy:
        return rp.OcspPolicy(fetch=fetch, random_bytes=lambda n: b"n" * n)

    def honest(url: str, body: bytes, timeout: float) -> bytes:
        assert url == "http://issuer.example/ocsp" and timeout == 5.0
        return respond(body, enrolments.status, ca, NOW)

    check_revocation(leaf, issuer, via(honest), NOW)  # good
    forged_ca = CertificateAuthority.create("Forger", NOW - dt.timedelta(days=1))

    def forged(url: str, body: bytes, timeout: float) -> bytes:
        return respond(body, enrolments.status, forged_ca, NOW)  # signed by another key

    with pytest.raises(rp.RevocationUnknown):
        check_revocation(leaf, issuer, via(forged), NOW)
    recorded: list[bytes] = []

    def replay(url: str, body: bytes, timeout: float) -> bytes:
        if not recorded:
            builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256())
            other = builder.add_extension(x509.OCSPNonce(b"o" * 16), critical=False).build()
            recorded.append(
                respond(other.public_bytes(serialization.Encoding.DER), enrolments.status, ca, NOW)
            )
        return recorded[0]

    with pytest.raises(rp.RevocationUnknown, match="nonce"):
        check_revocation(leaf, issuer, via(replay), NOW)
    with pytest.raises(rp.RevocationUnknown, match="stale"):
        check_revocation(leaf, issuer, via(honest), NOW + dt.timedelta(hours=2))

    def down(url: str, body: bytes, timeout: float) -> bytes:
        raise OSError("connection refused")

    with pytest.raises(rp.RevocationUnknown, match="unreachable"):
        check_revocation(leaf, issuer, via(down), NOW)
    open_policy = rp.OcspPolicy(fetch=down, fail_closed=False)
    check_revocation(leaf, issuer, open_policy, NOW)  # fails open, with a warning
    enrolments.revoke_person(PNR, "superseded", NOW)
    with pytest.raises(rp.CertificateRevoked):
        check_revocation(leaf, issuer, open_policy.__class__(fetch=honest, fail_closed=False), NOW)


# -- the agent's proxy choice and config ----------------------------------------------------


def test_proxy_choice() -> None:
    env = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "localhost,.internal"}
    assert proxy_for("https://issuer.bank.se/x", None, env) == "http://proxy:3128"
    assert proxy_for("https://a.internal/x", None, env) is None
    assert proxy_for("https://localhost:8443/x", None, env) is None
    assert proxy_for("https://issuer.bank.se/x", "none", env) is None
    assert proxy_for("https://issuer.bank.se/x", "http://cfg:1", env) == "http://cfg:1"
    assert proxy_for("http://issuer.bank.se/x", None, env) is None  # no HTTP_PROXY set
    assert proxy_for("https://x.se/", None, {"https_proxy": "http://p:1", "no_proxy": "*"}) is None


def test_config_file(tmp_path: Path) -> None:
    assert load_config(tmp_path / "absent.toml").issuer_url is None
    good = tmp_path / "good.toml"
    good.write_text('[issuer]\nurl = "https://i.example"\n[network]\nproxy = "none"\n')
    config = load_config(good)
    assert (config.issuer_url, config.proxy) == ("https://i.example", "none")
    for text, message in (
        ('[issuer]\nurl = "ftp://x"\n', "http"),
        ("[issuer]\nurl = 3\n", "string"),
        ("not toml [", "bad.toml"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(bad)


async def test_nonce_less_ocsp_answers_are_reused_until_a_revocation(
    aiohttp_client: Any, enrolments: Enrolments, ca: CertificateAuthority
) -> None:
    from issuer.server import IssuerConfig, build_app

    leaf = _issued(enrolments)
    clock = [NOW]
    client = await aiohttp_client(
        build_app(enrolments, ca, IssuerConfig(backoffice_token="t", clock=lambda: clock[0]))
    )
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        leaf, ca.issuing_certificate, hashes.SHA256()
    )
    plain = builder.build().public_bytes(serialization.Encoding.DER)

    async def ask(der: bytes) -> bytes:
        reply = await client.post(
            "/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"}
        )
        assert reply.status == 200
        return bytes(await reply.read())

    first = await ask(plain)
    clock[0] = NOW + dt.timedelta(seconds=1)
    assert await ask(plain) == first  # the same signed answer, not a new signature
    with_nonce = builder.add_extension(x509.OCSPNonce(b"n" * 16), critical=False).build()
    nonce_der = with_nonce.public_bytes(serialization.Encoding.DER)
    one, two = await ask(nonce_der), await ask(nonce_der)
    # ECDSA signatures are randomised: two fresh answers to the same nonce differ
    assert one != two and ocsp.load_der_ocsp_response(one).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    reply = await client.post(
        f"/backoffice/v1/persons/{PNR}/revoke",
        json={"reason": "x"},
        headers={"Authorization": "Bearer t"},
    )
    assert reply.status == 200
    after = ocsp.load_der_ocsp_response(await ask(plain))
    assert after.certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_guesses_block_new_starts_but_never_the_enrolment_in_progress(
    enrolments: Enrolments,
) -> None:
    created = enrolments.create_order(PNR, "Anna Andersson", NOW)
    order_id, secret = enrolments.start(PNR, created.activation_code, NOW)
    for _ in range(MAX_TRIES + 2):  # someone who knows the number guesses
        with pytest.raises(EnrolmentError) as guess:
            enrolments.start(PNR, "0000-0000-0000", NOW)
        assert guess.value.answer is Answer.WRONG_CODE  # as for a number with no order
    with pytest.raises(EnrolmentError) as nobody:
        enrolments.start(PersonalNumber.parse("194910112384"), "0000-0000-0000", NOW)
    assert nobody.value.answer is Answer.WRONG_CODE
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    issued = enrolments.issue(order_id, secret, _csr(keys[0]), _csr(keys[1]), NOW)
    assert issued.identification.public_key() == keys[0].public_key()


def test_guesses_block_a_pending_order_and_only_the_right_code_hears_it(
    enrolments: Enrolments,
) -> None:
    created = enrolments.create_order(PNR, "Anna Andersson", NOW)
    for _ in range(MAX_TRIES):
        with pytest.raises(EnrolmentError) as guess:
            enrolments.start(PNR, "0000-0000-0000", NOW)
        assert guess.value.answer is Answer.WRONG_CODE
    with pytest.raises(EnrolmentError) as right:
        enrolments.start(PNR, created.activation_code, NOW)
    assert right.value.answer is Answer.BLOCKED


@pytest.mark.parametrize(
    "name",
    [
        "A" * 65,
        "Å" * 33,
        "Anna \u202eAndersson",
        "Anna\nAndersson",
        "\u3164",
        "Anna\u200bAndersson",
        "   ",
    ],
)
def test_a_name_no_certificate_or_dialog_takes_is_refused_at_the_order(
    enrolments: Enrolments, name: str
) -> None:
    with pytest.raises(BadRequest):
        enrolments.create_order(PNR, name, NOW)


def test_a_64_character_name_is_ordered_and_issued(enrolments: Enrolments) -> None:
    name = "Anna " + "Å" * 29 + "x"  # 64 bytes of UTF-8, the certificate's limit
    with pytest.raises(BadRequest):
        enrolments.create_order(PNR, name + "x", NOW)
    issued, _ = _enrolled(enrolments, name)
    assert name in issued.signature.subject.rfc4514_string()


@pytest.mark.parametrize("serial", [-5, 0])
def test_ocsp_for_a_serial_no_certificate_has_is_a_malformed_request(
    enrolments: Enrolments, ca: CertificateAuthority, serial: int
) -> None:
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            b"a" * 20,
            b"b" * 20,
            5,
            hashes.SHA1(),  # noqa: S303
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    assert request.count(b"\x02\x01\x05") == 1
    hostile = request.replace(b"\x02\x01\x05", b"\x02\x01" + serial.to_bytes(1, signed=True))
    answer = ocsp.load_der_ocsp_response(respond(hostile, enrolments.status, ca, NOW))
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_holder_revocation_with_a_time_without_zone_is_a_bad_request(
    enrolments: Enrolments,
) -> None:
    issued, key = _enrolled(enrolments)
    leaf = issued.identification
    for when in ("2026-11-22T12:00:00", "2026-11-22T12:00:00+00:00"):
        signed = json.dumps({"serial": f"{leaf.serial_number:x}", "time": when}).encode()
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        proof = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if when.endswith("+00:00"):
            assert len(enrolments.revoke_by_holder(leaf, proof, signed, NOW)) == 2
        else:
            with pytest.raises(BadRequest):
                enrolments.revoke_by_holder(leaf, proof, signed, NOW)
