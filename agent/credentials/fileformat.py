"""The BankID-on-file format, version 1 (specified in docs/credential-file-format.md).

Bytes in, bytes out: no file system, no clock. Randomness (salt, nonce) is an input.

Invariants the parser enforces, so that everything behind it can rely on them:
- the file is at most MAX_FILE_BYTES of UTF-8 JSON with exactly the known fields;
- the KDF parameters lie within bounds (a hostile file cannot make us allocate gigabytes
  or spin for minutes, nor ask for a trivially weak derivation);
- both certificate chains parse, both leaves name the same person by a valid personal
  number, and carry the key usage their purpose needs;
- the lock state is normalised (a counter at the limit is locked).
Decryption additionally checks each private key against its certificate.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
import json
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.x509.oid import NameOID

from agent.credentials.errors import CredentialDamaged, PasswordTooWeak, UnsupportedVersion
from agent.credentials.lockout import LockState
from agent.credentials.model import CredentialInfo, CredentialKind, KeyPurpose, Owner
from eidcore import strictjson
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber

FORMAT_NAME = "eid-agent/file-token"
FORMAT_VERSION = 1
FILE_SUFFIX = ".eidtoken"

MAX_FILE_BYTES = 256 * 1024  # a real file is ~4 KiB; the cap bounds what a hostile one costs
MAX_CHAIN_LENGTH = 4
MIN_PASSWORD_LENGTH = 8  # NIST SP 800-63B's floor for memorised secrets


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters. Defaults measured in ./dev bench: ~220 ms on a 2-core machine
    (target 150–400 ms): 128 MiB is twice RFC 9106's second recommended memory, and
    memory, not passes, is what makes guessing on GPUs expensive."""

    memory_kib: int = 128 * 1024
    iterations: int = 2
    lanes: int = 4

    # Bounds the parser accepts. The lower ones stop a file from asking for a derivation
    # too weak to mean anything; the upper ones stop a hostile file from exhausting the
    # machine when someone merely tries a password on it.
    MIN_MEMORY_KIB = 19 * 1024  # RFC 9106 / OWASP minimum for Argon2id
    MAX_MEMORY_KIB = 1024 * 1024
    MAX_ITERATIONS = 20
    MAX_LANES = 16

    def check(self) -> None:
        """Raises: CredentialDamaged."""
        if not (self.MIN_MEMORY_KIB <= self.memory_kib <= self.MAX_MEMORY_KIB):
            raise CredentialDamaged("kdf memory out of bounds")
        if not (1 <= self.iterations <= self.MAX_ITERATIONS):
            raise CredentialDamaged("kdf iterations out of bounds")
        if not (1 <= self.lanes <= self.MAX_LANES) or self.memory_kib < 8 * self.lanes:
            raise CredentialDamaged("kdf lanes out of bounds")


DEFAULT_KDF = KdfParams()


class WrongSecret(Exception):
    """The password did not open the file (indistinguishable from tampering, by design)."""


@dataclass(frozen=True)
class CredentialFile:
    """A parsed credential file. ``chains[p]`` is DER, leaf first."""

    development: bool
    created: str
    chains: Mapping[KeyPurpose, tuple[bytes, ...]]
    kdf: KdfParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    lock: LockState

    @property
    def id(self) -> str:
        """Stable across export/import and password changes: the identification
        certificate's SHA-256, shortened (64 bits make a collision among one person's
        credentials negligible)."""
        return hashlib.sha256(self.chains[KeyPurpose.IDENTIFICATION][0]).hexdigest()[:16]

    def with_lock(self, lock: LockState) -> CredentialFile:
        return replace(self, lock=lock)

    @functools.cached_property
    def certificates(self) -> Mapping[bytes, x509.Certificate]:
        """Each distinct certificate parsed once (the two chains share their CAs)."""
        return {der: x509.load_der_x509_certificate(der) for c in self.chains.values() for der in c}

    def leaf(self, purpose: KeyPurpose) -> x509.Certificate:
        return self.certificates[self.chains[purpose][0]]

    def info(self) -> CredentialInfo:
        leaves = {p: self.leaf(p) for p in self.chains}
        ident = leaves[KeyPurpose.IDENTIFICATION]
        return CredentialInfo(
            id=self.id,
            kind=CredentialKind.FILE,
            owner=_owner(ident),
            issuer=_common_name(ident.issuer) or ident.issuer.rfc4514_string(),
            not_before=max(c.not_valid_before_utc for c in leaves.values()),
            not_after=min(c.not_valid_after_utc for c in leaves.values()),
            locked=self.lock.locked,
            development=self.development,
            purposes=frozenset(KeyPurpose),
            tries_left=self.lock.tries_left,
        )

    def open(self, password: str) -> dict[KeyPurpose, ec.EllipticCurvePrivateKey]:
        """Decrypt both keys.

        Raises:
            WrongSecret: wrong password (or the protected part was altered).
            CredentialDamaged: it decrypted, but the content is not what we wrote.
        """
        key = _derive(password, self.salt, self.kdf)
        try:
            plaintext = AESGCM(key).decrypt(self.nonce, self.ciphertext, _aad(self))
        except InvalidTag:
            raise WrongSecret from None
        try:
            blob = strictjson.loads(plaintext)
            keys: dict[KeyPurpose, ec.EllipticCurvePrivateKey] = {}
            for purpose in KeyPurpose:
                loaded = serialization.load_der_private_key(_b64(blob[purpose.value]), None)
                if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                    raise CredentialDamaged("private key is not an EC key")
                keys[purpose] = loaded
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialDamaged(
                f"encrypted content unreadable ({type(exc).__name__})"
            ) from None
        for purpose, private in keys.items():
            if self.leaf(purpose).public_key() != private.public_key():
                raise CredentialDamaged(f"{purpose} key does not match its certificate")
        return keys


