"""Enrolment — ordering a BankID on file from an issuer with an activation code:
``client`` (the agent's side of the issuer's protocol) and ``errors`` (one base,
``EnrolmentError``, for everything that can go wrong).
"""
