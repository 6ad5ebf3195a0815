"""The OpenID Provider's rules. Pure: requests come in as plain mappings, time and keys as
arguments; what is allowed, and the claims, go out.

Only the authorization code flow, PKCE with S256 for every client (RFC 7636, RFC 9700),
exact redirect URIs. A request that names no registered client, or a redirect URI that is
not exactly one of the client's, is answered on the provider's own page and never
redirected (no open redirect on any error path); every other refusal goes back to the
client's redirect URI with ``error``, ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber

__all__ = [
    "ACCESS_SECONDS",
    "AMR",
    "CODE_SECONDS",
    "EVIDENCE_SCOPE",
    "LOGIN_SECONDS",
    "PNR_CLAIM",
    "PNR_SCOPE",
    "SIGN_TYPE",
    "AuthRequest",
    "AuthorizeError",
    "Client",
    "Person",
    "acr_for",
    "claims_for",
    "expired",
    "pairwise_sub",
    "parse_authorize",
    "pkce_matches",
    "redirect_with",
]

CODE_SECONDS = 60  # an authorization code lives this long, and is redeemed once
LOGIN_SECONDS = 600  # a login page waits this long for the person
ACCESS_SECONDS = 600  # access and ID tokens
MAX_PARAMETER = 2048  # characters, any parameter; a URL-sized authorize request
MAX_STATE = 512
MAX_SIGN_TEXT = 40_000  # characters the person is shown to sign (BankID's limit in base64)

# The Swedish national OIDC profile's names (OIDC Sweden Attribute Specification, used by
# Sweden Connect and the Swedish e-ID providers): a published standard, where each broker
# otherwise has its own (``ssn``, ``nin``, ...).
PNR_SCOPE = "https://id.oidc.se/scope/naturalPersonNumber"
PNR_CLAIM = "https://id.oidc.se/claim/personalIdentityNumber"
EVIDENCE_SCOPE = "evidence"  # the XML signature and the OCSP response, for sites that keep proof
PROFILE_SCOPE = "profile"
SCOPES = frozenset({"openid", PROFILE_SCOPE, PNR_SCOPE, EVIDENCE_SCOPE})
SIGN_TYPE = "eid_agent_signature"  # RFC 9396 authorization_details type: signing

# What the person used, from the certificate's policy (never the agent's word): RFC 8176
ACR_PREFIX = "urn:eid-agent:acr:bankid-"
AMR = {"file": ("pwd",), "card": ("sc", "pin"), "token": ("hwk", "pin")}

_PKCE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
_PROMPTS = frozenset({"login", "consent", "select_account"})


@dataclass(frozen=True)
class Client:
    """A registered client. ``secret_sha256``: hex SHA-256 of each secret it may use (a
    list, to roll a secret); ``jwks``: its public keys for private_key_jwt."""

    client_id: str
    redirect_uris: frozenset[str]
    auth_method: str = "client_secret_basic"
    secret_sha256: tuple[str, ...] = ()
    jwks: Mapping[str, object] | None = None
    post_logout_redirect_uris: frozenset[str] = frozenset()
    id_token_alg: str = "ES256"  # noqa: S105 - an algorithm, not a secret
    name: str = ""

    def secret_matches(self, secret: str) -> bool:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return any(hmac.compare_digest(digest, known) for known in self.secret_sha256)


@dataclass(frozen=True)
class AuthRequest:
    """An authorize request that may be carried out."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    max_age: int | None = None
    ui_locales: tuple[str, ...] = ()
    sign_text: str | None = None  # a signing request (RAR): exactly what the person signs
    details: tuple[Mapping[str, object], ...] = field(default=())  # as the client sent them
    # the client's guess of who logs in (a personal number): used only if the person
    # confirms it on the login page, and then the relay's order is for that person only
    login_hint: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": list(self.scope),
                "state": self.state,
                "nonce": self.nonce,
                "code_challenge": self.code_challenge,
                "max_age": self.max_age,
                "ui_locales": list(self.ui_locales),
                "sign_text": self.sign_text,
                "details": list(self.details),
                "login_hint": self.login_hint,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> AuthRequest:
        raw = json.loads(text)
        return cls(
            client_id=raw["client_id"],
            redirect_uri=raw["redirect_uri"],
            scope=tuple(raw["scope"]),
            state=raw["state"],
            nonce=raw["nonce"],
            code_challenge=raw["code_challenge"],
            max_age=raw["max_age"],
            ui_locales=tuple(raw["ui_locales"]),
            sign_text=raw["sign_text"],
            details=tuple(raw["details"]),
            login_hint=raw.get("login_hint"),
        )


