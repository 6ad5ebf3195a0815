"""The provider's configuration (``oidc.toml``, written by whoever runs it):

    issuer = "https://login.bank.example"       # the issuer identifier, exactly
    database = "sqlite:///var/lib/eid-oidc/oidc.db"  # or postgresql://… for several
    trust = ["bankid-root.pem"]                 # issuers whose BankIDs are accepted
    pairwise_key_file = "pairwise.key"          # 32+ bytes; made at first start if absent

    [relay]                                     # the order relay this provider is a party of
    url = "https://relay.bank.example"          # its relying-party API (BankID's v6.0)
    origin = "https://relay.bank.example"       # what agents show and sign (default: url)
    party = "login"                             # this provider's party id there
    client_cert = "login.crt"                   # the client certificate and key it
    client_key = "login.key"                    # authenticates with (PEM)
    ca_file = "relay-ca.pem"                    # trust for the relay's TLS (optional)

    [[client]]
    client_id = "shop"
    name = "Exempelbutiken AB"                  # shown on the login page
    redirect_uris = ["https://shop.example/callback"]   # exact
    token_endpoint_auth_method = "client_secret_basic"  # or client_secret_post,
                                                # private_key_jwt (then jwks_file)
    client_secret_sha256 = "9f86…"              # hex SHA-256 of the secret; a list to roll
    post_logout_redirect_uris = ["https://shop.example/"]
    id_token_signed_response_alg = "ES256"      # or RS256

Files are named relative to the configuration's folder. ``eid-oidc add-client`` writes a
``[[client]]`` block with a fresh secret (shown once).
"""

from __future__ import annotations

import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from eidcore.atomicfile import atomic_write_bytes
from oidc import jose
from oidc.rules import Client

