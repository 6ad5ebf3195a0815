"""Issuing CAs the agent learned from its own token orders, kept in the data folder.

A PIV card has no place for the issuing CA's certificate, and without it a website cannot
build the chain from a BankID's certificate to its root. The agent that ordered the BankID
was handed the chain by the issuer: it keeps the issuing CAs here, beside the ones an
organisation names in ``[pkcs11] intermediates``. They only complete the chains the agent
presents; whether a chain is trusted is the website's decision, with its own roots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from eidcore.atomicfile import atomic_write_bytes

log = logging.getLogger(__name__)

FILE = "token-authorities.pem"
MAX_KEPT = 32  # a handful of issuers in a lifetime; never a file that grows without end


def learned(data_dir: Path) -> tuple[bytes, ...]:
    """The kept certificates (DER); none when the file is missing or unreadable."""
    try:
        found = x509.load_pem_x509_certificates((data_dir / FILE).read_bytes())
    except FileNotFoundError:
        return ()
    except (OSError, ValueError) as exc:
        log.warning("%s not read (%s): tokens' chains lack what it held", FILE, type(exc).__name__)
        return ()
    return tuple(cert.public_bytes(Encoding.DER) for cert in found)


def learn(data_dir: Path, authorities: Sequence[x509.Certificate]) -> None:
    """Keep ``authorities`` (roots are the verifier's own and are left out), atomically and
    owner-only, after those kept already."""
    kept = [x509.load_der_x509_certificate(der) for der in learned(data_dir)]
    known = {cert.fingerprint(hashes.SHA256()) for cert in kept}
    for cert in authorities:
        if cert.issuer != cert.subject and cert.fingerprint(hashes.SHA256()) not in known:
            kept.append(cert)
            known.add(cert.fingerprint(hashes.SHA256()))
    data = b"".join(cert.public_bytes(Encoding.PEM) for cert in kept[-MAX_KEPT:])
    atomic_write_bytes(data_dir / FILE, data)


def chain_authorities(configured: Sequence[bytes], data_dir: Path) -> tuple[bytes, ...]:
    """What completes tokens' chains: the organisation's ``[pkcs11] intermediates``, then
    those kept from this agent's own orders."""
    return (*configured, *learned(data_dir))
