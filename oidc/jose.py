"""The one importer of joserfc (ADR 0022): the provider's signing keys, its JWKS, the ID
tokens it signs, and the client assertions (private_key_jwt) it checks. Only ES256 and
RS256, named per key: ``alg: none`` and every other algorithm are refused wherever a
token comes in.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from joserfc import errors, jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

__all__ = [
    "ALGORITHMS",
    "AssertionRefused",
    "SigningKey",
    "check_client_assertion",
    "id_token_audience",
    "jwks",
    "load_jwks",
    "new_key",
    "sign_jwt",
]

ALGORITHMS = ("ES256", "RS256")
MAX_ASSERTION = 8192  # characters of a client assertion
# an assertion's life: Authlib's default is an hour; its jti is remembered that long
MAX_ASSERTION_SECONDS = 3600
MAX_JWKS = 64 * 1024  # characters of a client's JWKS in the configuration


@dataclass(frozen=True)
class SigningKey:
    """One of the provider's keys: its id, algorithm and private key (PEM), and when it
    stopped signing (None: it signs now). A retired key stays in the JWKS until every
    token it signed has expired."""

    kid: str
    alg: str
    pem: bytes
    created: dt.datetime
    retired: dt.datetime | None = None

    def _key(self) -> ECKey | RSAKey:
        params = {"kid": self.kid, "alg": self.alg, "use": "sig"}
        if self.alg == "ES256":
            return ECKey.import_key(self.pem, parameters=params)  # type: ignore[arg-type]
        return RSAKey.import_key(self.pem, parameters=params)  # type: ignore[arg-type]

    def public(self) -> dict[str, object]:
        return dict(self._key().as_dict(private=False))


def new_key(kid: str, alg: str, now: dt.datetime) -> SigningKey:
    """A fresh key: P-256 for ES256, 3072-bit RSA for RS256."""
    if alg == "ES256":
        key: ECKey | RSAKey = ECKey.generate_key("P-256", private=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(3072, private=True)
    else:
        raise ValueError(f"algorithm {alg} is not one of {ALGORITHMS}")
    return SigningKey(kid, alg, key.as_pem(private=True), now)


def jwks(keys: Sequence[SigningKey]) -> dict[str, object]:
    return {"keys": [k.public() for k in keys]}


def sign_jwt(key: SigningKey, claims: Mapping[str, object], typ: str = "JWT") -> str:
    header = {"alg": key.alg, "kid": key.kid, "typ": typ}
    return jwt.encode(header, dict(claims), key._key(), algorithms=[key.alg])


class AssertionRefused(Exception):
    """A client assertion that does not authenticate the client; the message says why
    (for the log only)."""


def check_client_assertion(
    assertion: str,
    client_jwks: Mapping[str, object],
    *,
    client_id: str,
    audiences: Sequence[str],
    now: dt.datetime,
) -> tuple[str, dt.datetime]:
    """RFC 7523 / OIDC private_key_jwt: ``iss`` and ``sub`` the client, ``aud`` the token
    endpoint or the issuer, unexpired, with a ``jti``; signed by one of the client's keys
    with ES256 or RS256, living at most MAX_ASSERTION_SECONDS. Returns the ``jti`` and
    when the assertion expires (its single use is the caller's to keep until then).
    Raises: AssertionRefused."""
    if len(assertion) > MAX_ASSERTION:
        raise AssertionRefused("too long")
    try:
        keys = KeySet.import_key_set(dict(client_jwks))  # type: ignore[arg-type]
        token = jwt.decode(assertion, keys, algorithms=list(ALGORITHMS))
    except (errors.JoseError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise AssertionRefused(f"{type(exc).__name__}") from None
    if token.header.get("alg") not in ALGORITHMS:
        raise AssertionRefused("algorithm")
    claims = token.claims
    registry = JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=30,
        iss={"essential": True, "value": client_id},
        sub={"essential": True, "value": client_id},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except (errors.JoseError, ValueError, TypeError) as exc:
        raise AssertionRefused(f"claims: {type(exc).__name__}") from None
    audience = claims.get("aud")
    named = [audience] if isinstance(audience, str) else audience
    if not isinstance(named, list) or not any(a in audiences for a in named):
        raise AssertionRefused("audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp - now.timestamp() > MAX_ASSERTION_SECONDS:
        raise AssertionRefused("an assertion lives at most an hour")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise AssertionRefused("jti")
    return jti, dt.datetime.fromtimestamp(exp, dt.UTC)


def id_token_audience(token: str, keys: Sequence[SigningKey]) -> str:
    """The client an ID token of this provider was issued to (``id_token_hint``: its
    signature must be one of ``keys``'; an expired one still names its client).
    Raises: AssertionRefused."""
    try:
        keyset = KeySet([k._key() for k in keys])
        decoded = jwt.decode(token, keyset, algorithms=list(ALGORITHMS))
    except (errors.JoseError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise AssertionRefused(type(exc).__name__) from None
    audience = decoded.claims.get("aud")
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    if not isinstance(audience, str):
        raise AssertionRefused("aud")
    return audience


def load_jwks(text: str) -> dict[str, object]:
    """A client's JWKS from its configuration (public keys only). Raises: ValueError."""
    if len(text) > MAX_JWKS:
        raise ValueError("a JWKS of at most 64 kB")
    parsed = json.loads(text)
    keys = KeySet.import_key_set(parsed)
    if any(k.is_private for k in keys):
        raise ValueError("a client's JWKS holds public keys only")
    return dict(parsed)
