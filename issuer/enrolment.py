"""Orders for a BankID on file, from the bank's back office to the person's agent.

The rules are pure (``start_outcome``, activation codes); ``Enrolments`` is the driver over
the database and the CA. Order states::

    pending --right code--> started --CSRs--> issued
       |  \\--3 wrong codes--> blocked
       +--back office--> cancelled | failed          (also from started)
       expiry (default 15 min) ends pending/started: "took too long"

A wrong personal number and a wrong code get one answer, so nobody can learn which was
wrong; wrong tries count per order; the answer for a cancelled, failed or expired order is
given only to someone who knows its code. Activation codes are shown once and stored only
as an HMAC under a key kept beside the CA key (not in the database). Issuing is retry-safe:
the same enrolment submitting the same public keys again gets the same certificates.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from eidcore import strictjson
from eidcore.personal_number import PersonalNumber
from issuer.ca import CertificateAuthority, InvalidName, Person
from issuer.db import Database

__all__ = [
    "CODE_ALPHABET",
    "MAX_TRIES",
    "Answer",
    "EnrolmentError",
    "Enrolments",
    "IssuedCertificates",
    "OrderCreated",
    "OrderState",
    "new_activation_code",
    "normalise_code",
]

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
CODE_LENGTH = 12  # 60 bits, shown as XXXX-XXXX-XXXX
MAX_TRIES = 3
DEFAULT_ORDER_TTL = dt.timedelta(minutes=15)
CERTIFICATE_DAYS = 2 * 365


class OrderState(enum.StrEnum):
    PENDING = "pending"
    STARTED = "started"
    ISSUED = "issued"
    CANCELLED = "cancelled"
    FAILED = "failed"
    BLOCKED = "blocked"


OPEN = frozenset({OrderState.PENDING, OrderState.STARTED})


class Answer(enum.StrEnum):
    """What the agent is told; the wire's error codes."""

    WRONG_CODE = "wrongCodeOrNumber"  # one answer for a wrong number and a wrong code
    BLOCKED = "codeBlocked"
    EXPIRED = "orderExpired"
    CANCELLED = "orderCancelled"
    FAILED = "orderFailed"
    USED = "orderUsed"  # issued already; a new start cannot get the keys back


class EnrolmentError(Exception):
    def __init__(self, answer: Answer, detail: str = "") -> None:
        super().__init__(detail or answer.value)
        self.answer = answer


class BadRequest(ValueError):
    """The request itself is malformed (CSRs, codes); a 400, not an order outcome."""


