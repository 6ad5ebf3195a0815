"""Ordering a BankID onto a PKCS#11 token: the same issuer protocol as a file order
(docs/issuer.md), with both keys made on the token (never outside it), the certificate
requests signed there, and the certificates written back beside their keys.

The request is built here as DER (``certification_request``): cryptography signs requests
only with a key object in memory, and the key is on the token. A built request is checked
with cryptography before it leaves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from agent.enrol.client import IssuerConnection
from agent.enrol.errors import IssuerUnreachable
from agent.tokens.card.errors import CardError
from agent.tokens.certificates import describe
from agent.tokens.model import CredentialInfo, KeyPurpose, TokenKind
from agent.tokens.pkcs11.contents import TokenContents
from agent.tokens.pkcs11.errors import CannotEnrolHere
from agent.tokens.pkcs11.watcher import TokenWatcher
from eidcore.personal_number import PersonalNumber

log = logging.getLogger(__name__)

ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")  # AlgorithmIdentifier, DER
PIV_IDS = {KeyPurpose.IDENTIFICATION: b"\x01", KeyPurpose.SIGNATURE: b"\x02"}  # 9A, 9C
LABELS = {KeyPurpose.IDENTIFICATION: "BankID identification",
          KeyPurpose.SIGNATURE: "BankID signature"}  # fmt: skip


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def certification_request(subject: x509.Name, point: bytes,
                          sign: Callable[[bytes], bytes]) -> bytes:  # fmt: skip
    """A PKCS#10 request (DER) for the P-256 public ``point``, signed by ``sign`` (raw r‖s
    over SHA-256 of the request info). Raises: ValueError (the signature does not verify
    with the key: the token signed with another key, or garbled it)."""
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    spki = public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    info = _der(0x30, b"\x02\x01\x00" + subject.public_bytes() + spki + b"\xa0\x00")
    raw = sign(hashlib.sha256(info).digest())
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                     int.from_bytes(raw[32:], "big"))  # fmt: skip
    request = _der(0x30, info + ECDSA_SHA256 + _der(0x03, b"\x00" + signature))
    if not x509.load_der_x509_csr(request).is_signature_valid:
        raise ValueError("the token's signature does not verify with its own key")
    return request


def key_ids(token: TokenContents, random_bytes: Callable[[int], bytes]) -> dict[KeyPurpose, bytes]:
    """Where the keys go: a PIV card's fixed slots (9A, 9C); elsewhere fresh ids, so a
    token's other keys are never overwritten."""
    if token.piv:
        return dict(PIV_IDS)
    return {p: random_bytes(8) for p in KeyPurpose}


async def order_on_token(
    issuer: IssuerConnection,
    tokens: TokenWatcher,
    token: TokenContents,
    personal_number: PersonalNumber,
    activation_code: str,
    pin: str,
    *,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> CredentialInfo:
    """Enrol with the activation code and put the BankID on ``token``. The code and the
    PIN are never logged.

    Raises:
        CannotEnrolHere: a PIV card through OpenSC (nothing sent, nothing spent).
        WrongPin, PinBlocked (checked first: the activation code is not spent),
        IssuerUnreachable, EnrolmentRefused: nothing was written to the token.
        CardError (WrongPin, PinBlocked, CardRemoved, TokenFault): from the token; keys
        made before the failure stay on it, unused.
    """
    ref = token.ref
    if token.piv:  # measured: OpenSC's PKCS#11 generates no keys on PIV cards (ADR 0015)
        raise CannotEnrolHere(token.label)
    # The PIN first: a wrong one must not cost the person their activation code.
    await asyncio.to_thread(tokens.check_pin, ref, pin)
    body = {"personalNumber": str(personal_number), "activationCode": activation_code}
    started = await issuer.post("/enrol/v1/enrolments", body)
    enrolment, secret = str(started["enrolmentId"]), str(started["secret"])
    ids = key_ids(token, random_bytes)
    subject = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(personal_number))])
    requests: dict[KeyPurpose, str] = {}
    for purpose in KeyPurpose:
        point = await asyncio.to_thread(
            tokens.generate_pair, ref, pin, ids[purpose], LABELS[purpose],
            always_authenticate=purpose is KeyPurpose.SIGNATURE,
        )  # fmt: skip

        def sign(digest: bytes, key: bytes = ids[purpose]) -> bytes:
            return tokens.sign_digest(ref, key, digest, pin)

        request = await asyncio.to_thread(certification_request, subject, point, sign)
        requests[purpose] = x509.load_der_x509_csr(request).public_bytes(
            serialization.Encoding.PEM).decode()  # fmt: skip
    log.info("enrolment %s: keys made on token %r", enrolment, token.label)
    issued = await issuer.post(
        f"/enrol/v1/enrolments/{enrolment}/certificates",
        {"identificationCsr": requests[KeyPurpose.IDENTIFICATION],
         "signatureCsr": requests[KeyPurpose.SIGNATURE]},
        secret=secret, retry=True,
    )  # fmt: skip
    try:
        leaves = {p: x509.load_pem_x509_certificate(str(issued[k]).encode())
                  for p, k in ((KeyPurpose.IDENTIFICATION, "identification"),
                               (KeyPurpose.SIGNATURE, "signature"))}  # fmt: skip
        chain = [x509.load_pem_x509_certificate(str(c).encode()) for c in issued["chain"]]
    except (KeyError, TypeError, ValueError):
        raise IssuerUnreachable("the issuer's certificates could not be read", None) from None
    der = serialization.Encoding.DER
    for purpose, cert in leaves.items():
        await asyncio.to_thread(
            tokens.write_certificate, ref, pin, ids[purpose], LABELS[purpose],
            cert.public_bytes(der), cert.subject.public_bytes(), cert.issuer.public_bytes(),
        )  # fmt: skip
    for authority in chain:
        if authority.issuer == authority.subject:
            continue  # a root is the verifier's own; only the issuing CA goes along
        try:
            await asyncio.to_thread(
                tokens.write_certificate, ref, pin, b"\xca" + random_bytes(7),
                "BankID issuing CA", authority.public_bytes(der),
                authority.subject.public_bytes(), authority.issuer.public_bytes(),
            )  # fmt: skip
        except CardError as exc:  # a PIV card has no place for it: the agent's config does
            log.info("issuing CA not written to token %r: %s", token.label, exc)
    info = describe(TokenKind.TOKEN, leaves[KeyPurpose.IDENTIFICATION].public_bytes(der),
                    leaves[KeyPurpose.SIGNATURE].public_bytes(der))  # fmt: skip
    log.info("enrolment %s: BankID %s on token %r", enrolment, info.id, token.label)
    return info
