"""What an agent signs to prove, to an order relay, that it holds a person's BankID before
the relay shows it the phone orders waiting for that person (BankID's ``phone/auth`` and
``phone/sign``: the person is on the phone with the party, and no link was opened). One
home for the bytes: the agent builds them, the relay checks them. Pure.

The bytes name their purpose, the relay's origin and the relay's one-time challenge, so a
proof is good for one look at one relay, once: it is not a login anywhere (an
identification's signed data is XML or signedData, never these bytes), and a relay
cannot replay it to another.
"""

from __future__ import annotations

__all__ = ["CONTEXT", "MAX_PROOFS", "proof_bytes"]

CONTEXT = b"eid-agent: orders waiting for me\n"
MAX_PROOFS = 8  # BankIDs one agent may show at once


def proof_bytes(relay_origin: str, challenge: str) -> bytes:
    """The bytes the identification key signs for ``challenge`` from ``relay_origin``."""
    return CONTEXT + relay_origin.encode("ascii") + b"\n" + challenge.encode("ascii")
