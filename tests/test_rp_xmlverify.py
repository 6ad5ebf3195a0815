"""rp/xmlverify.py: a site verifies the XML signature — the chain to its own anchors, the
key usage of the order type, the kind, and everything signed against what it expects."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from eidcore import xmlsig
from eidcore.personal_number import PersonalNumber
from issuer import CertificateAuthority, Person
from rp.errors import (
    BadSignature,
    CertificateExpired,
    DataMismatch,
    MalformedResponse,
    UnknownNonce,
    UntrustedChain,
    VerificationError,
    WrongKeyUsage,
    WrongOrderType,
    WrongOrigin,
    WrongParty,
)
from rp.xmlverify import verify_xml_signature

NOW = dt.datetime.now(dt.UTC)
ORIGIN = "https://relay.example"
NONCE = bytes(range(32))
REF = "8b0e9c2e-1d2f-4b6a-9c1e-2f3a4b5c6d7e"
TEXT = "Betala 100 kr"


@pytest.fixture(scope="module")
def issued() -> dict[str, object]:
    ca = CertificateAuthority.create("Xml RP", NOW - dt.timedelta(days=1))
    identification, signature = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    person = Person.from_full_name(PersonalNumber.parse("198112189876"), "Anna Andersson")
    pair = ca.issue_pair(
        person, identification.public_key(), signature.public_key(), NOW, kind="card"
    )
    return {"ca": ca, "pair": pair, "keys": {"auth": identification, "sign": signature}}


def _document(issued: dict[str, object], kind: str = "sign", **changes: object) -> str:
    ca: CertificateAuthority = issued["ca"]  # type: ignore[assignment]
    pair = issued["pair"]
    leaf = pair.identification if kind == "auth" else pair.signature  # type: ignore[attr-defined]
    key: ec.EllipticCurvePrivateKey = issued["keys"][kind]  # type: ignore[index]
    content = xmlsig.SignedContent(
        func=xmlsig.FuncId.IDENTIFICATION if kind == "auth" else xmlsig.FuncId.SIGNING,
        visible=TEXT,
        visible_format="plaintext",
        non_visible=b"hash",
        party_id="shop",
        party_name="Butiken AB",
        origin=ORIGIN,
        nonce=NONCE,
        order_ref=REF,
        version="eid-agent 1.0.0",
    )
    content = dataclasses.replace(content, **changes)  # type: ignore[arg-type]
    chain = [c.public_bytes(serialization.Encoding.DER) for c in (leaf, ca.issuing_certificate)]
    unsigned = xmlsig.prepare(content, chain, xmlsig.Algorithm.ECDSA_SHA256)
    r, s = decode_dss_signature(key.sign(unsigned.signed_info, ec.ECDSA(hashes.SHA256())))
    return base64.b64encode(unsigned.finish(r.to_bytes(32, "big") + s.to_bytes(32, "big"))).decode()


def _verify(issued: dict[str, object], signature: str, **changes: object) -> object:
    ca: CertificateAuthority = issued["ca"]  # type: ignore[assignment]
    expected: dict[str, object] = {
        "order_type": "sign",
        "expected_origin": ORIGIN,
        "party": "shop",
        "nonce": NONCE,
        "order_ref": REF,
        "trust_anchors": [ca.root_certificate],
        "now": NOW,
        "user_visible_data": TEXT,
        "user_non_visible_data": b"hash",
    }
    return verify_xml_signature(signature, **{**expected, **changes})  # type: ignore[arg-type]


def test_a_signature_verifies_and_names_the_person(issued: dict[str, object]) -> None:
    verified = _verify(issued, _document(issued))
    assert verified.person.personal_number == "198112189876"  # type: ignore[attr-defined]
    assert verified.token_kind == "card" and verified.party == "shop"  # type: ignore[attr-defined]
    auth = _verify(issued, _document(issued, "auth"), order_type="auth")
    assert auth.type == "auth"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"order_type": "auth"}, WrongOrderType),
        ({"expected_origin": "https://other.example"}, WrongOrigin),
        ({"party": "bank"}, WrongParty),
        ({"nonce": bytes(32)}, UnknownNonce),
        ({"order_ref": "another"}, DataMismatch),
        ({"user_visible_data": "Betala 900 kr"}, DataMismatch),
        ({"user_non_visible_data": None}, DataMismatch),
        ({"trust_anchors": []}, UntrustedChain),
        ({"now": NOW + dt.timedelta(days=3 * 365)}, CertificateExpired),
    ],
)
def test_what_the_site_did_not_ask_for_is_refused(
    issued: dict[str, object], changes: dict[str, object], error: type[VerificationError]
) -> None:
    with pytest.raises(error):
        _verify(issued, _document(issued), **changes)


def test_an_identification_key_cannot_sign(issued: dict[str, object]) -> None:
    """The identification certificate's key made a document that claims Signing."""
    document = _document(issued, "auth", func=xmlsig.FuncId.SIGNING)
    with pytest.raises(WrongKeyUsage):
        _verify(issued, document)


