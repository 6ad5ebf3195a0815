"""A two-level CA on ``cryptography``: a root, an issuing CA, and per person an
identification certificate (digitalSignature) and a signature certificate
(nonRepudiation), subject serialNumber = personal number.

Time and serial numbers are inputs. Persisting keys is the caller's business; ``save`` and
``load`` exist for the development CA, whose keys sit unencrypted in an owner-only folder
and which labels every certificate it issues as a development certificate.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from eidcore import visibletext
from eidcore.atomicfile import atomic_write_bytes
from eidcore.personal_number import PersonalNumber
from eidcore.policies import KINDS, POLICY_FOR_KIND, read_table

__all__ = [
    "MAX_NAME_LENGTH",
    "CertificateAuthority",
    "InvalidName",
    "IssuedPair",
    "Person",
    "new_key",
]

# X.509's upper bound for a common name (RFC 5280, ub-common-name), which cryptography
# counts in UTF-8 bytes: "Å" counts 2 (measured).
MAX_NAME_LENGTH = 64


class InvalidName(ValueError):
    """A name no certificate can carry, or no dialog can show as it is."""


SerialSource = Callable[[], int]

DEV_ORGANISATION = "eid-agent development (not for production use)"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Person:
    personal_number: PersonalNumber
    given_name: str
    surname: str

    @classmethod
    def from_full_name(cls, personal_number: PersonalNumber, name: str) -> Person:
        """Split at the last space: "Anna Maria Andersson" → given "Anna Maria".

        Raises:
            InvalidName: empty, longer than MAX_NAME_LENGTH bytes, more than one line, or with a
                character the dialogs would not show as it is (eidcore/visibletext.py): the
                name is printed in every dialog and signed in every certificate.
        """
        name = name.strip()
        if not name or len(name.encode()) > MAX_NAME_LENGTH:
            raise InvalidName(f"a name is 1-{MAX_NAME_LENGTH} bytes of UTF-8")
        if any(ch in name for ch in "\t\r\n"):
            raise InvalidName("a name is one line")
        try:
            visibletext.check(name)
        except visibletext.TextRefused as exc:
            raise InvalidName(exc.details) from None
        given, _, surname = name.rpartition(" ")
        if not given:
            given, surname = surname, ""
        return cls(personal_number, given, surname)

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.surname}".strip()


@dataclass(frozen=True)
class IssuedPair:
    identification: x509.Certificate
    signature: x509.Certificate


@dataclass(frozen=True)
class CertificateAuthority:
    """``policies``: the certificate policy OID written for each kind of BankID (file,
    card, token: eidcore/policies.py); the project's own unless ``policies.toml`` in the
    CA folder names the issuer's."""

    root_certificate: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    issuing_certificate: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    policies: Mapping[str, str] = field(default_factory=lambda: dict(POLICY_FOR_KIND))

    @classmethod
    def create(
        cls,
        name: str,
        now: dt.datetime,
        *,
        organisation: str = DEV_ORGANISATION,
        serial: SerialSource = x509.random_serial_number,
        root_years: int = 20,
        issuing_years: int = 10,
    ) -> CertificateAuthority:
        root_key, issuing_key = new_key(), new_key()
        root_name = _ca_name(f"{name} Root CA", organisation)
        issuing_name = _ca_name(f"{name} Issuing CA", organisation)
        root = (
            _builder(root_name, root_name, root_key.public_key(), now, root_years * 365, serial)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        issuing = (
            _builder(
                issuing_name,
                root_name,
                issuing_key.public_key(),
                now,
                issuing_years * 365,
                serial,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        return cls(root, root_key, issuing, issuing_key)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA then root, as appended after a person's certificate."""
        return (self.issuing_certificate, self.root_certificate)

    def issue_pair(
        self,
        person: Person,
        identification_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        signature_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        now: dt.datetime,
        *,
        kind: str,
        days: int = 2 * 365,
        serial: SerialSource = x509.random_serial_number,
        ocsp_url: str | None = None,
    ) -> IssuedPair:
        """Both certificates of one person, with identical validity, for a BankID of
        ``kind`` (file, card or token: its certificate policy); ``ocsp_url`` goes into
        their Authority Information Access, where relying parties find the responder.

        Raises:
            ValueError: ``days`` is not positive, outlives the issuing CA, or ``kind`` is
                not one of the three.
        """
        if kind not in KINDS:
            raise ValueError(f"no certificate policy for a BankID of kind {kind!r}")
        policy = x509.CertificatePolicies(
            [x509.PolicyInformation(x509.ObjectIdentifier(self.policies[kind]), None)]
        )
        if days <= 0:
            raise ValueError("days must be positive")
        if now + dt.timedelta(days=days) > self.issuing_certificate.not_valid_after_utc:
            raise ValueError("certificate would outlive the issuing CA")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, str(person.personal_number)),
                x509.NameAttribute(NameOID.GIVEN_NAME, person.given_name),
                x509.NameAttribute(NameOID.SURNAME, person.surname or "-"),
                x509.NameAttribute(NameOID.COMMON_NAME, person.name),
            ]
        )
        return IssuedPair(
            identification=self._leaf(
                subject,
                identification_key,
                now,
                days,
                serial,
                policy,
                nonrepudiation=False,
                ocsp_url=ocsp_url,
            ),
            signature=self._leaf(
                subject,
                signature_key,
                now,
                days,
                serial,
                policy,
                nonrepudiation=True,
                ocsp_url=ocsp_url,
            ),
        )

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        now: dt.datetime,
        days: int,
        serial: SerialSource,
        policy: x509.CertificatePolicies,
        *,
        nonrepudiation: bool,
        ocsp_url: str | None = None,
    ) -> x509.Certificate:
        builder = (
            _builder(subject, self.issuing_certificate.subject, public_key, now, days, serial)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(policy, critical=False)
            .add_extension(
                _key_usage(digital_signature=not nonrepudiation, content_commitment=nonrepudiation),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuing_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if not nonrepudiation:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        if ocsp_url:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        return builder.sign(self.issuing_key, hashes.SHA256())

    # -- persistence (development CA) ---------------------------------------------------

    _FILES = ("root.crt", "root.key", "issuing.crt", "issuing.key")

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = serialization.Encoding.PEM
        for name, cert, key in (
            ("root", self.root_certificate, self.root_key),
            ("issuing", self.issuing_certificate, self.issuing_key),
        ):
            atomic_write_bytes(directory / f"{name}.crt", cert.public_bytes(pem), mode=0o644)
            atomic_write_bytes(
                directory / f"{name}.key",
                key.private_bytes(
                    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ),
                mode=0o600,
            )

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Raises: OSError (missing files), ValueError (not a CA we wrote, or a
        ``policies.toml`` that is not a table of kinds to one OID each)."""
        certs = {
            n: x509.load_pem_x509_certificate((directory / f"{n}.crt").read_bytes())
            for n in ("root", "issuing")
        }
        keys = {}
        for n in ("root", "issuing"):
            key = serialization.load_pem_private_key((directory / f"{n}.key").read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{n}.key is not an EC key")
            keys[n] = key
        return cls(
            certs["root"],
            keys["root"],
            certs["issuing"],
            keys["issuing"],
            _policies(directory / POLICIES_FILE),
        )

    @classmethod
    def exists(cls, directory: Path) -> bool:
        return all((directory / f).is_file() for f in cls._FILES)


POLICIES_FILE = "policies.toml"


def _policies(path: Path) -> dict[str, str]:
    """The issuer's own policy OIDs per kind, over the project's; ``path`` may be absent.
    Raises: ValueError."""
    table = dict(POLICY_FOR_KIND)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return table
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    for kind, oids in read_table(doc, str(path)).items():
        if len(oids) != 1:
            raise ValueError(f"{path}: an issuer writes one OID for {kind}")
        table[kind] = oids[0]
    return table


def _ca_name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_usage() -> x509.KeyUsage:
    return _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True)


def _key_usage(**granted: bool) -> x509.KeyUsage:
    """A KeyUsage with only the named bits set (cryptography wants all nine spelled)."""
    return x509.KeyUsage(**{bit: granted.get(bit, False) for bit in _KEY_USAGE_BITS})


_KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    now: dt.datetime,
    days: int,
    serial: SerialSource,
) -> x509.CertificateBuilder:
    # Backdate a little so a verifier whose clock is slightly behind still accepts it.
    start = now - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days))
    )
