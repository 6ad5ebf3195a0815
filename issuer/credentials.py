"""Issue a complete BankID on file: two fresh key pairs, their certificates, sealed under
the person's password. Enrolment (a later issue) generates the keys on the person's
computer instead; development credentials are made here in one step."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization

from agent.credentials import CredentialFile, KdfParams, KeyPurpose, fileformat
from issuer.ca import CertificateAuthority, Person, new_key

__all__ = ["make_file_credential"]


def make_file_credential(
    ca: CertificateAuthority,
    person: Person,
    password: str,
    now: dt.datetime,
    *,
    days: int = 2 * 365,
    development: bool = True,
    random_bytes: Callable[[int], bytes] = os.urandom,
    kdf: KdfParams = fileformat.DEFAULT_KDF,
) -> CredentialFile:
    """Raises: PasswordTooWeak (before any key is made), ValueError (bad validity)."""
    fileformat.check_new_password(password)
    keys = {KeyPurpose.IDENTIFICATION: new_key(), KeyPurpose.SIGNATURE: new_key()}
    pair = ca.issue_pair(
        person,
        keys[KeyPurpose.IDENTIFICATION].public_key(),
        keys[KeyPurpose.SIGNATURE].public_key(),
        now,
        kind="file",
        days=days,
    )
    der = serialization.Encoding.DER
    chain_tail = tuple(c.public_bytes(der) for c in ca.chain)
    chains = {
        KeyPurpose.IDENTIFICATION: (pair.identification.public_bytes(der), *chain_tail),
        KeyPurpose.SIGNATURE: (pair.signature.public_bytes(der), *chain_tail),
    }
    return fileformat.seal(
        chains=chains,
        keys=keys,
        password=password,
        development=development,
        created=fileformat.utc_timestamp(now),
        random_bytes=random_bytes,
        kdf=kdf,
    )
