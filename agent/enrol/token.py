"""Ordering a BankID onto a PKCS#11 token: the same issuer protocol as a file order
(docs/issuer.md), with both keys made on the token (never outside it), the certificate
requests signed there, and the certificates written back beside their keys.

The request is built here as DER (``certification_request``): cryptography signs requests
only with a key object in memory, and the key is on the token. A built request is checked
with cryptography before it leaves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from agent.credentials import CredentialInfo, CredentialKind, KeyPurpose, describe
from agent.credentials.card import CardError, PinFormat, WrongPin
from agent.credentials.pkcs11 import CannotEnrolHere, TokenContents, TokenWatcher, pivtool
from agent.enrol.client import IssuerConnection, asked_again
from agent.enrol.errors import IssuerUnreachable
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber

if TYPE_CHECKING:
    from agent.notices import Notice
    from agent.ui import EnrolmentAnswer

log = logging.getLogger(__name__)

ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")  # AlgorithmIdentifier, DER
PIV_IDS = {KeyPurpose.IDENTIFICATION: b"\x01", KeyPurpose.SIGNATURE: b"\x02"}  # 9A, 9C
LABELS = {
    KeyPurpose.IDENTIFICATION: "BankID identification",
    KeyPurpose.SIGNATURE: "BankID signature",
}


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def certification_request(
    subject: x509.Name, point: bytes, sign: Callable[[bytes], bytes]
) -> bytes:
    """A PKCS#10 request (DER) for the P-256 public ``point``, signed by ``sign`` (raw r‖s
    over SHA-256 of the request info). Raises: ValueError (the signature does not verify
    with the key: the token signed with another key, or garbled it)."""
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = _der(0x30, b"\x02\x01\x00" + subject.public_bytes() + spki + b"\xa0\x00")
    raw = sign(hashlib.sha256(info).digest())
    signature = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
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


async def enrol_on_token(
    issuer: IssuerConnection,
    tokens: TokenWatcher,
    token: TokenContents,
    personal_number: PersonalNumber,
    activation_code: str,
    pin: str,
    *,
    keep_authorities: Callable[[list[x509.Certificate]], None] | None = None,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> CredentialInfo:
    """Enrol with the activation code and put the BankID on ``token``. The code and the
    PIN are never logged.

    Raises:
        CannotEnrolHere: a PIV card (``enrol_on_piv`` puts a BankID on one).
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
    points: dict[KeyPurpose, bytes] = {}
    for purpose in KeyPurpose:
        point = points[purpose] = await asyncio.to_thread(
            tokens.generate_pair,
            ref,
            pin,
            ids[purpose],
            LABELS[purpose],
            always_authenticate=purpose is KeyPurpose.SIGNATURE,
        )

        def sign(digest: bytes, key: bytes = ids[purpose]) -> bytes:
            return tokens.sign_digest(ref, key, digest, pin)

        request = await asyncio.to_thread(certification_request, subject, point, sign)
        requests[purpose] = (
            x509.load_der_x509_csr(request).public_bytes(serialization.Encoding.PEM).decode()
        )
    log.info("enrolment %s: keys made on token %r", enrolment, token.label)
    issued = await issuer.post(
        f"/enrol/v1/enrolments/{enrolment}/certificates",
        {
            "identificationCsr": requests[KeyPurpose.IDENTIFICATION],
            "signatureCsr": requests[KeyPurpose.SIGNATURE],
            "kind": "token",
        },
        secret=secret,
        retry=True,
    )
    leaves = _leaves(issued, points)
    chain = _chain(issued, leaves)
    der = serialization.Encoding.DER
    for purpose, cert in leaves.items():
        await asyncio.to_thread(
            tokens.write_certificate,
            ref,
            pin,
            ids[purpose],
            LABELS[purpose],
            cert.public_bytes(der),
            cert.subject.public_bytes(),
            cert.issuer.public_bytes(),
        )
    for authority in chain:
        if authority.issuer == authority.subject:
            continue  # a root is the verifier's own; only the issuing CA goes along
        try:
            await asyncio.to_thread(
                tokens.write_certificate,
                ref,
                pin,
                b"\xca" + random_bytes(7),
                "BankID issuing CA",
                authority.public_bytes(der),
                authority.subject.public_bytes(),
                authority.issuer.public_bytes(),
            )
        except CardError as exc:  # no room for it: the agent keeps it (authorities.py)
            log.info("issuing CA not written to token %r: %s", token.label, exc)
            if keep_authorities is not None:
                await asyncio.to_thread(keep_authorities, [authority])
    info = describe(
        CredentialKind.TOKEN,
        leaves[KeyPurpose.IDENTIFICATION].public_bytes(der),
        leaves[KeyPurpose.SIGNATURE].public_bytes(der),
    )
    log.info("enrolment %s: BankID %s on token %r", enrolment, info.id, token.label)
    return info


