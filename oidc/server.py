"""The OpenID Provider's HTTP side (aiohttp): discovery, JWKS, authorize and the login
page, token, userinfo and RP-initiated logout. It is a relying party of an order relay
like any website: it starts each login or signature at the relay with its own client
certificate (``rp.RelayApi``), sends the person's browser to the agent with the
``eid-agent://`` link, and verifies every result with the rp kit. It never talks to
agents.

A login completes only when both hold (the relay attack, ``rp.relay``): the relay says
the order is complete, and *this browser* — the one that started the login, known by a
cookie — came back through the order's return URL with its one-time value. A leaked
login page or return URL gives another browser nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hmac
import json
import logging
import secrets
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

import rp
from eidcore.messages import Language, Term
from eidcore.personal_number import PersonalNumber
from oidc import jose, pages, rules
from oidc.config import OidcConfig
from oidc.store import Login, OidcStore, digest
from rp.webmessages import HINTS, RELAY_HINTS

__all__ = ["Provider", "build_app"]

log = logging.getLogger("oidc")

STATIC = Path(__file__).parent / "static"
COOKIE = "eid_oidc_browser"
RETURN_PATH = "/login/return"
MAX_FORM = 64 * 1024
KEYS_SECONDS = 30.0  # keys are read again this often (another process may have rotated)
Now = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Refused(Exception):
    """A token or userinfo request refused with an OAuth error."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description


