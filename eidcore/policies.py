"""Which kind of BankID a certificate is for — on file, on card, or on a PKCS#11 token —
as its certificate policy says. Pure.

The kind a website may require (``requirement.tokenKinds``) must be a fact it can check,
not the agent's word: an agent that signed with a BankID on file and claimed ``card``
met a ``["card"]`` requirement until the kind came from here. The issuer writes one
policy OID per kind into each person certificate's certificatePolicies; the rp kit reads
it back from the verified leaf.

The project's arc is a UUID OID (ITU-T X.667: ``2.25.<the UUID as an integer>``, which
needs no registration and is ours alone):

    2.25.276170155402633567295288243272542890307        eid-agent
                                                .1      certificate policies
                                                .1.1    BankID on file
                                                .1.2    BankID on card
                                                .1.3    BankID on a PKCS#11 token

An issuer with an arc of its own names its OIDs (``policies.toml`` in its CA folder),
and a verifier that trusts it is given the same table (``kind_policies`` in relay.toml,
``kind_policies=`` to the rp kit). A certificate issued before this has no such policy:
its kind is unknown, so it meets no kind requirement and is accepted where none is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "ARC",
    "KINDS",
    "KIND_POLICIES",
    "POLICY_FOR_KIND",
    "ConflictingPolicies",
    "kind_of",
    "read_table",
    "verifier_table",
]

ARC = "2.25.276170155402633567295288243272542890307"
KINDS = ("file", "card", "token")
POLICY_FOR_KIND: Mapping[str, str] = {
    "file": f"{ARC}.1.1",
    "card": f"{ARC}.1.2",
    "token": f"{ARC}.1.3",
}
KIND_POLICIES: Mapping[str, str] = {oid: kind for kind, oid in POLICY_FOR_KIND.items()}

_OID = re.compile(r"^[0-2](?:\.(?:0|[1-9][0-9]{0,38})){1,30}$")


class ConflictingPolicies(ValueError):
    """The certificate names policies of two different kinds."""


def kind_of(policies: Iterable[str], table: Mapping[str, str] = KIND_POLICIES) -> str | None:
    """The kind the certificate's policy OIDs name (``table``: OID → kind), or None when
    none of them is in the table.

    Raises:
        ConflictingPolicies: two different kinds.
    """
    kinds = {table[oid] for oid in policies if oid in table}
    if len(kinds) > 1:
        raise ConflictingPolicies("certificate policies of more than one kind")
    return kinds.pop() if kinds else None


def read_table(doc: object, where: str) -> dict[str, tuple[str, ...]]:
    """A kind → OIDs table as a configuration file writes it (``file = "1.2.3"``, or a
    list of OIDs for a verifier that trusts issuers with different arcs), checked.

    Raises:
        ValueError: not a table of the three kinds to dotted OIDs, or one OID for two kinds.
    """
    if not isinstance(doc, Mapping) or not set(doc) <= set(KINDS):
        raise ValueError(f"{where}: names the kinds {', '.join(KINDS)} only")
    table: dict[str, tuple[str, ...]] = {}
    for kind, value in doc.items():
        oids = [value] if isinstance(value, str) else value
        if (
            not isinstance(oids, list)
            or not oids
            or not all(isinstance(oid, str) and _OID.match(oid) for oid in oids)
        ):
            raise ValueError(f"{where}: {kind} must be a dotted OID such as 1.2.752.1")
        table[str(kind)] = tuple(oids)
    every = [oid for oids in table.values() for oid in oids]
    if len(set(every)) != len(every):
        raise ValueError(f"{where}: one OID names two kinds")
    return table


def verifier_table(extra: Mapping[str, Iterable[str]] | None = None) -> dict[str, str]:
    """OID → kind: the project's policies and ``extra`` (kind → OIDs, ``read_table``).

    Raises:
        ValueError: an extra OID is one of the project's, for another kind.
    """
    table = dict(KIND_POLICIES)
    for kind, oids in (extra or {}).items():
        for oid in oids:
            if table.get(oid, kind) != kind:
                raise ValueError(f"{oid} is this project's policy for {table[oid]}")
            table[oid] = kind
    return table