def check_new_password(password: str) -> None:
    """Raises: PasswordTooWeak."""
    if len(_normalise(password)) < MIN_PASSWORD_LENGTH:
        raise PasswordTooWeak(MIN_PASSWORD_LENGTH)


def seal(
    *,
    chains: Mapping[KeyPurpose, tuple[bytes, ...]],
    keys: Mapping[KeyPurpose, ec.EllipticCurvePrivateKey],
    password: str,
    development: bool,
    created: str,
    random_bytes: Callable[[int], bytes],
    kdf: KdfParams = DEFAULT_KDF,
) -> CredentialFile:
    """A new file token holding ``keys`` under ``password`` with a fresh salt and nonce.

    Raises:
        PasswordTooWeak: the password is too short.
        RuntimeError: a key does not match its certificate (a bug in the caller).
    """
    check_new_password(password)
    kdf.check()
    for purpose in KeyPurpose:
        cert = x509.load_der_x509_certificate(chains[purpose][0])
        if cert.public_key() != keys[purpose].public_key():
            raise RuntimeError(f"{purpose} key does not match its certificate")
    token = CredentialFile(
        development=development,
        created=created,
        chains={p: tuple(chains[p]) for p in KeyPurpose},
        kdf=kdf,
        salt=random_bytes(16),
        nonce=random_bytes(12),
        ciphertext=b"",
        lock=LockState(),
    )
    plaintext = json.dumps(
        {
            p.value: _b64e(
                keys[p].private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            for p in KeyPurpose
        }
    ).encode()
    ciphertext = AESGCM(_derive(password, token.salt, kdf)).encrypt(
        token.nonce, plaintext, _aad(token)
    )
    return replace(token, ciphertext=ciphertext)


def seal_blob(
    payload: bytes,
    password: str,
    *,
    purpose: str,
    random_bytes: Callable[[int], bytes],
    kdf: KdfParams = DEFAULT_KDF,
) -> bytes:
    """``payload`` encrypted under ``password`` as a credential's keys are (Argon2id,
    AES-256-GCM), for what must wait on disk for a moment under the same protection — an
    enrolment's keys until its certificates arrive. ``purpose`` is bound in, so a blob
    made for one use cannot be passed off as another."""
    kdf.check()
    salt, nonce = random_bytes(16), random_bytes(12)
    header: dict[str, Any] = {
        "format": purpose,
        "kdf": _kdf_document(kdf, salt),
        "cipher": _cipher_document(nonce),
    }
    sealed = AESGCM(_derive(password, salt, kdf)).encrypt(nonce, payload, _blob_aad(header))
    return json.dumps({**header, "ciphertext": _b64e(sealed)}).encode()


def open_blob(data: bytes, password: str, *, purpose: str) -> bytes:
    """What ``seal_blob`` sealed.

    Raises:
        WrongSecret: not this password (or tampered with).
        CredentialDamaged: not such a blob, or bounds a hostile file could abuse.
    """
    try:
        doc = strictjson.loads(data[: MAX_FILE_BYTES + 1])
        if not isinstance(doc, dict) or doc.get("format") != purpose:
            raise CredentialDamaged("not this kind of file")
        kdf_doc, cipher_doc = doc["kdf"], doc["cipher"]
        kdf = _kdf_params(kdf_doc)
        header = {"format": purpose, "kdf": kdf_doc, "cipher": cipher_doc}
        salt, nonce, sealed = (
            _b64(kdf_doc["salt"]),
            _b64(cipher_doc["nonce"]),
            _b64(doc["ciphertext"]),
        )
    except CredentialDamaged:
        raise
    except (
        UnicodeDecodeError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
    ) as exc:
        raise CredentialDamaged(f"malformed ({type(exc).__name__})") from None
    if len(salt) < 16 or len(nonce) != 12:
        raise CredentialDamaged("salt or nonce has the wrong length")
    try:
        return AESGCM(_derive(password, salt, kdf)).decrypt(nonce, sealed, _blob_aad(header))
    except InvalidTag:
        raise WrongSecret() from None


def _blob_aad(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def dumps(token: CredentialFile) -> bytes:
    document = _public_part(token) | {
        "ciphertext": _b64e(token.ciphertext),
        "lock": {"failedAttempts": token.lock.failed_attempts, "locked": token.lock.locked},
    }
    document["checksum"] = _checksum(document)
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _checksum(document: Mapping[str, Any]) -> str:
    # Detects accidental damage (disk, sync tools, editors) without the password, so a
    # damaged file is reported as damaged and never costs the person a password try.
    # Deliberate edits are stopped by the AEAD binding, not by this.
    fields = {k: v for k, v in document.items() if k != "checksum"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def loads(data: bytes) -> CredentialFile:
    """Parse and validate a credential file.

    Raises:
        UnsupportedVersion: a later format version (readable after an update).
        CredentialDamaged: anything else that is not a valid version-1 file.
    """
    if len(data) > MAX_FILE_BYTES:
        raise CredentialDamaged("file too large")
    try:
        doc = strictjson.loads(data)
    except strictjson.JsonRefused as exc:
        raise CredentialDamaged(exc.reason) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise CredentialDamaged("not an eid-agent credential")
    version = doc.get("version")
    if type(version) is not int or version != FORMAT_VERSION:  # True == 1 in Python
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise UnsupportedVersion(version)
        raise CredentialDamaged("bad version")
    try:
        return _from_document(doc)
    except CredentialDamaged:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CredentialDamaged(f"malformed field ({type(exc).__name__})") from None


_TOP_FIELDS = {
    "format",
    "version",
    "development",
    "created",
    "certificates",
    "kdf",
    "cipher",
    "ciphertext",
    "lock",
    "checksum",
}


def _from_document(doc: dict[str, Any]) -> CredentialFile:
    if set(doc) != _TOP_FIELDS:
        raise CredentialDamaged("unexpected or missing fields")
    if not hmac.compare_digest(str(doc["checksum"]), _checksum(doc)):
        raise CredentialDamaged("checksum mismatch")
    kdf_doc, cipher_doc, lock_doc = doc["kdf"], doc["cipher"], doc["lock"]
    if kdf_doc.get("algorithm") != "argon2id" or cipher_doc.get("algorithm") != "aes-256-gcm":
        raise CredentialDamaged("unknown algorithm")
    kdf = _kdf_params(kdf_doc)
    salt, nonce = _b64(kdf_doc["salt"]), _b64(cipher_doc["nonce"])
    if len(salt) < 16 or len(nonce) != 12:
        raise CredentialDamaged("salt or nonce has the wrong length")
    chains: dict[KeyPurpose, tuple[bytes, ...]] = {}
    certs_doc = doc["certificates"]
    if set(certs_doc) != {p.value for p in KeyPurpose}:
        raise CredentialDamaged("certificate purposes")
    for purpose in KeyPurpose:
        chain = certs_doc[purpose.value]
        if not isinstance(chain, list) or not 1 <= len(chain) <= MAX_CHAIN_LENGTH:
            raise CredentialDamaged("certificate chain length")
        chains[purpose] = tuple(_b64(c) for c in chain)
    failed, locked = lock_doc["failedAttempts"], lock_doc["locked"]
    if not isinstance(locked, bool) or _int(failed) < 0:
        raise CredentialDamaged("lock state")
    if not isinstance(doc["development"], bool) or not isinstance(doc["created"], str):
        raise CredentialDamaged("header fields")
    token = CredentialFile(
        development=doc["development"],
        created=doc["created"],
        chains=chains,
        kdf=kdf,
        salt=salt,
        nonce=nonce,
        ciphertext=_b64(doc["ciphertext"]),
        lock=LockState.normalised(failed, locked),
    )
    _check_certificates(token)
    return token


# Everything cryptography's x509 parser raises on hostile bytes (ExtensionNotFound aside).
_X509_ERRORS = (
    ValueError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
    x509.AttributeNotFound,
)


def _check_certificates(token: CredentialFile) -> None:
    # cryptography parses certificate fields lazily: a damaged key or extension surfaces
    # only when touched, and as UnsupportedAlgorithm as well as ValueError. Touch every
    # field we will ever read, here, once, so nothing later meets a surprise.
    try:
        for cert in token.certificates.values():
            cert.public_key()
            _ = (cert.subject, cert.issuer, cert.extensions)
            _ = (cert.not_valid_before_utc, cert.not_valid_after_utc)
        leaves = {p: token.leaf(p) for p in token.chains}
        owners = {p: _owner(cert) for p, cert in leaves.items()}
        usages = {
            p: cert.extensions.get_extension_for_class(x509.KeyUsage).value
            for p, cert in leaves.items()
        }
        token.info()
    except x509.ExtensionNotFound:
        raise CredentialDamaged("certificate without key usage") from None
    except _X509_ERRORS:
        raise CredentialDamaged("certificate does not parse") from None
    if (
        owners[KeyPurpose.IDENTIFICATION].personal_number
        != owners[KeyPurpose.SIGNATURE].personal_number
    ):
        raise CredentialDamaged("the two certificates name different people")
    for purpose, cert in leaves.items():
        if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
            raise CredentialDamaged("certificate key is not EC")
        usage = usages[purpose]
        needed = (
            usage.digital_signature
            if purpose is KeyPurpose.IDENTIFICATION
            else usage.content_commitment
        )
        if not needed:
            raise CredentialDamaged(f"{purpose} certificate lacks its key usage")


def _owner(cert: x509.Certificate) -> Owner:
    subject = cert.subject
    serial = _attr(subject, NameOID.SERIAL_NUMBER)
    try:
        pnr = PersonalNumber.parse(serial or "")
    except InvalidPersonalNumber:
        raise CredentialDamaged("certificate subject has no valid personal number") from None
    given = _attr(subject, NameOID.GIVEN_NAME) or ""
    surname = _attr(subject, NameOID.SURNAME) or ""
    if not given and not surname:
        given = _common_name(subject) or ""
    return Owner(personal_number=pnr, given_name=given, surname=surname)


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _common_name(name: x509.Name) -> str | None:
    return _attr(name, NameOID.COMMON_NAME)


def _public_part(token: CredentialFile) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "development": token.development,
        "created": token.created,
        "certificates": {p.value: [_b64e(c) for c in token.chains[p]] for p in KeyPurpose},
        "kdf": _kdf_document(token.kdf, token.salt),
        "cipher": _cipher_document(token.nonce),
    }


def _kdf_document(kdf: KdfParams, salt: bytes) -> dict[str, Any]:
    return {
        "algorithm": "argon2id",
        "salt": _b64e(salt),
        "memoryKiB": kdf.memory_kib,
        "iterations": kdf.iterations,
        "lanes": kdf.lanes,
    }


def _cipher_document(nonce: bytes) -> dict[str, Any]:
    return {"algorithm": "aes-256-gcm", "nonce": _b64e(nonce)}


def _kdf_params(kdf_doc: Mapping[str, Any]) -> KdfParams:
    """Raises: CredentialDamaged (out of bounds), KeyError, TypeError."""
    kdf = KdfParams(
        memory_kib=_int(kdf_doc["memoryKiB"]),
        iterations=_int(kdf_doc["iterations"]),
        lanes=_int(kdf_doc["lanes"]),
    )
    kdf.check()
    return kdf


def _aad(token: CredentialFile) -> bytes:
    # Binding the public part as associated data means nobody can swap in other
    # certificates or weaker KDF parameters without the password failing to open it.
    return json.dumps(_public_part(token), sort_keys=True, separators=(",", ":")).encode()


def _normalise(password: str) -> str:
    # NFC so that "å" typed as one code point or as a + ring opens the same file on every OS.
    return unicodedata.normalize("NFC", password)


def _derive(password: str, salt: bytes, kdf: KdfParams) -> bytes:
    return Argon2id(
        salt=salt,
        length=32,
        iterations=kdf.iterations,
        lanes=kdf.lanes,
        memory_cost=kdf.memory_kib,
    ).derive(_normalise(password).encode("utf-8"))


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CredentialDamaged("expected an integer")
    return value


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise CredentialDamaged("expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CredentialDamaged("bad base64") from None


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 as fixed-width r‖s (the form cards return and JOSE uses)."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def utc_timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