@dataclass
class Provider:
    config: OidcConfig
    store: OidcStore
    relay: rp.RelayApi
    now: Now = _now
    _keys: list[jose.SigningKey] | None = None
    _keys_read: float = 0.0

    # -- what does not change ---------------------------------------------------------------

    def discovery(self) -> dict[str, object]:
        issuer = self.config.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "end_session_endpoint": f"{issuer}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": list(jose.ALGORITHMS),
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": list(jose.ALGORITHMS),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": sorted(rules.SCOPES),
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "name",
                "given_name",
                "family_name",
                "birthdate",
                rules.PNR_CLAIM,
                "evidence",
            ],
            "acr_values_supported": [rules.acr_for(k) for k in rules.AMR],
            "authorization_response_iss_parameter_supported": True,
            "authorization_details_types_supported": [rules.SIGN_TYPE],
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "ui_locales_supported": ["sv", "en"],
            "claims_parameter_supported": False,
        }

    async def keys(self) -> list[jose.SigningKey]:
        loop = asyncio.get_running_loop()
        if self._keys is None or loop.time() - self._keys_read > KEYS_SECONDS:
            self._keys = await asyncio.to_thread(self.store.signing_keys)
            self._keys_read = loop.time()
        return self._keys

    async def signing_key(self, alg: str) -> jose.SigningKey:
        current = [k for k in await self.keys() if k.alg == alg and k.retired is None]
        if not current:  # first use of this algorithm: made once, by whoever comes first
            made = jose.new_key(uuid.uuid4().hex, alg, self.now())
            await asyncio.to_thread(self.store.ensure_key, alg, made)
            self._keys = None
            current = [k for k in await self.keys() if k.alg == alg and k.retired is None]
        return current[-1]

    # -- the relay --------------------------------------------------------------------------

    async def _relay(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return await asyncio.to_thread(call)

    async def advance(self, login: Login) -> Login:
        """Asks the relay about a started login's order and keeps what it says (a
        complete result verified here with the rp kit first)."""
        if login.phase != "started" or login.order_ref is None:
            return login
        ref = login.order_ref
        try:
            collected = await self._relay(lambda: self.relay.collect(ref))
        except (rp.RelayApiError, OSError) as exc:
            log.info("login %s: collect failed: %s", login.id_hash[:8], exc)
            return login
        status, hint = collected.get("status"), collected.get("hintCode")
        if status == "pending":
            if hint != login.hint and isinstance(hint, str):
                await asyncio.to_thread(
                    self.store.update, login.id_hash, phase="started", hint=hint
                )
            return await self._reload(login)
        if status == "failed":
            hint = hint if isinstance(hint, str) else "startFailed"
            await asyncio.to_thread(self.store.update, login.id_hash, phase="failed", hint=hint)
            return await self._reload(login)
        if status != "complete":
            return login
        request = rules.AuthRequest.from_json(login.request)
        try:
            result = self._verified(collected, request, ref)
        except (rp.VerificationError, KeyError, TypeError, ValueError) as exc:
            log.warning("login %s: the relay's result does not verify: %s", login.id_hash[:8], exc)
            await asyncio.to_thread(
                self.store.update, login.id_hash, phase="failed", hint="certificateErr"
            )
            return await self._reload(login)
        await asyncio.to_thread(
            self.store.update, login.id_hash, phase="complete", hint=None, result=result
        )
        return await self._reload(login)

    def _verified(
        self, collected: Mapping[str, Any], request: rules.AuthRequest, ref: str
    ) -> dict[str, object]:
        """The person and the evidence, from a result the rp kit verified for this
        provider (its party id, the relay's origin, this order, the text it asked)."""
        data = collected["completionData"]
        verified = rp.verify_xml_signature(
            data["signature"],
            order_type="sign" if request.sign_text is not None else "auth",
            expected_origin=self.config.relay.origin,
            party=self.config.relay.party,
            order_ref=ref,
            trust_anchors=list(self.config.trust),
            now=self.now(),
            user_visible_data=request.sign_text,
            ocsp_response=data.get("ocspResponse"),
        )
        if verified.token_kind not in rules.AMR:
            raise rp.VerificationError("the certificate names no kind of BankID")
        person = verified.person
        number = PersonalNumber.parse(person.personal_number)
        # what a site that keeps proof verifies again: the XML names this order
        evidence = {"signature": data["signature"], "orderRef": ref}
        if isinstance(data.get("ocspResponse"), str):
            evidence["ocspResponse"] = data["ocspResponse"]
        return {
            "person": {
                "personal_number": person.personal_number,
                "name": person.name,
                "given_name": person.given_name,
                "surname": person.surname,
                "birthdate": number.birth_date.isoformat(),
                "token_kind": verified.token_kind,
            },
            "evidence": evidence,
            "auth_time": int(self.now().timestamp()),
        }

    async def _reload(self, login: Login) -> Login:
        again = await asyncio.to_thread(self.store.login, login.id_hash)
        return again or login

    # -- finishing ---------------------------------------------------------------------------

    async def finish(self, login: Login) -> str | None:
        """The client's redirect with a fresh code, once the login is complete and its
        browser came back; None while not."""
        if login.phase != "complete" or not login.returned or login.result is None:
            return None
        request = rules.AuthRequest.from_json(login.request)
        code = secrets.token_urlsafe(32)
        grant = {
            "request": json.loads(login.request),
            "result": dict(login.result),
        }
        made = await asyncio.to_thread(
            self.store.finish, login.id_hash, digest(code), request.client_id, grant, self.now()
        )
        if not made:
            return None
        return rules.redirect_with(
            request.redirect_uri,
            {"code": code, "state": request.state, "iss": self.config.issuer},
        )

    def failure_redirect(self, login: Login) -> str:
        request = rules.AuthRequest.from_json(login.request)
        hint = login.hint or "cancelled"
        return rules.redirect_with(
            request.redirect_uri,
            {
                "error": "access_denied",
                "error_description": hint,
                "state": request.state,
                "iss": self.config.issuer,
            },
        )

    # -- tokens -----------------------------------------------------------------------------

    def authenticate(
        self, form: MultiDictProxy[str], authorization: str | None
    ) -> tuple[rules.Client, tuple[str, dt.datetime] | None]:
        """The client a token request comes from, by its registered method, and the
        ``jti`` of its assertion (private_key_jwt: used once, the caller's check).
        Raises: _Refused."""
        clients = self.config.clients
        assertion_type = _one(form, "client_assertion_type")
        if authorization is not None:
            if _one(form, "client_secret") is not None or assertion_type is not None:
                # one method per request (RFC 6749 2.3)
                raise _Refused(400, "invalid_request", "more than one client authentication")
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise _Refused(401, "invalid_client", "client authentication failed")
            try:
                decoded = base64.b64decode(value, validate=True).decode()
                raw_id, _, raw_secret = decoded.partition(":")
                client_id = urllib.parse.unquote_plus(raw_id)
                secret = urllib.parse.unquote_plus(raw_secret)
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise _Refused(401, "invalid_client", "client authentication failed") from None
            client = clients.get(client_id)
            if client is None or client.auth_method != "client_secret_basic":
                raise _Refused(401, "invalid_client", "client authentication failed")
            if not client.secret_matches(secret):
                raise _Refused(401, "invalid_client", "client authentication failed")
            return client, None
        if assertion_type is not None:
            if assertion_type != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                raise _Refused(401, "invalid_client", "unknown client_assertion_type")
            return self._assertion(form)
        posted = clients.get(_one(form, "client_id") or "")
        given = _one(form, "client_secret")
        if posted is None or posted.auth_method != "client_secret_post" or given is None:
            raise _Refused(401, "invalid_client", "client authentication failed")
        if not posted.secret_matches(given):
            raise _Refused(401, "invalid_client", "client authentication failed")
        return posted, None

    def _assertion(self, form: MultiDictProxy[str]) -> tuple[rules.Client, tuple[str, dt.datetime]]:
        assertion = _one(form, "client_assertion") or ""
        named = _one(form, "client_id")
        try:
            unverified = json.loads(_b64url(assertion.split(".")[1]))
            client_id = unverified.get("iss") if isinstance(unverified, dict) else None
        except (IndexError, ValueError, binascii.Error, RecursionError):
            raise _Refused(401, "invalid_client", "client_assertion is malformed") from None
        client = self.config.clients.get(client_id if isinstance(client_id, str) else "")
        if client is None or client.auth_method != "private_key_jwt" or client.jwks is None:
            raise _Refused(401, "invalid_client", "client authentication failed")
        if named is not None and named != client.client_id:
            raise _Refused(401, "invalid_client", "client_id and the assertion disagree")
        try:
            once = jose.check_client_assertion(
                assertion,
                client.jwks,
                client_id=client.client_id,
                audiences=[f"{self.config.issuer}/token", self.config.issuer],
                now=self.now(),
            )
        except jose.AssertionRefused as exc:
            log.info("client %s: assertion refused: %s", client.client_id, exc)
            raise _Refused(401, "invalid_client", "client authentication failed") from None
        return client, once

    async def token(
        self, form: MultiDictProxy[str], authorization: str | None
    ) -> dict[str, object]:
        """Raises: _Refused."""
        client, once = self.authenticate(form, authorization)
        now = self.now()
        if once is not None:
            seen = await asyncio.to_thread(self.store.assertion_seen, once[0], once[1], now)
            if seen:
                raise _Refused(401, "invalid_client", "a client assertion is used once")
        if _one(form, "grant_type") != "authorization_code":
            raise _Refused(400, "unsupported_grant_type", "only authorization_code")
        code, verifier = _one(form, "code"), _one(form, "code_verifier")
        redirect_uri = _one(form, "redirect_uri")
        if not code or len(code) > 256:
            raise _Refused(400, "invalid_grant", "no code")
        redeemed = await asyncio.to_thread(self.store.redeem, digest(code), client.client_id)
        if redeemed.replayed:
            log.warning(
                "client %s: a code was presented twice; its tokens are revoked", client.client_id
            )
        granted = redeemed.code
        if granted is None:
            raise _Refused(400, "invalid_grant", "the code is unknown, used or another client's")
        if rules.expired(granted.created, now, rules.CODE_SECONDS):
            raise _Refused(400, "invalid_grant", "the code has expired")
        request = rules.AuthRequest.from_json(json.dumps(granted.grant["request"]))
        if redirect_uri != request.redirect_uri:
            raise _Refused(400, "invalid_grant", "redirect_uri differs from the authorization's")
        if verifier is None or not rules.pkce_matches(verifier, request.code_challenge):
            raise _Refused(400, "invalid_grant", "code_verifier does not match")
        result = granted.grant["result"]
        assert isinstance(result, dict)
        person = rules.Person(**result["person"])
        sub = rules.pairwise_sub(self.config.pairwise_key, client, person.personal_number)
        access = secrets.token_urlsafe(32)
        expires = now + dt.timedelta(seconds=rules.ACCESS_SECONDS)
        grant = {"sub": sub, "scope": list(request.scope), "result": result}
        await asyncio.to_thread(
            self.store.add_token, digest(access), digest(code), client.client_id, grant, expires
        )
        claims: dict[str, object] = {
            "iss": self.config.issuer,
            "sub": sub,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "auth_time": result["auth_time"],
            "acr": rules.acr_for(person.token_kind),
            "amr": list(rules.AMR[person.token_kind]),
        }
        if request.nonce is not None:
            claims["nonce"] = request.nonce
        claims.update(rules.claims_for(person, request.scope, None))
        key = await self.signing_key(client.id_token_alg)
        answer: dict[str, object] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": rules.ACCESS_SECONDS,
            "id_token": jose.sign_jwt(key, claims),
            "scope": " ".join(request.scope),
        }
        if request.sign_text is not None:  # a signature: the evidence comes with it
            answer["authorization_details"] = list(request.details)
            answer["evidence"] = result["evidence"]
        return answer

    async def userinfo(self, authorization: str | None) -> dict[str, object]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > 256:
            raise _Refused(401, "invalid_token", "a bearer access token")
        grant = await asyncio.to_thread(self.store.token, digest(token), self.now())
        if grant is None:
            raise _Refused(401, "invalid_token", "the access token is unknown or expired")
        result = grant["result"]
        assert isinstance(result, dict)
        person = rules.Person(**result["person"])
        scope = grant["scope"]
        assert isinstance(scope, list)
        return {"sub": grant["sub"], **rules.claims_for(person, scope, result["evidence"])}


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _one(form: MultiDictProxy[str] | MultiDict[str], name: str) -> str | None:
    values = form.getall(name, [])
    if len(values) > 1:
        raise _Refused(400, "invalid_request", f"{name} repeated")
    return values[0] if values else None


