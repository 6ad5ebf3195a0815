"""The XML signature (eidcore/xmlsig.py): what building and signing it costs the agent
beside a bare signature of the same bytes, and what parsing and verifying it costs a
verifier beside a well-known XMLDSig library verifying the same document (signxml, given
the signer's certificate, as our verifier is: the chain is checked apart in both)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bench.common import Figure, median_time
from eidcore import xmlsig
from eidcore.personal_number import PersonalNumber
from issuer import CertificateAuthority, Person

_CONTENT = xmlsig.SignedContent(
    func=xmlsig.FuncId.SIGNING,
    visible="Jag godkänner köpet av en cykel för 4 995 kr.\n\nOrdernummer 123-456",
    visible_format="plaintext",
    non_visible=bytes(32),
    party_id="shop",
    party_name="Butiken AB",
    origin="https://relay.example",
    nonce=bytes(range(32)),
    order_ref="131daac9-16c6-4618-beb0-365768f37288",
    version="eid-agent 1.0.0",
)


def run(ca: CertificateAuthority, now: dt.datetime, runs: int) -> list[Figure]:
    key = ec.generate_private_key(ec.SECP256R1())
    person = Person.from_full_name(PersonalNumber.parse("198112189876"), "Anna Andersson")
    pair = ca.issue_pair(person, key.public_key(), key.public_key(), now, kind="file")
    chain = [
        c.public_bytes(serialization.Encoding.DER) for c in (pair.signature, ca.issuing_certificate)
    ]

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def build() -> bytes:
        unsigned = xmlsig.prepare(_CONTENT, chain, xmlsig.Algorithm.ECDSA_SHA256)
        return unsigned.finish(sign(unsigned.signed_info))

    document = build()
    signed_info = xmlsig.parse(document).signed_info

    from signxml.verifier import XMLVerifier  # dev only: the baseline

    leaf = pair.signature

    def twenty(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(20):
                fn()

        return run

    def bare_verify() -> object:
        return XMLVerifier().verify(
            document, x509_cert=leaf, expect_references=2, id_attribute="Id"
        )

    def verify() -> None:
        xmlsig.verify_signature(xmlsig.parse(document))

    repeats = max(runs, 5)
    building = median_time(twenty(build), repeats) / 20
    bare_sign = median_time(twenty(lambda: sign(signed_info)), repeats) / 20
    verifying = median_time(twenty(verify), repeats) / 20
    bare = median_time(twenty(bare_verify), repeats) / 20
    return [
        Figure(
            name="build and sign the XML signature (agent)",
            unit="ms",
            median=building * 1000,
            baseline_name="a bare ECDSA P-256 signature of the same SignedInfo",
            baseline_median=bare_sign * 1000,
            target="≤ 1.5×",
            ok=building <= 1.5 * bare_sign,
            note=f"{len(document)} bytes of XML, a chain of two certificates",
        ),
        Figure(
            name="parse and verify the XML signature (relay, rp kit)",
            unit="ms",
            median=verifying * 1000,
            baseline_name="signxml verifying the same document with the signer's certificate",
            baseline_median=bare * 1000,
            target="≤ 1×",
            ok=verifying <= bare,
            note="the shape, both digests, the chain's certificates parsed, the signature",
        ),
    ]
