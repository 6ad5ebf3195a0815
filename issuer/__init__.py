"""The issuer: a CA library, development credentials; enrolment and OCSP come later."""

from issuer.ca import CertificateAuthority, IssuedPair, Person
from issuer.credentials import make_file_credential

__all__ = ["CertificateAuthority", "IssuedPair", "Person", "make_file_credential"]
