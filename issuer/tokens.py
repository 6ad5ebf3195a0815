"""Back-office personalisation of a PKCS#11 token: the bank's desk puts a BankID on a
person's security key directly from the CA — keys made on the token (never outside it),
certificates issued for the public keys the token gave out, and written back beside them.
The agent's own order (``eid-agent enrol --token``) does the same over the issuer's
protocol with an activation code."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.credentials import KeyPurpose
from agent.credentials.card import CardError, NoCard
from agent.credentials.pkcs11 import ModuleEntry, TokenContents, TokenWatcher, pivtool, tokens_open
from issuer.ca import CertificateAuthority, Person

LABELS = {
    KeyPurpose.IDENTIFICATION: "BankID identification",
    KeyPurpose.SIGNATURE: "BankID signature",
}
PIV_SLOTS = {KeyPurpose.IDENTIFICATION: 0x9A, KeyPurpose.SIGNATURE: 0x9C}


def personalise_token(
    ca: CertificateAuthority,
    person: Person,
    now: dt.datetime,
    *,
    module: Path,
    label: str | None,
    pin: str,
    days: int = 2 * 365,
    random_bytes: Callable[[int], bytes] = os.urandom,
    admin_key: bytes = pivtool.DEFAULT_ADMIN_KEY,
) -> str:
    """Returns the new BankID's id (as the agent lists it). ``admin_key``: a PIV card's
    management key (3DES), which making its keys needs.

    Raises: NoCard (no token of that label), CardError (WrongPin, PinBlocked, TokenFault),
    ValueError (a validity the CA cannot give).
    """
    der = serialization.Encoding.DER
    with tokens_open([ModuleEntry(module.name, module, "back office")]) as tokens:
        found = [t for t in tokens.present_tokens() if label is None or t.label == label]
        if len(found) != 1:  # none, or several and no label to choose by
            raise NoCard()
        token = found[0]
        tokens.check_pin(token.ref, pin)
        piv_reader = token.reader if token.piv else None
        if piv_reader is None:
            return _personalise(tokens, token, ca, person, now, pin, days, random_bytes)
    # OpenSC's PKCS#11 does not generate keys on PIV: its piv-tool does (module unloaded)
    token_id = _personalise_piv(ca, person, now, piv_reader, admin_key, days)
    _check_listed(module, token_id, [ca.issuing_certificate.public_bytes(der)])
    return token_id


def _personalise(
    tokens: TokenWatcher,
    token: TokenContents,
    ca: CertificateAuthority,
    person: Person,
    now: dt.datetime,
    pin: str,
    days: int,
    random_bytes: Callable[[int], bytes],
) -> str:
    """Keys made through the token's PKCS#11 module, certificates written back."""
    der = serialization.Encoding.DER
    ids = {p: random_bytes(8) for p in KeyPurpose}
    public = {
        p: ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(),
            tokens.generate_pair(
                token.ref, pin, ids[p], LABELS[p], always_authenticate=p is KeyPurpose.SIGNATURE
            ),
        )
        for p in KeyPurpose
    }
    pair = ca.issue_pair(
        person,
        public[KeyPurpose.IDENTIFICATION],
        public[KeyPurpose.SIGNATURE],
        now,
        kind="token",
        days=days,
    )
    for purpose, cert in (
        (KeyPurpose.IDENTIFICATION, pair.identification),
        (KeyPurpose.SIGNATURE, pair.signature),
    ):
        tokens.write_certificate(
            token.ref,
            pin,
            ids[purpose],
            LABELS[purpose],
            cert.public_bytes(der),
            cert.subject.public_bytes(),
            cert.issuer.public_bytes(),
        )
    issuing = ca.issuing_certificate
    # PIV has no place for the issuing CA: the agent's [pkcs11] intermediates complete it
    with contextlib.suppress(CardError):
        tokens.write_certificate(
            token.ref,
            pin,
            b"\xca" + random_bytes(7),
            "BankID issuing CA",
            issuing.public_bytes(der),
            issuing.subject.public_bytes(),
            issuing.issuer.public_bytes(),
        )
    return hashlib.sha256(pair.identification.public_bytes(der)).hexdigest()[:16]


def _personalise_piv(
    ca: CertificateAuthority,
    person: Person,
    now: dt.datetime,
    reader: str,
    admin_key: bytes,
    days: int,
) -> str:
    """Keys made in 9A and 9C by the card itself (piv-tool), certificates loaded after."""
    public = {p: pivtool.generate(reader, slot, admin_key) for p, slot in PIV_SLOTS.items()}
    pair = ca.issue_pair(
        person,
        public[KeyPurpose.IDENTIFICATION],
        public[KeyPurpose.SIGNATURE],
        now,
        kind="token",
        days=days,
    )
    pivtool.load_certificate(reader, 0x9A, pair.identification, admin_key)
    pivtool.load_certificate(reader, 0x9C, pair.signature, admin_key)
    der = serialization.Encoding.DER
    return hashlib.sha256(pair.identification.public_bytes(der)).hexdigest()[:16]


def _check_listed(module: Path, token_id: str, authorities: list[bytes]) -> None:
    """Read the token afresh, as an agent would: the new BankID must be there.
    Raises: TokenFault."""
    from agent.credentials.pkcs11 import TokenFault, tokens_now

    listed = tokens_now([ModuleEntry(module.name, module, "back office")], authorities)
    if token_id not in {c.id for c in listed}:
        raise TokenFault("the new BankID is not on the token", "check the token")