# -- a PIV card: keys made by the card itself, through OpenSC's piv-tool ---------------------

PIV_SLOTS = {KeyPurpose.IDENTIFICATION: 0x9A, KeyPurpose.SIGNATURE: 0x9C}


def placeholder(public: ec.EllipticCurvePublicKey, now: dt.datetime) -> x509.Certificate:
    """A certificate that only carries a new key's public half: OpenSC's PIV driver shows a
    slot's private key only beside a certificate, and the request for the real one must be
    signed with that key. Signed by a throwaway key and naming no person, it is never
    taken for a BankID (``contents.py``); the issued certificate replaces it."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "key awaiting its certificate")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


async def enrol_on_piv(
    issuer: IssuerConnection,
    tokens: TokenWatcher,
    card: TokenContents,
    personal_number: PersonalNumber,
    activation_code: str,
    pin: str,
    admin_key: bytes,
    *,
    keep_authorities: Callable[[list[x509.Certificate]], None],
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> CredentialInfo:
    """Enrol with the activation code and put the BankID on the PIV ``card``: its keys made
    in 9A and 9C by the card (``pivtool``, with the management key ``admin_key``), the
    requests signed there through OpenSC, the certificates loaded after. piv-tool shares the
    card with the loaded module (PC/SC transactions); the module is loaded afresh before it
    signs, so it reads the card as piv-tool left it. The issuing CA, which a PIV card has
    no place for, goes to ``keep_authorities`` (``authorities.py``).

    Raises:
        CannotEnrolHere: piv-tool is not installed. ManagementKeyRefused, WrongPin,
        PinBlocked (checked first: the activation code is not spent).
        IssuerUnreachable, EnrolmentRefused: nothing was made on the card.
        CardError (CardRemoved, TokenFault): from the card; a BankID that was on it is
        gone once its keys were made anew.
    """
    if not pivtool.available():
        raise CannotEnrolHere(card.label)

    await asyncio.to_thread(tokens.check_pin, card.ref, pin)
    await asyncio.to_thread(pivtool.authenticate, card.reader, admin_key, card.label)
    body = {"personalNumber": str(personal_number), "activationCode": activation_code}
    started = await issuer.post("/enrol/v1/enrolments", body)
    enrolment, secret = str(started["enrolmentId"]), str(started["secret"])
    points: dict[KeyPurpose, bytes] = {}
    for purpose, slot in PIV_SLOTS.items():
        public = await asyncio.to_thread(pivtool.generate, card.reader, slot, admin_key)
        await asyncio.to_thread(
            pivtool.load_certificate, card.reader, slot, placeholder(public, clock()), admin_key
        )
        points[purpose] = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    log.info("enrolment %s: keys made on PIV card %r", enrolment, card.label)
    subject = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(personal_number))])

    def requests() -> dict[KeyPurpose, str]:
        tokens.reload(card.ref)
        made = {}
        for purpose, point in points.items():

            def sign(digest: bytes, key: bytes = PIV_IDS[purpose]) -> bytes:
                return tokens.sign_digest(card.ref, key, digest, pin)

            request = certification_request(subject, point, sign)
            made[purpose] = (
                x509.load_der_x509_csr(request).public_bytes(serialization.Encoding.PEM).decode()
            )
        return made

    csrs = await asyncio.to_thread(requests)
    issued = await issuer.post(
        f"/enrol/v1/enrolments/{enrolment}/certificates",
        {
            "identificationCsr": csrs[KeyPurpose.IDENTIFICATION],
            "signatureCsr": csrs[KeyPurpose.SIGNATURE],
            "kind": "token",
        },
        secret=secret,
        retry=True,
    )
    leaves = _leaves(issued, points)
    chain = _chain(issued, leaves)
    for purpose, slot in PIV_SLOTS.items():
        await asyncio.to_thread(
            pivtool.load_certificate, card.reader, slot, leaves[purpose], admin_key
        )
    await asyncio.to_thread(tokens.reload, card.ref)  # the agent lists the new BankID
    await asyncio.to_thread(keep_authorities, chain)
    der = serialization.Encoding.DER
    info = describe(
        CredentialKind.TOKEN,
        leaves[KeyPurpose.IDENTIFICATION].public_bytes(der),
        leaves[KeyPurpose.SIGNATURE].public_bytes(der),
    )
    log.info("enrolment %s: BankID %s on PIV card %r", enrolment, info.id, card.label)
    return info


def _leaves(
    issued: dict[str, Any], points: dict[KeyPurpose, bytes]
) -> dict[KeyPurpose, x509.Certificate]:
    """The issued certificates, each checked to hold the public key the token made: an
    issuer that answers with others would leave a BankID that cannot sign for itself."""
    try:
        leaves = {
            p: x509.load_pem_x509_certificate(str(issued[k]).encode())
            for p, k in (
                (KeyPurpose.IDENTIFICATION, "identification"),
                (KeyPurpose.SIGNATURE, "signature"),
            )
        }
        held = {p: _point(c.public_key()) for p, c in leaves.items()}
    except (KeyError, TypeError, ValueError):
        raise IssuerUnreachable("the issuer's certificates could not be read", None) from None
    if held != points:
        raise IssuerUnreachable("the issuer's certificates are not for the token's keys", None)
    return leaves


def _chain(
    issued: dict[str, Any], leaves: dict[KeyPurpose, x509.Certificate]
) -> list[x509.Certificate]:
    """The authorities above the leaves, from the issuer's answer: only those on the path
    from a leaf up (by name), never a root — what else an answer holds is not kept."""
    try:
        given = [x509.load_pem_x509_certificate(str(c).encode()) for c in issued["chain"]]
    except (KeyError, TypeError, ValueError):
        raise IssuerUnreachable("the issuer's certificates could not be read", None) from None
    path: list[x509.Certificate] = []
    for leaf in leaves.values():
        current = leaf
        for _ in range(4):
            parent = next((c for c in given if c.subject == current.issuer), None)
            if parent is None or parent.issuer == parent.subject:
                break
            if parent not in path:
                path.append(parent)
            current = parent
    return path


def _point(key: object) -> bytes | None:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# -- the desktop's wizard ------------------------------------------------------------------


class TokenOrderUi(Protocol):
    async def ask_token_enrolment(
        self, label: str, problem: Notice | None, *, replaces: bool
    ) -> EnrolmentAnswer | None: ...
    async def tell(self, notice: Notice) -> None: ...


async def enrol_token_with_ui(
    ui: TokenOrderUi,
    issuer: IssuerConnection,
    tokens: TokenWatcher,
    token: TokenContents,
    data_dir: Path,
    *,
    attempts: int = 3,
) -> CredentialInfo | None:
    """The order onto ``token`` through the desktop (the tray's "Order BankID on the
    security key …"): asks again after a mistyped number, a wrong PIN or a wrong code;
    any other failure ends on its catalogue message. None: cancelled or failed."""
    from agent.credentials.pkcs11 import learn

    def keep(chain: list[x509.Certificate]) -> None:
        learn(data_dir, chain)

    async def ask(problem: Notice | None) -> EnrolmentAnswer | None:
        return await ui.ask_token_enrolment(token.label, problem, replaces=token.piv)

    async def order(answer: EnrolmentAnswer) -> CredentialInfo:
        number = PersonalNumber.parse(answer.personal_number)
        if token.piv:  # the factory management key: another one is the console's
            return await enrol_on_piv(
                issuer,
                tokens,
                token,
                number,
                answer.activation_code,
                answer.password,
                pivtool.DEFAULT_ADMIN_KEY,
                keep_authorities=keep,
            )
        return await enrol_on_token(
            issuer,
            tokens,
            token,
            number,
            answer.activation_code,
            answer.password,
            keep_authorities=keep,
        )

    return await asked_again(
        ask,
        order,
        ui.tell,
        attempts=attempts,
        retry=(InvalidPersonalNumber, WrongPin, PinFormat),
        fatal=(IssuerUnreachable, CardError),
    )
