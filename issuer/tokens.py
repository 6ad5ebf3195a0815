"""Back-office personalisation of a PKCS#11 token: the bank's desk puts a BankID on a
person's security key directly from the CA — keys made on the token (never outside it),
certificates issued for the public keys the token gave out, and written back beside them.
The agent's own order (``eid-agent order --token``) does the same over the issuer's
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

from agent.tokens.card.errors import CardError, NoCard
from agent.tokens.model import KeyPurpose
from agent.tokens.pkcs11.modules import ModuleEntry
from agent.tokens.pkcs11.watcher import tokens_open
from issuer.ca import CertificateAuthority, Person

LABELS = {KeyPurpose.IDENTIFICATION: "BankID identification",
          KeyPurpose.SIGNATURE: "BankID signature"}  # fmt: skip
PIV_IDS = {KeyPurpose.IDENTIFICATION: b"\x01", KeyPurpose.SIGNATURE: b"\x02"}


def personalise_token(
    ca: CertificateAuthority,
    person: Person,
    now: dt.datetime,
    *,
    module: Path,
    label: str,
    pin: str,
    days: int = 2 * 365,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> str:
    """Returns the new BankID's id (as the agent lists it).

    Raises: NoCard (no token of that label), CardError (WrongPin, PinBlocked, TokenFault),
    ValueError (a validity the CA cannot give).
    """
    der = serialization.Encoding.DER
    with tokens_open([ModuleEntry(module.name, module, "back office")]) as tokens:
        token = next((t for t in tokens.present_tokens() if t.label == label), None)
        if token is None:
            raise NoCard()
        tokens.check_pin(token.ref, pin)
        ids = dict(PIV_IDS) if token.piv else {p: random_bytes(8) for p in KeyPurpose}
        public = {
            p: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), tokens.generate_pair(
                token.ref, pin, ids[p], LABELS[p], always_authenticate=p is KeyPurpose.SIGNATURE))
            for p in KeyPurpose
        }  # fmt: skip
        pair = ca.issue_pair(person, public[KeyPurpose.IDENTIFICATION],
                             public[KeyPurpose.SIGNATURE], now, days=days)  # fmt: skip
        for purpose, cert in ((KeyPurpose.IDENTIFICATION, pair.identification),
                              (KeyPurpose.SIGNATURE, pair.signature)):  # fmt: skip
            tokens.write_certificate(token.ref, pin, ids[purpose], LABELS[purpose],
                                     cert.public_bytes(der), cert.subject.public_bytes(),
                                     cert.issuer.public_bytes())  # fmt: skip
        issuing = ca.issuing_certificate
        # PIV has no place for the issuing CA: the agent's [pkcs11] intermediates complete it
        with contextlib.suppress(CardError):
            tokens.write_certificate(token.ref, pin, b"\xca" + random_bytes(7), "BankID issuing CA",
                                     issuing.public_bytes(der), issuing.subject.public_bytes(),
                                     issuing.issuer.public_bytes())  # fmt: skip
    return hashlib.sha256(pair.identification.public_bytes(der)).hexdigest()[:16]
