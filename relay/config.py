"""The relay's configuration: its public origin, the issuers it trusts, and the relying
parties it serves (``relay.toml``, written by the organisation running it):

    origin = "https://relay.bank.example"      # what agents show and sign
    trust = ["/etc/eid-relay/issuer-root.pem"]  # issuers whose BankIDs are accepted

    [kind_policies]                             # optional: issuers' own policy OIDs
    card = ["1.2.752.999.1.2"]                  # per kind of BankID (eidcore/policies.py)

    [limits]                                    # optional: the agent API's budget per
    agent_burst = 60                            # address; 0 a second turns it off (behind
    agent_per_second = 20                       # a proxy that limits by the real address)
    [ocsp]                                      # optional: the issuer's word on each result
    required = true                             # no answer, no result (production)
    responder = "https://ocsp.bank.example"     # instead of the one certificates name
    ca_file = "ocsp-ca.pem"                     # trust for an https responder
    timeout = 5                                 # seconds

    [[party]]
    id = "shop"                                 # signed into every result for it
    name = "Exempelbutiken AB"                  # shown beside the relay's domain
    client_cert_sha256 = "3a1f…"                # of its TLS client certificate (DER); a
                                                # list while it rolls its certificate
    return_urls = ["https://shop.example/eid/return"]

A party is known by its client certificate (``eid-relay serve --client-ca``: the CAs that
issue them; ``eid-relay party-cert`` makes a development one), as at BankID.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

import rp
from eidcore import policies, returnurl, visibletext

__all__ = ["PARTY_ID", "ConfigError", "Ocsp", "Party", "RelayConfig", "load_config"]

# The agent API needs no credentials (an autostart token or an agent secret is the
# credential), so each address (an IPv6 /64) has a budget: an agent asks about once a
# second during an order; an office behind one NAT runs many. Unlimited, ~800 guesses a
# second each took SQLite's write lock.
AGENT_BUDGET = (60.0, 20.0)  # 60 at once, then 20 a second

_SHA256 = re.compile(r"[0-9a-f]{64}")
PARTY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ORIGIN = re.compile(
    r"^https?://[a-z0-9.-]+(:[1-9][0-9]{0,4})?$|^https?://\[[0-9a-f:.]+\](:[1-9][0-9]{0,4})?$"
)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where."""


@dataclass(frozen=True)
class Party:
    id: str
    name: str
    client_certs: frozenset[str]  # SHA-256 of each certificate's DER, hex
    return_urls: tuple[str, ...] = ()

    def may_return_to(self, url: str) -> bool:
        """The same scheme, host, port and path as a registered URL; a query is the site's
        own (its one-time return value, rp.relay). Not a prefix rule: that is an open
        redirect waiting."""
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:  # a bracket that is no IPv6 address
            return False
        if parts.fragment:
            return False
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return base in self.return_urls


@dataclass(frozen=True)
class Ocsp:
    """How the relay asks the issuer whether a result's certificate is good (``[ocsp]``).
    It asks the responder the certificate names (or ``policy.url``) with a nonce bound to
    the signature, and keeps the answer as ``completionData.ocspResponse``. ``required``:
    a result whose certificate names no responder, or whose responder does not answer,
    fails the order (production); otherwise it completes without ``ocspResponse``. A
    certificate the responder says is revoked always fails it."""

    required: bool = False
    policy: rp.OcspPolicy = field(default_factory=rp.OcspPolicy)


@dataclass(frozen=True)
class RelayConfig:
    origin: str
    trust: tuple[x509.Certificate, ...]
    parties: Mapping[str, Party]
    kind_policies: Mapping[str, str] = field(default_factory=policies.verifier_table)
    agent_budget: tuple[float, float] = AGENT_BUDGET  # (burst, per second); 0/s: none
    ocsp: Ocsp = field(default_factory=lambda: Ocsp())

    def party_with(self, certificate: bytes) -> Party | None:
        """The party whose client certificate (DER) this is."""
        digest = hashlib.sha256(certificate).hexdigest()
        return next((p for p in self.parties.values() if digest in p.client_certs), None)


