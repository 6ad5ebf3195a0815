"""A credential whose keys are open, for one operation.

Key-use separation is enforced here, where the keys are: the identification key signs
only for identification, the signature key only for signatures (BRIDGE-SECURITY 9).
Holders should drop the object as soon as the operation is done.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.credentials.fileformat import sign_raw
from agent.credentials.model import CredentialInfo, KeyPurpose

ALGORITHM = "ES256"  # ECDSA P-256 with SHA-256, signature as fixed-width r‖s


def _self_signed(der: bytes) -> bool:
    cert = x509.load_der_x509_certificate(der)
    return cert.issuer == cert.subject


def without_roots(chain: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """DER certificates, leaf first, without self-signed roots: a verifier must use its
    own trust anchors, so sending the root would only cost bytes on the wire."""
    return tuple(der for i, der in enumerate(chain) if i == 0 or not _self_signed(der))


class UnlockedCredential:
    def __init__(
        self,
        info: CredentialInfo,
        chains: Mapping[KeyPurpose, tuple[bytes, ...]],
        keys: Mapping[KeyPurpose, ec.EllipticCurvePrivateKey],
    ) -> None:
        self.info = info
        # roots taken off once: parsing the certificates costs ~0.5 ms an order otherwise
        self._chains = {purpose: without_roots(chain) for purpose, chain in chains.items()}
        self._keys = dict(keys)

    def certificate_chain(self, purpose: KeyPurpose) -> tuple[bytes, ...]:
        """The chain for ``purpose`` (``without_roots``)."""
        return self._chains[purpose]

    def sign(self, purpose: KeyPurpose, data: bytes) -> bytes:
        """Sign ``data`` (hashed with SHA-256 here) with the key for ``purpose``."""
        return sign_raw(self._keys[purpose], data)

    def private_keys_for_reseal(self) -> Mapping[KeyPurpose, ec.EllipticCurvePrivateKey]:
        # Only the store calls this, to re-encrypt under a new password.
        return self._keys

    def __repr__(self) -> str:  # never show key material, even by accident in a log
        return f"UnlockedCredential({self.info.id})"
