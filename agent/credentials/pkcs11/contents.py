"""What counts as a BankID on a PKCS#11 token, and what its PIN flags say. Pure: the token's
objects come in as plain values (read by ``lib``), the credentials and the reasons go out.

A BankID is a pair of certificates of one holder from one issuer, each with its key on the
token: identification (digitalSignature without nonRepudiation) and signature
(nonRepudiation). A PIV card through OpenSC names its keys by slot instead, so where the key
usage says nothing, 9A (PKCS#11 id 01) is identification and 9C (id 02) signature. The keys
are ECDSA P-256 or RSA (2048 bits or more). Anything else on a token — other people's
certificates, other keys, a lone certificate — is not offered, and the reason goes to the
debug log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.credentials.certificates import describe, owner_of
from agent.credentials.model import CredentialInfo, CredentialKind, KeyPurpose, Owner
from eidcore import xmlsig

# PKCS#11 token flags (CK_TOKEN_INFO.flags), as the standard numbers them
LOGIN_REQUIRED = 0x4
USER_PIN_INITIALIZED = 0x8
PROTECTED_AUTHENTICATION_PATH = 0x100
TOKEN_INITIALIZED = 0x400
USER_PIN_COUNT_LOW = 0x10000
USER_PIN_FINAL_TRY = 0x20000
USER_PIN_LOCKED = 0x40000
SO_PIN_COUNT_LOW = 0x100000
SO_PIN_FINAL_TRY = 0x200000
SO_PIN_LOCKED = 0x400000

PIV_SLOTS = {b"\x01": KeyPurpose.IDENTIFICATION, b"\x02": KeyPurpose.SIGNATURE}  # 9A, 9C
MAX_CHAIN = 4  # certificates above a leaf that are looked for on the token


@dataclass(frozen=True)
class CertObject:
    id: bytes
    label: str
    der: bytes


@dataclass(frozen=True)
class KeyObject:
    id: bytes
    label: str
    private: bool  # a private key object; else the public key of a pair


@dataclass(frozen=True)
class TokenRef:
    """Where a token is: its module, its slot, and the serial that proves it is the same."""

    module: str
    slot: int
    serial: str


@dataclass(frozen=True)
class TokenContents:
    ref: TokenRef
    label: str
    manufacturer: str
    model: str
    flags: int
    certificates: tuple[CertObject, ...] = ()
    keys: tuple[KeyObject, ...] = ()
    reader: str = ""  # the slot's description: a card reader's name for OpenSC

    @property
    def piv(self) -> bool:
        # OpenSC's PIV driver names its tokens' manufacturer so
        return self.manufacturer.startswith("piv_II")


@dataclass(frozen=True)
class TokenCredential:
    token: TokenRef
    info: CredentialInfo
    chains: Mapping[KeyPurpose, tuple[bytes, ...]]
    key_ids: Mapping[KeyPurpose, bytes]


@dataclass(frozen=True)
class Reading:
    credentials: tuple[TokenCredential, ...]
    not_offered: tuple[str, ...] = field(default=())  # why, for the debug log


@dataclass(frozen=True)
class PinState:
    locked: bool
    tries_left: int | None  # None: the token does not say (most say only "low")
    low: bool = False


def pin_state(flags: int) -> PinState:
    """The user PIN's state from the token's flags. Exact counts are not in PKCS#11: a
    token says "count low", "final try" or "locked" (OpenSC's PIV driver never "low")."""
    if flags & USER_PIN_LOCKED:
        return PinState(True, 0)
    if flags & USER_PIN_FINAL_TRY:
        return PinState(False, 1, low=True)
    return PinState(False, None, low=bool(flags & USER_PIN_COUNT_LOW))


def so_pin_locked(flags: int) -> bool:
    return bool(flags & SO_PIN_LOCKED)


def _purpose(cert: x509.Certificate, cert_id: bytes, piv: bool) -> KeyPurpose | None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and usage.content_commitment:
        return KeyPurpose.SIGNATURE
    if usage is not None and usage.digital_signature:
        return KeyPurpose.IDENTIFICATION
    return PIV_SLOTS.get(cert_id) if piv else None


def _usable_key(cert: x509.Certificate) -> bool:
    """ECDSA P-256, or RSA of at least MIN_RSA_BITS (PIV cards and security keys often
    hold RSA keys; they sign BankID's XML with RSA-SHA256)."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size >= xmlsig.MIN_RSA_BITS
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _chain(
    leaf_der: bytes, leaf: x509.Certificate, cas: Sequence[tuple[bytes, x509.Certificate]]
) -> tuple[bytes, ...]:
    """The leaf and the authorities above it that the token holds, without a root: a
    verifier uses its own trust anchors."""
    chain, current = [leaf_der], leaf
    for _ in range(MAX_CHAIN):
        parent = next(((d, c) for d, c in cas if c.subject == current.issuer), None)
        if parent is None or parent[1].issuer == parent[1].subject:
            break
        chain.append(parent[0])
        current = parent[1]
    return tuple(chain)


def read(contents: TokenContents, authorities: Sequence[bytes] = ()) -> Reading:
    """The BankIDs on one token. ``authorities``: issuing CAs' certificates (DER) the agent
    is configured with, to complete a chain the token cannot hold (PIV has no place for
    them); the token's own come first."""
    why: list[str] = []
    if not contents.flags & TOKEN_INITIALIZED:
        return Reading((), ("token not initialised",))
    private_ids = {k.id for k in contents.keys if k.private}
    # Before a login a token may hide its private keys; the public half names the pair then.
    public_ids = {k.id for k in contents.keys if not k.private}
    key_ids = private_ids | (public_ids if contents.flags & LOGIN_REQUIRED else set())
    leaves: dict[KeyPurpose, list[tuple[CertObject, x509.Certificate]]] = {
        p: [] for p in KeyPurpose
    }
    cas: list[tuple[bytes, x509.Certificate]] = []
    for obj in contents.certificates:
        name = f"certificate {obj.label or obj.id.hex() or '(no id)'}"
        try:
            cert = x509.load_der_x509_certificate(obj.der)
        except ValueError:
            why.append(f"{name}: does not parse")
            continue
        if _is_ca(cert):
            cas.append((obj.der, cert))
            continue
        purpose = _purpose(cert, obj.id, contents.piv)
        if purpose is None:
            why.append(f"{name}: neither an identification nor a signature certificate")
        elif not obj.id:
            why.append(f"{name}: has no id, so no key can be found for it")
        elif obj.id not in key_ids:
            why.append(f"{name}: its key is not on the token")
        elif not _usable_key(cert):
            why.append(f"{name}: its key is neither ECDSA P-256 nor RSA of 2048 bits or more")
        else:
            leaves[purpose].append((obj, cert))
    for der in authorities:
        try:
            cas.append((der, x509.load_der_x509_certificate(der)))
        except ValueError:
            continue  # the configuration was checked when it was read
    state = pin_state(contents.flags)
    found: list[TokenCredential] = []
    used: set[bytes] = set()
    for ident_obj, ident in leaves[KeyPurpose.IDENTIFICATION]:
        try:
            holder = owner_of(ident)
        except ValueError:
            why.append(f"certificate {ident_obj.label}: names no personal number")
            continue
        partners = [
            (o, c)
            for o, c in leaves[KeyPurpose.SIGNATURE]
            if o.id not in used and c.issuer == ident.issuer and _same_holder(c, holder)
        ]
        if not partners:
            why.append(f"certificate {ident_obj.label}: no signature certificate of its holder")
            continue
        sign_obj, sign = max(partners, key=lambda p: p[1].not_valid_after_utc)
        used.add(sign_obj.id)
        info = replace(
            describe(
                CredentialKind.TOKEN,
                ident_obj.der,
                sign_obj.der,
                locked=state.locked,
                tries_left=state.tries_left,
            ),
            pin_pad=bool(contents.flags & PROTECTED_AUTHENTICATION_PATH),
        )
        found.append(
            TokenCredential(
                token=contents.ref,
                info=info,
                chains={
                    KeyPurpose.IDENTIFICATION: _chain(ident_obj.der, ident, cas),
                    KeyPurpose.SIGNATURE: _chain(sign_obj.der, sign, cas),
                },
                key_ids={
                    KeyPurpose.IDENTIFICATION: ident_obj.id,
                    KeyPurpose.SIGNATURE: sign_obj.id,
                },
            )
        )
    for sign_obj, _ in leaves[KeyPurpose.SIGNATURE]:
        if sign_obj.id not in used:
            why.append(f"certificate {sign_obj.label}: no identification certificate of its holder")
    return Reading(tuple(found), tuple(why))


def _same_holder(cert: x509.Certificate, holder: Owner) -> bool:
    try:
        return owner_of(cert).personal_number == holder.personal_number
    except ValueError:
        return False