def load_config(path: Path) -> RelayConfig:
    """Raises: ConfigError."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config_from(doc, path.parent, str(path))


def config_from(doc: Mapping[str, Any], base: Path, where: str = "config") -> RelayConfig:
    origin = doc.get("origin")
    if not isinstance(origin, str) or not _ORIGIN.match(origin):
        raise ConfigError(f"{where}: origin must be scheme://host[:port], lower case")
    trust = []
    for name in doc.get("trust", []):
        pem = base / str(name)
        try:
            trust += x509.load_pem_x509_certificates(pem.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}: trust {pem}: {exc}") from None
    if not trust:
        raise ConfigError(f"{where}: trust must name at least one issuer certificate")
    parties: dict[str, Party] = {}
    for raw in doc.get("party", []):
        party = _party(raw, where)
        if party.id in parties:
            raise ConfigError(f"{where}: party {party.id} twice")
        shared = [p.id for p in parties.values() if p.client_certs & party.client_certs]
        if shared:  # one certificate, one party: which it speaks for must not be a guess
            raise ConfigError(f"{where}: party {party.id} has a certificate of {shared[0]}")
        parties[party.id] = party
    try:
        kinds = policies.verifier_table(
            policies.read_table(doc.get("kind_policies", {}), f"{where}: kind_policies")
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return RelayConfig(
        origin,
        tuple(trust),
        parties,
        kinds,
        _budget(doc.get("limits", {}), where),
        _ocsp(doc.get("ocsp", {}), base, where),
    )


def _ocsp(raw: object, base: Path, where: str) -> Ocsp:
    if not isinstance(raw, dict) or not set(raw) <= {"required", "responder", "ca_file", "timeout"}:
        raise ConfigError(f"{where}: [ocsp] takes required, responder, ca_file and timeout")
    required, responder = raw.get("required", False), raw.get("responder")
    ca_file, timeout = raw.get("ca_file"), raw.get("timeout", 5)
    if not isinstance(required, bool):
        raise ConfigError(f"{where}: ocsp.required must be true or false")
    if responder is not None and (
        not isinstance(responder, str) or not responder.startswith(("http://", "https://"))
    ):
        raise ConfigError(f"{where}: ocsp.responder must be an http(s) URL")
    if ca_file is not None and not isinstance(ca_file, str):
        raise ConfigError(f"{where}: ocsp.ca_file must be a file name")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise ConfigError(f"{where}: ocsp.timeout must be 1 to 60 seconds")
    fetch = rp.http_fetch(str(base / ca_file)) if ca_file else rp.http_fetch()
    return Ocsp(required, rp.OcspPolicy(timeout=float(timeout), url=responder, fetch=fetch))


def _budget(limits: object, where: str) -> tuple[float, float]:
    if not isinstance(limits, dict) or not set(limits) <= {"agent_burst", "agent_per_second"}:
        raise ConfigError(f"{where}: [limits] takes agent_burst and agent_per_second")
    burst = limits.get("agent_burst", AGENT_BUDGET[0])
    rate = limits.get("agent_per_second", AGENT_BUDGET[1])
    for name, value in (("agent_burst", burst), ("agent_per_second", rate)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1e6:
            raise ConfigError(f"{where}: limits.{name} must be a number from 0 to 1000000")
    if rate and burst < 1:
        raise ConfigError(f"{where}: limits.agent_burst must be at least 1")
    return float(burst), float(rate)


def _is_return_url(url: object) -> bool:
    try:
        returnurl.check(url)
    except returnurl.ReturnUrlRefused:
        return False
    return True


def _party(raw: object, where: str) -> Party:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [[party]] must be a table")
    pid, name = raw.get("id"), raw.get("name")
    if not isinstance(pid, str) or not PARTY_ID.match(pid):
        raise ConfigError(f"{where}: party id must be 1-64 of a-z 0-9 . _ -")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: party {pid}: name must be text")
    try:  # agents show it in quotes beside the relay's domain: it may forge neither
        visibletext.check_name(name)
    except visibletext.TextRefused as exc:
        raise ConfigError(f"{where}: party {pid}: name: {exc.details}") from None
    if "token_sha256" in raw:  # the relay's own API with bearer tokens is gone (ADR 0020)
        raise ConfigError(
            f"{where}: party {pid}: bearer tokens are gone: give the party a client "
            "certificate (eid-relay party-cert) and its client_cert_sha256"
        )
    unknown = sorted(set(raw) - {"id", "name", "client_cert_sha256", "return_urls"})
    if unknown:
        raise ConfigError(f"{where}: party {pid}: unknown key {unknown[0]}")
    certs = raw.get("client_cert_sha256", [])
    certs = [certs] if isinstance(certs, str) else certs
    if not isinstance(certs, list) or not all(
        isinstance(c, str) and _SHA256.fullmatch(c) for c in certs
    ):
        raise ConfigError(
            f"{where}: party {pid}: client_cert_sha256 must be 64 hex digits, or a list of them"
        )
    if not certs:
        raise ConfigError(f"{where}: party {pid}: client_cert_sha256 is required")
    urls = raw.get("return_urls", [])
    if not isinstance(urls, list) or not all(_is_return_url(u) for u in urls):
        raise ConfigError(
            f"{where}: party {pid}: return_urls must be https URLs (http only on loopback)"
        )
    return Party(pid, name, frozenset(certs), tuple(urls))