# -- the application --------------------------------------------------------------------------

PROVIDER = web.AppKey("provider", Provider)


def build_app(provider: Provider) -> web.Application:
    app = web.Application(client_max_size=MAX_FORM, middlewares=[_no_traceback])
    app[PROVIDER] = provider
    app.router.add_get("/.well-known/openid-configuration", _discovery)
    app.router.add_get("/jwks", _jwks)
    app.router.add_route("GET", "/authorize", _authorize)
    app.router.add_route("POST", "/authorize", _authorize)
    app.router.add_get("/login", _login_page)
    app.router.add_post("/login/start", _login_start)
    app.router.add_get("/login/status", _login_status)
    app.router.add_get(RETURN_PATH, _login_return)
    app.router.add_post("/login/cancel", _login_cancel)
    app.router.add_get("/login/abort", _login_abort)
    app.router.add_post("/token", _token)
    app.router.add_route("GET", "/userinfo", _userinfo)
    app.router.add_route("POST", "/userinfo", _userinfo)
    app.router.add_get("/logout", _logout)
    app.router.add_static("/static", STATIC, show_index=False)
    return app


@web.middleware
async def _no_traceback(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Whatever goes wrong, the wire gets a plain answer and the log one line."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:  # the one place every request's failure ends
        log.error("%s %s failed: %s: %s", request.method, request.path, type(exc).__name__, exc)
        return web.json_response(
            {"error": "server_error", "error_description": "the provider failed"}, status=500
        )


def _json(body: Mapping[str, object], status: int = 200) -> web.Response:
    return web.json_response(
        body, status=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


def _html(text: str, status: int = 200, cookie: tuple[str, bool] | None = None) -> web.Response:
    response = web.Response(
        text=text, status=status, content_type="text/html", headers=pages.HEADERS
    )
    if cookie is not None:
        value, secure = cookie
        response.set_cookie(COOKIE, value, httponly=True, secure=secure, samesite="Lax", path="/")
    return response


def _language(request: web.Request, ui_locales: tuple[str, ...] = ()) -> Language:
    return pages.language_for(ui_locales, request.headers.get("Accept-Language", ""))


async def _discovery(request: web.Request) -> web.Response:
    return web.json_response(request.app[PROVIDER].discovery())


async def _jwks(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    await provider.signing_key("ES256")  # a fresh provider has one before anyone asks
    keys = await provider.keys()
    horizon = provider.now() - dt.timedelta(seconds=rules.ACCESS_SECONDS)
    shown = [k for k in keys if k.retired is None or k.retired > horizon]
    return web.json_response(jose.jwks(shown), headers={"Cache-Control": "max-age=60"})


async def _params(request: web.Request) -> MultiDict[str]:
    """The query (or form) strictly: bytes that are not UTF-8 (a lone surrogate's, say)
    are refused rather than turned into U+FFFD. Raises: ValueError."""
    if request.method == "POST":
        if request.content_type != "application/x-www-form-urlencoded":
            raise ValueError("a form")
        raw = (await request.read()).decode("ascii")
    else:
        raw = request.rel_url.raw_query_string
    pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, errors="strict")
    return MultiDict(pairs)


async def _authorize(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    language = _language(request)
    try:
        params = await _params(request)
    except (ValueError, UnicodeDecodeError):
        return _html(
            pages.error_page(language, Term.OIDC_BAD_REQUEST, error="invalid_request"), 400
        )
    grouped = {k: params.getall(k) for k in params}
    try:
        auth = rules.parse_authorize(grouped, provider.config.clients)
    except rules.AuthorizeError as exc:
        log.info("authorize refused: %s", exc.error)
        if exc.redirect is None:
            return _html(pages.error_page(language, Term.OIDC_BAD_REQUEST, error=exc.error), 400)
        target = rules.redirect_with(
            exc.redirect,
            {
                "error": exc.error,
                "error_description": exc.description,
                "state": exc.state,
                "iss": provider.config.issuer,
            },
        )
        raise web.HTTPFound(target) from None
    browser = request.cookies.get(COOKIE)
    fresh = browser is None or not 20 <= len(browser) <= 100
    if fresh:
        browser = secrets.token_urlsafe(32)
    assert browser is not None
    login_id = secrets.token_urlsafe(32)
    await asyncio.to_thread(
        provider.store.new_login, digest(login_id), digest(browser), auth.to_json(), provider.now()
    )
    response = web.HTTPSeeOther(f"/login?l={login_id}", headers=pages.HEADERS)
    if fresh:
        response.set_cookie(
            COOKIE, browser, httponly=True, secure=provider.config.secure, samesite="Lax", path="/"
        )
    raise response


async def _own_login(request: web.Request, login_id: str | None) -> Login | web.Response:
    """The login ``login_id`` names, if this browser started it; else the page that says
    why not."""
    provider = request.app[PROVIDER]
    language = _language(request)
    if not login_id or len(login_id) > 100:
        return _html(pages.error_page(language, Term.OIDC_UNKNOWN_LOGIN), 404)
    login = await asyncio.to_thread(provider.store.login, digest(login_id))
    now = provider.now()
    if login is None or rules.expired(login.created, now, rules.LOGIN_SECONDS):
        return _html(pages.error_page(language, Term.OIDC_UNKNOWN_LOGIN), 404)
    browser = request.cookies.get(COOKIE, "")
    if not hmac.compare_digest(digest(browser), login.browser_hash):
        log.info("login %s: asked for from another browser", login.id_hash[:8])
        return _html(pages.error_page(language, Term.OIDC_OTHER_BROWSER), 403)
    return login


def _hint_status(login: Login, kind: str, language: Language) -> tuple[str, str] | None:
    if login.phase == "new":
        return None
    hint = login.hint or "outstandingTransaction"
    if login.phase == "failed" and hint == "otherBrowser":  # its return URL came elsewhere
        return pages.term_text(Term.OIDC_ERROR_TITLE, Term.OIDC_OTHER_BROWSER, language)
    code = RELAY_HINTS.get(hint, HINTS.get(hint, {})).get(kind) or HINTS["startFailed"][kind]
    return pages.status_text(code, language)


async def _render(request: web.Request, login: Login, login_id: str) -> web.Response:
    provider = request.app[PROVIDER]
    auth = rules.AuthRequest.from_json(login.request)
    language = _language(request, auth.ui_locales)
    client = provider.config.clients[auth.client_id]
    kind = "sign" if auth.sign_text is not None else "auth"
    link = None
    if login.phase in ("started", "complete") and login.order_ref is not None:
        link = _link(provider, login)
    hint = PersonalNumber.parse(auth.login_hint).masked() if auth.login_hint else None
    text = pages.login_page(
        language=language,
        client=client.name,
        login_id=login_id,
        sign_text=auth.sign_text,
        link=link,
        status=_hint_status(login, kind, language),
        finished=login.phase == "failed",
        hint=hint,
    )
    return _html(text)


def _link(provider: Provider, login: Login) -> str:
    """The agent's link for the login's order."""
    query = {"autostarttoken": login.autostart or "", "server": provider.config.relay.origin}
    return "eid-agent:///?" + urllib.parse.urlencode(query)


async def _login_page(request: web.Request) -> web.Response:
    login_id = request.query.get("l")
    login = await _own_login(request, login_id)
    if isinstance(login, web.Response):
        return login
    assert login_id is not None
    provider = request.app[PROVIDER]
    login = await provider.advance(login)
    target = await provider.finish(login)
    if target is not None:
        raise web.HTTPSeeOther(target)
    return await _render(request, login, login_id)


async def _posted_login(
    request: web.Request,
) -> tuple[MultiDictProxy[str | bytes | Any], str, Login] | web.Response:
    """A form a login page posts (``l``: its login): the form, the id and the login, if
    this browser started it; else the page that says why not."""
    form = await request.post()
    login_id = form.get("l")
    login = await _own_login(request, login_id if isinstance(login_id, str) else None)
    if isinstance(login, web.Response):
        return login
    assert isinstance(login_id, str)  # _own_login answers anything else with its page
    return form, login_id, login


async def _login_start(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    posted = await _posted_login(request)
    if isinstance(posted, web.Response):
        return posted
    form, login_id, login = posted
    if login.phase == "new":
        auth = rules.AuthRequest.from_json(login.request)
        value = secrets.token_urlsafe(32)
        back = f"{provider.config.issuer}{RETURN_PATH}?" + urllib.parse.urlencode(
            {"l": login_id, rp.RETURN_PARAMETER: value}
        )
        ip = request.remote or "127.0.0.1"
        client = provider.config.clients[auth.client_id]
        fields: dict[str, Any] = {"returnUrl": back}
        if form.get("hint") == "yes" and auth.login_hint is not None:  # the person said so
            fields["requirement"] = {"personalNumber": auth.login_hint}
        try:
            if auth.sign_text is not None:
                text = base64.b64encode(auth.sign_text.encode()).decode()
                started = await provider._relay(lambda: provider.relay.sign(ip, text, **fields))
            else:
                started = await provider._relay(lambda: provider.relay.auth(ip, **fields))
            ref, token = str(started["orderRef"]), str(started["autoStartToken"])
        except (rp.RelayApiError, OSError, KeyError) as exc:
            log.warning(
                "login for %s: the relay did not start the order: %s", client.client_id, exc
            )
            language = _language(request, auth.ui_locales)
            return _html(
                pages.error_page(language, Term.OIDC_BAD_REQUEST, error="temporarily_unavailable"),
                503,
            )
        await asyncio.to_thread(provider.store.started, login.id_hash, ref, digest(value), token)
    raise web.HTTPSeeOther(f"/login?l={login_id}")


async def _login_status(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    login_id = request.query.get("l")
    login = await _own_login(request, login_id)
    if isinstance(login, web.Response):
        return _json({"finished": True}, status=login.status)
    login = await provider.advance(login)
    target = await provider.finish(login)
    auth = rules.AuthRequest.from_json(login.request)
    language = _language(request, auth.ui_locales)
    kind = "sign" if auth.sign_text is not None else "auth"
    status = _hint_status(login, kind, language)
    body: dict[str, object] = {"phase": login.phase, "finished": login.phase == "failed"}
    if status is not None:
        body.update(title=status[0], body=status[1])
    if target is not None:
        body["next"] = target
    return _json(body)


async def _login_return(request: web.Request) -> web.Response:
    """The agent sent the person's browser back. Spent by its first use; a login goes
    on only in the browser that started it."""
    provider = request.app[PROVIDER]
    language = _language(request)
    value = request.query.get(rp.RETURN_PARAMETER, "")
    login_id = request.query.get("l", "")
    if not value or len(value) > 100 or len(login_id) > 100:
        return _html(pages.error_page(language, Term.OIDC_UNKNOWN_LOGIN), 404)
    browser = request.cookies.get(COOKIE, "")
    login = await asyncio.to_thread(provider.store.returned, digest(value), digest(browser))
    if login is None:
        log.info("a return URL was presented by another browser, or again")
        return _html(pages.error_page(language, Term.OIDC_OTHER_BROWSER), 403)
    again = await asyncio.to_thread(provider.store.login, login.id_hash)
    assert again is not None
    login = await provider.advance(again)
    target = await provider.finish(login)
    if target is not None:
        raise web.HTTPSeeOther(target)
    raise web.HTTPSeeOther(f"/login?l={login_id}")


async def _login_cancel(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    posted = await _posted_login(request)
    if isinstance(posted, web.Response):
        return posted
    _, _, login = posted
    if login.order_ref is not None and login.phase == "started":
        ref = login.order_ref
        try:
            await provider._relay(lambda: provider.relay.cancel(ref))
        except (rp.RelayApiError, OSError) as exc:
            log.info("login %s: cancel at the relay failed: %s", login.id_hash[:8], exc)
    await asyncio.to_thread(provider.store.update, login.id_hash, phase="failed", hint="userCancel")
    again = await asyncio.to_thread(provider.store.login, login.id_hash)
    raise web.HTTPSeeOther(provider.failure_redirect(again or login))


async def _login_abort(request: web.Request) -> web.Response:
    """Back to the client after a failure the page showed: its OIDC error."""
    provider = request.app[PROVIDER]
    login = await _own_login(request, request.query.get("l"))
    if isinstance(login, web.Response):
        return login
    if login.phase != "failed":
        raise web.HTTPSeeOther(f"/login?l={request.query.get('l', '')}")
    raise web.HTTPSeeOther(provider.failure_redirect(login))


async def _token(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    if request.content_type != "application/x-www-form-urlencoded":
        return _json({"error": "invalid_request", "error_description": "a form body"}, 400)
    try:
        form = await request.post()
        fields = MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))
        answer = await provider.token(fields, request.headers.get("Authorization"))
    except _Refused as exc:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="eid-oidc"'
        return web.json_response(
            {"error": exc.error, "error_description": exc.description},
            status=exc.status,
            headers=headers,
        )
    except (ValueError, UnicodeDecodeError):
        return _json({"error": "invalid_request", "error_description": "an unreadable form"}, 400)
    return _json(answer)


async def _userinfo(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    try:
        claims = await provider.userinfo(request.headers.get("Authorization"))
    except _Refused as exc:
        return web.json_response(
            {"error": exc.error, "error_description": exc.description},
            status=exc.status,
            headers={"WWW-Authenticate": f'Bearer error="{exc.error}"'},
        )
    return _json(claims)


async def _logout(request: web.Request) -> web.Response:
    """RP-initiated logout. The provider keeps no session of its own (every login asks
    the person), so there is nothing to end here; the client's registered URI, and only
    with a valid ID token of that client, gets the browser back."""
    provider = request.app[PROVIDER]
    language = _language(request)
    hint = request.query.get("id_token_hint")
    target = request.query.get("post_logout_redirect_uri")
    state = request.query.get("state")
    client_id = request.query.get("client_id")
    if hint and target and len(hint) < 8192:
        client = None
        try:
            audience = jose.id_token_audience(hint, await provider.keys())
            client = provider.config.clients.get(audience)
        except jose.AssertionRefused as exc:
            log.info("logout: id_token_hint refused: %s", exc)
        if (
            client is not None
            and (client_id is None or client_id == client.client_id)
            and target in client.post_logout_redirect_uris
        ):
            raise web.HTTPFound(rules.redirect_with(target, {"state": state}))
    return _html(pages.error_page(language, Term.OIDC_LOGGED_OUT))
