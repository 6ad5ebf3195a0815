"""Personalise a BankID on card: keys generated inside the card, certificates from the CA.

Works on the virtual card's state; a hardware card would receive the same commands
through a personalisation profile of its own.
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives import serialization

from issuer.ca import CertificateAuthority, Person
from issuer.vcard.card import CardState, generate_key, new_card, write_file

__all__ = ["CA_FILE", "personalise_card"]

CA_FILE = 0xC003  # the issuing CA's certificate, so the card can present its whole chain


def personalise_card(
    ca: CertificateAuthority,
    person: Person,
    now: dt.datetime,
    *,
    serial: str,
    identification_pin: str,
    signature_pin: str,
    puk: str,
    days: int = 2 * 365,
) -> CardState:
    """Raises: ValueError (a PIN of the wrong format, or a validity the CA cannot give)."""
    state = new_card(serial, {0x81: identification_pin, 0x82: signature_pin, 0x83: puk})
    state, ident_public = generate_key(state, 0x01)
    state, sign_public = generate_key(state, 0x02)
    pair = ca.issue_pair(person, ident_public, sign_public, now, days=days)
    der = serialization.Encoding.DER
    state = write_file(state, 0xC001, pair.identification.public_bytes(der))
    state = write_file(state, 0xC002, pair.signature.public_bytes(der))
    return write_file(state, CA_FILE, ca.issuing_certificate.public_bytes(der))