def test_tampered_and_hostile_signatures(issued: dict[str, object]) -> None:
    raw = base64.b64decode(_document(issued))
    shown = base64.b64encode(TEXT.encode())
    tampered = raw.replace(shown, base64.b64encode(b"Betala 900 kr"))
    with pytest.raises(MalformedResponse, match="digest"):
        _verify(issued, base64.b64encode(tampered).decode())
    value = raw.split(b"<SignatureValue>")[1].split(b"<")[0]
    flipped = bytearray(base64.b64decode(value))
    flipped[0] ^= 1
    forged = raw.replace(value, base64.b64encode(bytes(flipped)))
    with pytest.raises(BadSignature):
        _verify(issued, base64.b64encode(forged).decode())
    for hostile in ("not base64!", base64.b64encode(b"<!DOCTYPE x><x/>").decode()):
        with pytest.raises(MalformedResponse):
            _verify(issued, hostile)


def _rsa_issued(bits: int) -> tuple[CertificateAuthority, rsa.RSAPrivateKey, bytes, bytes]:
    ca = CertificateAuthority.create("Xml RSA", NOW - dt.timedelta(days=1))
    identification, signature = (
        rsa.generate_private_key(public_exponent=65537, key_size=bits) for _ in range(2)
    )
    person = Person.from_full_name(PersonalNumber.parse("198112189876"), "Anna Andersson")
    pair = ca.issue_pair(
        person, identification.public_key(), signature.public_key(), NOW, kind="token"
    )
    der = serialization.Encoding.DER
    return (
        ca,
        identification,
        pair.identification.public_bytes(der),
        ca.issuing_certificate.public_bytes(der),
    )


@pytest.mark.parametrize("bits", [2048, 1024])
def test_an_rsa_key_signs_with_rsa_sha256_of_2048_bits_or_more(bits: int) -> None:
    """A security key's or PIV card's RSA key: the XML says RSA-SHA256 and verifies; a key
    under 2048 bits is refused however well it signs — here and in a phone order's proof."""
    from eidcore import phoneproof
    from rp import verify_possession

    ca, key, leaf, issuing = _rsa_issued(bits)
    content = xmlsig.SignedContent(
        func=xmlsig.FuncId.IDENTIFICATION,
        visible=TEXT,
        visible_format="plaintext",
        non_visible=None,
        party_id="shop",
        party_name="Butiken AB",
        origin=ORIGIN,
        nonce=NONCE,
        order_ref=REF,
        version="eid-agent 1.0.0",
    )
    unsigned = xmlsig.prepare(content, [leaf, issuing], xmlsig.Algorithm.RSA_SHA256)
    value = key.sign(unsigned.signed_info, padding.PKCS1v15(), hashes.SHA256())
    signature = base64.b64encode(unsigned.finish(value)).decode()
    proof = phoneproof.proof_bytes(ORIGIN, "challenge")
    proved = key.sign(proof, padding.PKCS1v15(), hashes.SHA256())

    def check() -> object:
        return _verify(
            {"ca": ca},
            signature,
            order_type="auth",
            user_non_visible_data=None,
        )

    def possession() -> object:
        return verify_possession(
            [leaf, issuing], proved, proof, trust_anchors=[ca.root_certificate], now=NOW
        )

    if bits >= 2048:
        assert check().token_kind == "token"  # type: ignore[attr-defined]
        assert possession().personal_number == "198112189876"  # type: ignore[attr-defined]
        with pytest.raises(BadSignature):  # the proof of another challenge
            verify_possession(
                [leaf, issuing], proved, proof + b"x", trust_anchors=[ca.root_certificate], now=NOW
            )
    else:
        with pytest.raises(VerificationError):
            check()
        with pytest.raises(BadSignature):
            possession()