def new_activation_code(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    raw = random_bytes(CODE_LENGTH)
    code = "".join(CODE_ALPHABET[b % 32] for b in raw)  # 256 % 32 == 0: no bias
    return "-".join(code[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(typed: str) -> str:
    """What a person may type: any case, spaces or dashes, O for 0, I or L for 1."""
    table = str.maketrans({"O": "0", "I": "1", "L": "1"})
    return "".join(c for c in typed.upper() if c not in " -\t").translate(table)


def _code_hash(key: bytes, personal_number: str, code: str) -> str:
    message = f"{personal_number}:{normalise_code(code)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def start_outcome(
    state: OrderState, expired: bool, code_right: bool, tries: int
) -> tuple[OrderState, int, Answer | None]:
    """The order's next state, its tries, and the refusal (None: the start goes ahead).

    Wrong guesses block new starts only. An enrolment the person already started stays
    STARTED, so its keys still get certificates however many guesses someone else makes
    (MAX_TRIES on its counter is what blocks the next start); a pending order becomes
    BLOCKED. A wrong code is always answered WRONG_CODE — as for a number with no order —
    so guessing never learns whether a number has an open order; BLOCKED is said only to
    whoever holds the right code."""
    blocked = state is OrderState.BLOCKED or (state in OPEN and tries >= MAX_TRIES)
    if not code_right:
        if state in OPEN and not expired and not blocked:
            tries += 1
            if tries >= MAX_TRIES and state is OrderState.PENDING:
                state = OrderState.BLOCKED
        return state, tries, Answer.WRONG_CODE
    if blocked:
        return state, tries, Answer.BLOCKED
    refusal = {
        OrderState.CANCELLED: Answer.CANCELLED,
        OrderState.FAILED: Answer.FAILED,
        OrderState.ISSUED: Answer.USED,
    }.get(state)
    if refusal is not None:
        return state, tries, refusal
    if expired:
        return state, tries, Answer.EXPIRED
    return OrderState.STARTED, tries, None


@dataclass(frozen=True)
class OrderCreated:
    order_id: str
    activation_code: str  # shown once, never stored
    expires_at: dt.datetime


@dataclass(frozen=True)
class IssuedCertificates:
    identification: x509.Certificate
    signature: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # sorts as text


def _parse(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _key_id(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


class Enrolments:
    """The issuer's orders and certificates over one database and one CA."""

    def __init__(
        self,
        db: Database,
        ca: CertificateAuthority,
        code_key: bytes,
        *,
        ocsp_url: str | None = None,
        order_ttl: dt.timedelta = DEFAULT_ORDER_TTL,
    ) -> None:
        self._db, self._ca, self._key = db, ca, code_key
        self._ocsp_url = ocsp_url
        self._ttl = order_ttl

    # -- the back office -------------------------------------------------------------------

    def create_order(
        self,
        personal_number: PersonalNumber,
        name: str,
        now: dt.datetime,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> OrderCreated:
        """A new order; an open order the person already had is cancelled by it."""
        try:  # refused here, not at every issuance after it (the certificate's limit)
            name = Person.from_full_name(personal_number, name).name
        except InvalidName as exc:
            raise BadRequest(f"name: {exc}") from None
        code = new_activation_code(random_bytes)
        order_id = str(uuid.UUID(bytes=random_bytes(16), version=4))
        expires = now + self._ttl
        with self._db.transaction() as tx:
            tx.run(
                "UPDATE orders SET state = ? WHERE personal_number = ? AND state IN (?, ?)",
                (OrderState.CANCELLED, str(personal_number), *sorted(OPEN)),
            )
            tx.run(
                "INSERT INTO orders (id, personal_number, name, code_hash, state, tries,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    order_id,
                    str(personal_number),
                    name.strip(),
                    _code_hash(self._key, str(personal_number), code),
                    OrderState.PENDING,
                    _iso(now),
                    _iso(expires),
                ),
            )
        return OrderCreated(order_id, code, expires)

    def end_order(self, order_id: str, state: OrderState) -> bool:
        """Cancel or fail an open order. False: no such open order."""
        assert state in (OrderState.CANCELLED, OrderState.FAILED)
        with self._db.transaction() as tx:
            return (
                tx.run(
                    "UPDATE orders SET state = ? WHERE id = ? AND state IN (?, ?)",
                    (state, order_id, *sorted(OPEN)),
                )
                == 1
            )

    def revoke_person(
        self,
        personal_number: PersonalNumber,
        reason: str,
        now: dt.datetime,
        *,
        serials: list[str] | None = None,
    ) -> list[str]:
        """Revoke the person's certificates (all, or those named); returns the serials."""
        with self._db.transaction() as tx:
            rows = tx.all(
                "SELECT serial FROM certificates WHERE personal_number = ?"
                " AND revoked_at IS NULL{lock}",
                (str(personal_number),),
            )
            chosen = [r[0] for r in rows if serials is None or r[0] in serials]
            for serial in chosen:
                tx.run(
                    "UPDATE certificates SET revoked_at = ?, reason = ? WHERE serial = ?",
                    (_iso(now), reason, serial),
                )
        return chosen

    def credentials(self, personal_number: PersonalNumber) -> list[dict[str, object]]:
        with self._db.read() as tx:
            rows = tx.all(
                "SELECT serial, purpose, not_before, not_after, revoked_at, reason, order_id"
                " FROM certificates WHERE personal_number = ? ORDER BY not_before, purpose",
                (str(personal_number),),
            )
        return [
            {
                "serial": r[0],
                "purpose": r[1],
                "notBefore": r[2],
                "notAfter": r[3],
                "revokedAt": r[4],
                "reason": r[5],
                "orderId": r[6],
            }
            for r in rows
        ]

    # -- the agent ---------------------------------------------------------------------------

    def start(
        self, personal_number: PersonalNumber, code: str, now: dt.datetime
    ) -> tuple[str, str]:
        """Check the number and code; returns (enrolment id, secret for the next call).

        Raises:
            EnrolmentError: with the answer the agent gets.
        """
        with self._db.transaction() as tx:
            row = tx.one(
                "SELECT id, code_hash, state, tries, expires_at FROM orders"
                " WHERE personal_number = ? ORDER BY created_at DESC LIMIT 1{lock}",
                (str(personal_number),),
            )
            if row is None:
                raise EnrolmentError(Answer.WRONG_CODE)
            order_id, stored, state, tries, expires_at = row
            right = hmac.compare_digest(stored, _code_hash(self._key, str(personal_number), code))
            new_state, tries, refusal = start_outcome(
                OrderState(state), now >= _parse(expires_at), right, int(tries)
            )
            secret = secrets.token_urlsafe(32)
            if refusal is None:  # a new start: only its secret may submit from now on
                tx.run(
                    "UPDATE orders SET state = ?, tries = ?, secret_hash = ? WHERE id = ?",
                    (new_state, tries, _hash(secret), order_id),
                )
            else:  # a refused start changes no one's enrolment: a wrong guess by someone
                # else cannot break the person's, nor a reused code an issued one's retry
                tx.run(
                    "UPDATE orders SET state = ?, tries = ? WHERE id = ?",
                    (new_state, tries, order_id),
                )
        if refusal is not None:
            raise EnrolmentError(refusal, f"order {order_id}: {refusal.value}")
        return order_id, secret

    def issue(
        self,
        order_id: str,
        secret: str,
        identification_csr: bytes,
        signature_csr: bytes,
        now: dt.datetime,
        *,
        kind: str = "file",
    ) -> IssuedCertificates:
        """Certificates for the two keys the agent made, for a BankID of ``kind`` (on file,
        or on a PKCS#11 token: the agent says which, and nothing here can check that keys
        it made are on a token). Retry-safe.

        Raises:
            BadRequest: the CSRs are not two valid P-256 requests for two different keys.
            EnrolmentError: unknown or wrong secret (WRONG_CODE), expired, ended.
        """
        keys = tuple(_csr_key(csr) for csr in (identification_csr, signature_csr))
        if keys[0] == keys[1]:
            raise BadRequest("the identification and signature keys must differ")
        key_ids = json.dumps([_key_id(k) for k in keys])
        with self._db.transaction() as tx:
            row = tx.one(
                "SELECT personal_number, name, state, expires_at, secret_hash, key_ids,"
                " identification_pem, signature_pem FROM orders WHERE id = ?{lock}",
                (order_id,),
            )
            if row is None or row[4] is None or not hmac.compare_digest(row[4], _hash(secret)):
                raise EnrolmentError(Answer.WRONG_CODE, "unknown enrolment or wrong secret")
            pnr, name, state, expires_at, _, stored_keys, id_pem, sign_pem = row
            if state == OrderState.ISSUED:
                if stored_keys != key_ids:
                    raise EnrolmentError(Answer.USED, "issued already, for other keys")
                return self._issued(id_pem, sign_pem)  # a retry after a lost answer
            if state != OrderState.STARTED:
                raise EnrolmentError(
                    {
                        OrderState.CANCELLED: Answer.CANCELLED,
                        OrderState.BLOCKED: Answer.BLOCKED,
                    }.get(OrderState(state), Answer.FAILED)
                )
            if now >= _parse(expires_at):
                raise EnrolmentError(Answer.EXPIRED)
            person = Person.from_full_name(PersonalNumber.parse(pnr), name)
            pair = self._ca.issue_pair(
                person,
                keys[0],
                keys[1],
                now,
                kind=kind,
                days=CERTIFICATE_DAYS,
                ocsp_url=self._ocsp_url,
            )
            pem = serialization.Encoding.PEM
            id_pem = pair.identification.public_bytes(pem).decode()
            sign_pem = pair.signature.public_bytes(pem).decode()
            tx.run(
                "UPDATE orders SET state = ?, key_ids = ?, identification_pem = ?,"
                " signature_pem = ? WHERE id = ?",
                (OrderState.ISSUED, key_ids, id_pem, sign_pem, order_id),
            )
            for purpose, cert, text in (
                ("identification", pair.identification, id_pem),
                ("signature", pair.signature, sign_pem),
            ):
                tx.run(
                    "INSERT INTO certificates (serial, order_id, personal_number, purpose,"
                    " not_before, not_after, pem) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        f"{cert.serial_number:x}",
                        order_id,
                        pnr,
                        purpose,
                        _iso(cert.not_valid_before_utc),
                        _iso(cert.not_valid_after_utc),
                        text,
                    ),
                )
        return self._issued(id_pem, sign_pem)

    def _issued(self, id_pem: str, sign_pem: str) -> IssuedCertificates:
        return IssuedCertificates(
            x509.load_pem_x509_certificate(id_pem.encode()),
            x509.load_pem_x509_certificate(sign_pem.encode()),
            self._ca.chain,
        )

    # -- revocation status -----------------------------------------------------------------

    @property
    def inline_reads(self) -> bool:
        """Whether a status lookup is quick enough to run on the event loop (a local
        SQLite file, never waiting on a lock in WAL mode) rather than in a thread."""
        return self._db.kind == "sqlite"

    def status(self, serial: int) -> tuple[str, dt.datetime | None, str | None]:
        """("good" | "revoked" | "unknown", revoked at, reason) for a serial this CA issued."""
        with self._db.read() as tx:
            row = tx.one(
                "SELECT revoked_at, reason FROM certificates WHERE serial = ?", (f"{serial:x}",)
            )
        if row is None:
            return "unknown", None, None
        if row[0] is None:
            return "good", None, None
        return "revoked", _parse(row[0]), row[1]

    def revoke_by_holder(
        self, certificate: x509.Certificate, proof: bytes, signed: bytes, now: dt.datetime
    ) -> list[str]:
        """The holder asks to revoke their own credential: ``proof`` is their
        identification key's raw r||s ES256 signature over ``signed`` (which names the
        serial and a time within five minutes). Revokes both certificates of that order.

        Raises:
            BadRequest: not our certificate, a bad proof, or a stale request.
        """
        try:
            certificate.verify_directly_issued_by(self._ca.issuing_certificate)
            key = certificate.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey) and len(proof) == 64
            der = encode_dss_signature(int.from_bytes(proof[:32]), int.from_bytes(proof[32:]))
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            claim = strictjson.loads(signed)
            when = dt.datetime.fromisoformat(claim["time"])
            if when.tzinfo is None:  # cannot be compared with now; a client's mistake
                raise ValueError("the time has no zone")
            if claim["serial"] != f"{certificate.serial_number:x}":
                raise ValueError("the request names another certificate")
        except Exception as exc:  # every way the proof can fail is the same answer
            raise BadRequest(f"revocation request refused: {type(exc).__name__}") from None
        if abs(now - when) > dt.timedelta(minutes=5):
            raise BadRequest("revocation request is stale")
        with self._db.transaction() as tx:
            row = tx.one(
                "SELECT order_id, personal_number FROM certificates WHERE serial = ?",
                (claim["serial"],),
            )
            if row is None:
                raise BadRequest("not a certificate this issuer knows")
            serials = [
                r[0]
                for r in tx.all(
                    "SELECT serial FROM certificates WHERE order_id = ? AND revoked_at IS NULL",
                    (row[0],),
                )
            ]
            for serial in serials:
                tx.run(
                    "UPDATE certificates SET revoked_at = ?, reason = ? WHERE serial = ?",
                    (_iso(now), "holderRequest", serial),
                )
        return serials


def _csr_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        csr = x509.load_pem_x509_csr(pem)
        if not csr.is_signature_valid:
            raise BadRequest("a CSR's signature does not verify")
        key = csr.public_key()
        for ext in csr.extensions:  # touch them: cryptography parses lazily
            _ = ext.value
    except BadRequest:
        raise
    except Exception as exc:
        raise BadRequest(f"not a certificate request: {type(exc).__name__}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BadRequest("keys must be EC P-256")
    return key
