"""Personalise a BankID on card: keys generated inside the card, certificates from the CA.

Works on the virtual card's state; a hardware card would receive the same commands
through a personalisation profile of its own.
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives import serialization

from issuer.ca import CertificateAuthority, Person
from issuer.vcard.card import CardState, generate_key, new_card, write_file
from issuer.vcard.piv import PivState, generate_piv_key, new_piv_card, put_certificate

__all__ = ["CA_FILE", "personalise_card", "personalise_piv_card"]

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
    pair = ca.issue_pair(person, ident_public, sign_public, now, kind="card", days=days)
    der = serialization.Encoding.DER
    state = write_file(state, 0xC001, pair.identification.public_bytes(der))
    state = write_file(state, 0xC002, pair.signature.public_bytes(der))
    return write_file(state, CA_FILE, ca.issuing_certificate.public_bytes(der))


def personalise_piv_card(
    ca: CertificateAuthority,
    person: Person,
    now: dt.datetime,
    *,
    serial: str,
    pin: str,
    puk: str,
    days: int = 2 * 365,
) -> PivState:
    """A virtual PIV card holding a BankID: keys made in 9A (identification) and 9C
    (signature), the certificates written back. PIV has no place for the issuing CA's
    certificate: the agent completes the chain from its configured intermediates.

    Raises: ValueError (a PIN or PUK of the wrong format, or a validity the CA cannot give).
    """
    state = new_piv_card(serial, pin, puk)
    state, ident_public = generate_piv_key(state, 0x9A)
    state, sign_public = generate_piv_key(state, 0x9C)
    pair = ca.issue_pair(person, ident_public, sign_public, now, kind="token", days=days)
    der = serialization.Encoding.DER
    state = put_certificate(state, 0x9A, pair.identification.public_bytes(der))
    return put_certificate(state, 0x9C, pair.signature.public_bytes(der))