class AuthorizeError(Exception):
    """``redirect``: the client's redirect URI the error goes to (None: shown on the
    provider's own page, the client or its redirect URI being unknown)."""

    def __init__(
        self, error: str, description: str, *, redirect: str | None, state: str | None = None
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description = error, description
        self.redirect, self.state = redirect, state


@dataclass(frozen=True)
class Person:
    personal_number: str
    name: str
    given_name: str
    surname: str
    birthdate: str  # YYYY-MM-DD
    token_kind: str  # file, card or token: from the certificate's policy


def _text(value: str, name: str, limit: int = MAX_PARAMETER) -> str:
    if len(value) > limit or any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError(name)
    return value


def parse_authorize(
    params: Mapping[str, Sequence[str]], clients: Mapping[str, Client]
) -> AuthRequest:
    """``params``: every value of each query (or form) parameter. Raises: AuthorizeError."""

    def one(name: str) -> str | None:
        values = params.get(name, ())
        if len(values) > 1:
            raise ValueError(name)
        limit = 2 * MAX_SIGN_TEXT if name == "authorization_details" else MAX_PARAMETER
        return _text(values[0], name, limit) if values else None

    try:
        client_id, redirect_uri = one("client_id"), one("redirect_uri")
    except ValueError as exc:
        raise AuthorizeError("invalid_request", f"{exc} is malformed", redirect=None) from None
    client = clients.get(client_id or "")
    if client is None:
        raise AuthorizeError("invalid_request", "unknown client_id", redirect=None)
    if redirect_uri is None or redirect_uri not in client.redirect_uris:
        raise AuthorizeError(
            "invalid_request", "redirect_uri is not registered for the client", redirect=None
        )
    state: str | None = None
    try:
        state = one("state")
        if state is not None and len(state) > MAX_STATE:
            raise ValueError("state")
    except ValueError:
        raise AuthorizeError(
            "invalid_request", "state is malformed", redirect=redirect_uri
        ) from None

    def refuse(error: str, description: str) -> AuthorizeError:
        return AuthorizeError(error, description, redirect=redirect_uri, state=state)

    try:
        response_type, scope, nonce = one("response_type"), one("scope"), one("nonce")
        challenge, method = one("code_challenge"), one("code_challenge_method")
        prompt, max_age, locales = one("prompt"), one("max_age"), one("ui_locales")
        details_text = one("authorization_details")
        hint = one("login_hint")
        for unsupported in ("request", "request_uri", "registration"):
            if one(unsupported) is not None:
                raise refuse(f"{unsupported}_not_supported", f"{unsupported} is not supported")
        response_mode = one("response_mode")
    except ValueError as exc:
        raise refuse("invalid_request", f"{exc} is malformed or repeated") from None
    if response_type != "code":
        raise refuse("unsupported_response_type", "only response_type=code")
    if response_mode not in (None, "query"):
        raise refuse("invalid_request", "only response_mode=query")
    scopes = tuple(dict.fromkeys((scope or "").split(" ")))
    if "openid" not in scopes:
        raise refuse("invalid_scope", "scope must include openid")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise refuse("invalid_scope", "unknown scope")
    if challenge is None:
        raise refuse("invalid_request", "PKCE is required: code_challenge with S256")
    if method != "S256":
        raise refuse("invalid_request", "code_challenge_method must be S256")
    if not _CHALLENGE.fullmatch(challenge):
        raise refuse("invalid_request", "code_challenge is not a SHA-256 in base64url")
    if nonce is not None and len(nonce) > MAX_STATE:
        raise refuse("invalid_request", "nonce is too long")
    if prompt is not None:
        asked = set(prompt.split(" "))
        if "none" in asked:
            raise refuse("login_required", "every login asks the person")
        if not asked <= _PROMPTS:
            raise refuse("invalid_request", "unknown prompt")
    age: int | None = None
    if max_age is not None:
        if not max_age.isdigit() or len(max_age) > 9:
            raise refuse("invalid_request", "max_age is a number of seconds")
        age = int(max_age)
    sign_text, details = _details(details_text, refuse)
    return AuthRequest(
        login_hint=_personal_number(hint),
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scopes,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        max_age=age,
        ui_locales=tuple(locales.split(" ")) if locales else (),
        sign_text=sign_text,
        details=details,
    )


def _details(
    text: str | None, refuse: Callable[[str, str], AuthorizeError]
) -> tuple[str | None, tuple[Mapping[str, object], ...]]:
    """RFC 9396 ``authorization_details``: one entry of type SIGN_TYPE whose ``text`` the
    person signs. No text, no signing."""
    if text is None:
        return None, ()
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise refuse("invalid_authorization_details", "not JSON") from None
    if not isinstance(parsed, list) or len(parsed) != 1 or not isinstance(parsed[0], dict):
        raise refuse("invalid_authorization_details", "exactly one entry")
    entry = parsed[0]
    if entry.get("type") != SIGN_TYPE:
        raise refuse("invalid_authorization_details", f"the type must be {SIGN_TYPE}")
    if set(entry) != {"type", "text"}:
        raise refuse("invalid_authorization_details", "an entry is exactly {type, text}")
    sign = entry["text"]
    if not isinstance(sign, str) or not sign.strip() or len(sign) > MAX_SIGN_TEXT:
        raise refuse("invalid_authorization_details", "text is what the person signs")
    try:
        _text(sign.replace("\n", " ").replace("\t", " "), "text", MAX_SIGN_TEXT)
    except ValueError:
        raise refuse("invalid_authorization_details", "text has control characters") from None
    return sign, (entry,)


def _personal_number(hint: str | None) -> str | None:
    """A hint that is a personal number (12 digits, a valid one); any other hint is
    advisory and ignored (OIDC Core 3.1.2.1)."""
    if hint is None:
        return None
    try:
        return str(PersonalNumber.parse(hint))
    except InvalidPersonalNumber:
        return None


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge."""
    if not _PKCE.fullmatch(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)


def pairwise_sub(key: bytes, client: Client, personal_number: str) -> str:
    """The person's ``sub`` at one client: a keyed hash, so two clients cannot join their
    users and nobody without the key can go back to the personal number."""
    mac = hmac.new(key, f"{client.client_id}\n{personal_number}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def acr_for(token_kind: str) -> str:
    return ACR_PREFIX + token_kind


def claims_for(
    person: Person, scope: Sequence[str], evidence: Mapping[str, str] | None
) -> dict[str, object]:
    """What the scopes grant beyond ``sub``: names, the personal number, the evidence."""
    claims: dict[str, object] = {}
    if PROFILE_SCOPE in scope:
        claims.update(
            name=person.name,
            given_name=person.given_name,
            family_name=person.surname,
            birthdate=person.birthdate,
        )
    if PNR_SCOPE in scope:
        claims[PNR_CLAIM] = person.personal_number
    if EVIDENCE_SCOPE in scope and evidence:
        claims["evidence"] = dict(evidence)
    return claims


def redirect_with(uri: str, values: Mapping[str, str | None]) -> str:
    """The client's redirect URI with ``values`` added to its query (None left out)."""
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in values.items() if v is not None]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def expired(created: dt.datetime, now: dt.datetime, seconds: int) -> bool:
    return now - created > dt.timedelta(seconds=seconds)
