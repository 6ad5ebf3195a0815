"""The XML signature in BankID's shape (eidcore/xmlsig.py): what the agent builds, Debian's
``xmlsec1`` — a verifier nobody here wrote — verifies against the issuer's root; and what
an attacker changes (a byte, a wrapped reference, an entity, a DTD, a 100,000-deep
document) both refuse."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from eidcore import xmlsig
from eidcore.personal_number import PersonalNumber
from eidcore.xmlsig import Algorithm, FuncId, SignedContent, XmlRefused
from issuer.ca import CertificateAuthority, Person
from tests.xml_kit import xmlsec1

CONTENT = SignedContent(
    func=FuncId.SIGNING,
    visible="Betala 100 kr till Åsa & Co <AB>",
    visible_format="simpleMarkdownV1",
    non_visible=b"\x00\x01hash",
    party_id="shop",
    party_name="Butiken AB",
    origin="https://relay.example",
    nonce=bytes(range(32)),
    order_ref="131daac9-16c6-4618-beb0-365768f37288",
    version="eid-agent 1.2.0",
)


def _signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    def sign(data: bytes) -> bytes:  # r‖s, as a credential returns it
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.create("Xml", now - dt.timedelta(days=1))
    key = ec.generate_private_key(ec.SECP256R1())
    person = Person.from_full_name(PersonalNumber.parse("198112189876"), "Anna Andersson")
    pair = ca.issue_pair(person, key.public_key(), key.public_key(), now, kind="file")
    folder = tmp_path_factory.mktemp("xmlsig")
    root = folder / "root.pem"
    root.write_bytes(ca.root_certificate.public_bytes(serialization.Encoding.PEM))
    chain = [
        c.public_bytes(serialization.Encoding.DER) for c in (pair.signature, ca.issuing_certificate)
    ]
    return {"key": key, "chain": chain, "root": root, "folder": folder, "ca": ca}


def _signed(world: dict[str, object], content: SignedContent = CONTENT) -> bytes:
    unsigned = xmlsig.prepare(content, world["chain"], Algorithm.ECDSA_SHA256)  # type: ignore[arg-type]
    return unsigned.finish(_signer(world["key"])(unsigned.signed_info))  # type: ignore[arg-type]


def _xmlsec1(world: dict[str, object], document: bytes) -> subprocess.CompletedProcess[str]:
    ca = world["ca"]
    assert isinstance(ca, CertificateAuthority)
    return xmlsec1(document, ca.root_certificate, Path(str(world["folder"])))


def _signxml(world: dict[str, object], document: bytes) -> list[bytes]:
    """signxml's verification with the chain checked to the root; person certificates
    carry no subjectAltName, which cryptography's client policy asks for, so the end
    entity's extensions are left to our own checks (rp's). Returns what it says was
    signed."""
    from cryptography.x509.verification import ExtensionPolicy
    from signxml.verifier import XMLVerifier

    results = XMLVerifier().verify(
        document,
        ca_pem_file=str(world["root"]),
        expect_references=2,
        id_attribute="Id",
        ee_policy=ExtensionPolicy.permit_all(),
    )
    assert isinstance(results, list)  # expect_references=2: one result per reference
    return [etree.tostring(r.signed_xml) for r in results if r.signed_xml is not None]


def test_xmlsec1_signxml_and_we_verify_what_the_agent_builds(world: dict[str, object]) -> None:
    document = _signed(world)
    checked = _xmlsec1(world, document)
    assert checked.returncode == 0 and "OK" in checked.stderr, checked.stderr
    signed = _signxml(world, document)
    assert b"bankIdSignedData" in signed[0] and b"X509Data" in signed[1]
    parsed = xmlsig.parse(document)
    xmlsig.verify_signature(parsed)
    assert parsed.content == CONTENT
    assert [c.public_bytes(serialization.Encoding.DER) for c in parsed.chain] == world["chain"]


def test_an_identification_without_text_and_an_rsa_key(world: dict[str, object]) -> None:
    bare = dataclasses.replace(
        CONTENT,
        func=FuncId.IDENTIFICATION,
        visible=None,
        visible_format="plaintext",
        non_visible=None,
    )
    parsed = xmlsig.parse(_signed(world, bare))
    xmlsig.verify_signature(parsed)
    assert parsed.content == bare
    # a token's RSA key: the same document, RSA-SHA256 (the chain's leaf is the RSA one)
    ca: CertificateAuthority = world["ca"]  # type: ignore[assignment]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography import x509

    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "RSA holder")]))
        .issuer_name(ca.issuing_certificate.subject)
        .public_key(rsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .sign(ca.issuing_key, hashes.SHA256())
    )
    chain = [leaf.public_bytes(serialization.Encoding.DER), world["chain"][1]]  # type: ignore[index]
    unsigned = xmlsig.prepare(CONTENT, chain, Algorithm.RSA_SHA256)
    document = unsigned.finish(
        rsa_key.sign(unsigned.signed_info, padding.PKCS1v15(), hashes.SHA256())
    )
    xmlsig.verify_signature(xmlsig.parse(document))
    assert _xmlsec1(world, document).returncode == 0


def _both_refuse(world: dict[str, object], document: bytes, reason: str) -> None:
    """xmlsec1, signxml and we refuse."""
    from signxml.exceptions import InvalidInput, InvalidSignature

    assert _xmlsec1(world, document).returncode != 0
    with pytest.raises((InvalidSignature, InvalidInput, etree.XMLSyntaxError)):
        _signxml(world, document)
    with pytest.raises(XmlRefused, match=reason):
        xmlsig.verify_signature(xmlsig.parse(document))


def test_one_byte_changed_is_refused(world: dict[str, object]) -> None:
    document = _signed(world)
    shown = base64.b64encode(CONTENT.visible.encode())  # type: ignore[union-attr]
    changed = document.replace(shown, base64.b64encode("Betala 900 kr till Åsa & Co <AB>".encode()))
    _both_refuse(world, changed, "digest of bidSignedData")
    # in the signature value itself
    value = re.search(rb"<SignatureValue>([^<]+)<", document).group(1)  # type: ignore[union-attr]
    raw = bytearray(base64.b64decode(value))
    raw[5] ^= 1
    _both_refuse(world, document.replace(value, base64.b64encode(bytes(raw))), "does not verify")


def test_a_wrapped_reference_is_refused(world: dict[str, object]) -> None:
    """The signed bankIdSignedData moved aside and another, unsigned, put where a naive
    verifier looks: a second element carries the Id, or the signed one is renamed."""
    document = _signed(world)
    evil = (
        b'<bankIdSignedData xmlns="http://www.bankid.com/signature/v1.0.0/types" '
        b'Id="bidSignedData"><srvInfo/></bankIdSignedData>'
    )
    wrapped = document.replace(b"<Object>", b"<Object>" + evil, 1)
    with pytest.raises(XmlRefused, match="Id"):
        xmlsig.parse(wrapped)
    assert _xmlsec1(world, wrapped).returncode != 0
    second = document.replace(b"</Signature>", b"<Object>" + evil + b"</Object></Signature>")
    with pytest.raises(XmlRefused):
        xmlsig.parse(second)


@pytest.mark.parametrize(
    "hostile",
    [
        b'<?xml version="1.0"?><!DOCTYPE Signature [<!ENTITY x "y">]><Signature/>',
        b'<!DOCTYPE Signature SYSTEM "http://127.0.0.1:9/evil.dtd"><Signature/>',
        b"<Signature>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Signature>",
        b"<Signature>&amp;&lt;&#x202e;</Signature>",
        b"<Signature><!-- a comment --></Signature>",
        b"<?xml-stylesheet href='x'?><Signature/>",
        b"\xff\xfe<",
        '<!DOCTYPE Signature [<!ENTITY e "x">]><Signature>&e;</Signature>'.encode("utf-16"),
        b'<?xml version="1.0" encoding="ISO-8859-1"?><Signature/>',
        b"x" * (xmlsig.MAX_XML_BYTES + 1),
    ],
)
def test_hostile_documents_are_refused_without_reading_further(hostile: bytes) -> None:
    with pytest.raises(XmlRefused):
        xmlsig.parse(hostile)


def test_entities_inside_the_real_document_are_refused(world: dict[str, object]) -> None:
    """Any DTD is refused here, even one whose entities leave the signed bytes as they
    were (xmlsec1 expands those first and accepts: nothing signed changed); entities that
    change what was signed, both refuse."""
    document = _signed(world)
    with pytest.raises(XmlRefused, match="DTD"):
        xmlsig.parse(b'<!DOCTYPE Signature [<!ENTITY e "x">]>' + document)
    billion = (
        b'<!DOCTYPE Signature [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        + document.replace(b"<SignedInfo>", b"<SignedInfo>&b;", 1)
    )
    _both_refuse(world, billion, "DTD")


def test_a_method_that_does_not_fit_the_key_is_refused(world: dict[str, object]) -> None:
    document = _signed(world).replace(
        Algorithm.ECDSA_SHA256.value.encode(), Algorithm.RSA_SHA256.value.encode()
    )
    with pytest.raises(XmlRefused, match="does not fit"):
        xmlsig.verify_signature(xmlsig.parse(document))


_TEXT = st.text(max_size=200)  # any text: the document carries it in base64


@settings(max_examples=60, deadline=None)
@given(
    visible=st.none() | _TEXT,
    non_visible=st.none() | st.binary(max_size=300),
    party=_TEXT,
    name=_TEXT,
    nonce=st.binary(min_size=1, max_size=64),
    func=st.sampled_from(FuncId),
    markdown=st.booleans(),
)
def test_any_content_round_trips_and_canonicalises_as_lxml_does(
    world: dict[str, object],
    visible: str | None,
    non_visible: bytes | None,
    party: str,
    name: str,
    nonce: bytes,
    func: FuncId,
    markdown: bool,
) -> None:
    content = dataclasses.replace(
        CONTENT,
        visible=visible,
        visible_format="simpleMarkdownV1" if markdown and visible is not None else "plaintext",
        non_visible=non_visible,
        party_id=party,
        party_name=name,
        nonce=nonce,
        func=func,
    )
    unsigned = xmlsig.prepare(content, world["chain"], Algorithm.ECDSA_SHA256)  # type: ignore[arg-type]
    document = unsigned.finish(_signer(world["key"])(unsigned.signed_info))  # type: ignore[arg-type]
    parsed = xmlsig.parse(document)
    assert parsed.signed_info == unsigned.signed_info  # what we wrote is what lxml computes
    xmlsig.verify_signature(parsed)
    assert parsed.content == content


def test_a_chain_is_named_by_its_certificates_and_their_bounds() -> None:
    """The name the agent and the relay give a chain: the same certificates in the same
    order, the same name; moved bytes between them (the lengths are in it), another."""
    a, b = b"\x30\x03abc", b"\x30\x02de"
    assert xmlsig.chain_digest([a, b]) == xmlsig.chain_digest((a, b))
    assert xmlsig.chain_digest([a, b]) != xmlsig.chain_digest([b, a])
    assert xmlsig.chain_digest([a, b]) != xmlsig.chain_digest([a + b])
    assert xmlsig.chain_digest([a[:-1], a[-1:] + b]) != xmlsig.chain_digest([a, b])
    assert len(xmlsig.chain_digest([a])) == 43
