"""Enrolment — ordering a BankID from an issuer with an activation code, on file or on a
PKCS#11 token: ``client`` (the agent's side of the issuer's protocol), ``token`` (keys
made on the token) and ``errors`` (one base, ``EnrolmentError``, for everything that can
go wrong).
"""

from agent.enrol.client import IssuerConnection, enrol_with_ui, revoke_credential
from agent.enrol.errors import EnrolmentError
from agent.enrol.token import enrol_on_piv, enrol_on_token, enrol_token_with_ui

__all__ = [
    "EnrolmentError",
    "IssuerConnection",
    "enrol_on_piv",
    "enrol_on_token",
    "enrol_token_with_ui",
    "enrol_with_ui",
    "revoke_credential",
]