__all__ = ["ConfigError", "OidcConfig", "RelaySide", "load_config"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ISSUER = re.compile(r"https?://[a-z0-9.-]+(:[1-9][0-9]{0,4})?(/[A-Za-z0-9._~/-]*)?")
AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post", "private_key_jwt"})


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where."""


@dataclass(frozen=True)
class RelaySide:
    url: str
    origin: str
    party: str
    client_cert: Path
    client_key: Path
    ca_file: Path | None


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    database: str
    trust: tuple[x509.Certificate, ...]
    pairwise_key: bytes
    relay: RelaySide
    clients: Mapping[str, Client]

    @property
    def secure(self) -> bool:
        """https: cookies are Secure (http only on loopback, for development)."""
        return self.issuer.startswith("https://")


def load_config(path: Path) -> OidcConfig:
    """Raises: ConfigError."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config_from(doc, path.parent, str(path))


def config_from(doc: Mapping[str, Any], base: Path, where: str = "config") -> OidcConfig:
    issuer = doc.get("issuer")
    if not isinstance(issuer, str) or not _ISSUER.fullmatch(issuer) or issuer.endswith("/"):
        raise ConfigError(f"{where}: issuer must be https://host[:port][/path], no trailing /")
    if issuer.startswith("http://") and not issuer.startswith(
        ("http://127.0.0.1", "http://localhost")
    ):
        raise ConfigError(f"{where}: issuer must be https (http only on loopback)")
    database = doc.get("database", f"sqlite:///{base / 'oidc.db'}")
    if not isinstance(database, str):
        raise ConfigError(f"{where}: database must be a URL")
    trust: list[x509.Certificate] = []
    for name in doc.get("trust", []):
        try:
            trust += x509.load_pem_x509_certificates((base / str(name)).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}: trust {name}: {exc}") from None
    if not trust:
        raise ConfigError(f"{where}: trust must name at least one issuer certificate")
    key_file = base / str(doc.get("pairwise_key_file", "pairwise.key"))
    clients: dict[str, Client] = {}
    for raw in doc.get("client", []):
        client = _client(raw, base, where)
        if client.client_id in clients:
            raise ConfigError(f"{where}: client {client.client_id} twice")
        clients[client.client_id] = client
    return OidcConfig(
        issuer,
        database,
        tuple(trust),
        _pairwise_key(key_file, where),
        _relay(doc.get("relay"), base, where),
        clients,
    )


def _pairwise_key(path: Path, where: str) -> bytes:
    """The key of every ``sub``: made once, kept owner-only; losing it changes every
    person's ``sub`` at every client, so it is read, never silently replaced."""
    try:
        if not path.exists():
            atomic_write_bytes(path, secrets.token_bytes(32))
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: pairwise_key_file {path}: {exc}") from None
    if len(key) < 32:
        raise ConfigError(f"{where}: pairwise_key_file {path} holds under 32 bytes")
    return key


def _relay(raw: object, base: Path, where: str) -> RelaySide:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [relay] names the order relay this provider uses")
    known = {"url", "origin", "party", "client_cert", "client_key", "ca_file"}
    if not set(raw) <= known:
        raise ConfigError(f"{where}: [relay] takes {', '.join(sorted(known))}")
    url, party = raw.get("url"), raw.get("party")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ConfigError(f"{where}: relay.url must be https://…")
    if not isinstance(party, str) or not party:
        raise ConfigError(f"{where}: relay.party is this provider's party id at the relay")
    files = {}
    for name in ("client_cert", "client_key"):
        value = raw.get(name)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: relay.{name} must name a PEM file")
        files[name] = base / value
    ca = raw.get("ca_file")
    origin = raw.get("origin", url.rstrip("/"))
    if not isinstance(origin, str):
        raise ConfigError(f"{where}: relay.origin must be the relay's origin")
    return RelaySide(
        url,
        origin.rstrip("/"),
        party,
        files["client_cert"],
        files["client_key"],
        base / str(ca) if ca else None,
    )


def _client(raw: object, base: Path, where: str) -> Client:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a [[client]] is a table")
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise ConfigError(f"{where}: client_id must be 1-64 of A-Z a-z 0-9 . _ -")
    at = f"{where}: client {client_id}"
    uris = raw.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(_redirect_ok(u) for u in uris):
        raise ConfigError(f"{at}: redirect_uris must be https URLs (http on loopback)")
    method = raw.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ConfigError(f"{at}: token_endpoint_auth_method is one of {sorted(AUTH_METHODS)}")
    hashes = raw.get("client_secret_sha256", [])
    hashes = [hashes] if isinstance(hashes, str) else hashes
    if not isinstance(hashes, list) or not all(
        isinstance(h, str) and _SHA256.fullmatch(h) for h in hashes
    ):
        raise ConfigError(f"{at}: client_secret_sha256 is hex SHA-256 (a string or a list)")
    jwks = None
    if method == "private_key_jwt":
        jwks_file = raw.get("jwks_file")
        if not isinstance(jwks_file, str):
            raise ConfigError(f"{at}: private_key_jwt needs jwks_file (its public keys)")
        try:
            jwks = jose.load_jwks((base / jwks_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{at}: jwks_file: {exc}") from None
    elif not hashes:
        raise ConfigError(f"{at}: {method} needs client_secret_sha256")
    logout = raw.get("post_logout_redirect_uris", [])
    if not isinstance(logout, list) or not all(_redirect_ok(u) for u in logout):
        raise ConfigError(f"{at}: post_logout_redirect_uris must be https URLs")
    alg = raw.get("id_token_signed_response_alg", "ES256")
    if alg not in jose.ALGORITHMS:
        raise ConfigError(f"{at}: id_token_signed_response_alg is ES256 or RS256")
    name = raw.get("name", client_id)
    if not isinstance(name, str) or not 0 < len(name) <= 100 or not name.isprintable():
        raise ConfigError(f"{at}: name is 1-100 printable characters")
    return Client(
        client_id=client_id,
        redirect_uris=frozenset(uris),
        auth_method=method,
        secret_sha256=tuple(hashes),
        jwks=jwks,
        post_logout_redirect_uris=frozenset(logout),
        id_token_alg=alg,
        name=name,
    )


def _redirect_ok(uri: object) -> bool:
    if not isinstance(uri, str) or len(uri) > 1024 or "#" in uri or not uri.isascii():
        return False
    if uri.startswith("https://"):
        return True
    return uri.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))


def client_block(client_id: str, name: str, redirect_uri: str) -> tuple[str, str]:
    """A ``[[client]]`` block with a fresh secret, and the secret (shown once)."""
    import hashlib
    import json

    secret = secrets.token_urlsafe(32)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    block = (
        "\n[[client]]\n"
        f"client_id = {json.dumps(client_id)}\n"
        f"name = {json.dumps(name)}\n"
        f"redirect_uris = [{json.dumps(redirect_uri)}]\n"
        f'client_secret_sha256 = "{digest}"\n'
    )
    return block, secret
