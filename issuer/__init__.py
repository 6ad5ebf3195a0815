"""The issuer, run by a bank or an organisation: its CA (``ca``), enrolment with an
activation code (``enrolment``, ``server``), OCSP (``ocsp``), the database (``db``),
development credentials and card personalisation, and the virtual card (``vcard``).
It uses the kernel and, of the agent, only the credential format (``agent.credentials``) and
the message table (``agent.notices``)."""

from issuer.ca import CertificateAuthority, IssuedPair, Person
from issuer.credentials import make_file_credential

__all__ = ["CertificateAuthority", "IssuedPair", "Person", "make_file_credential"]
