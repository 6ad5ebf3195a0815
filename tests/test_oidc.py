"""The OpenID Provider with a client nobody here wrote — Authlib's OAuth 2.0 / OIDC client —
against a real ``eid-oidc`` in front of a real relay, the person's part done by the real
console agent opening the login page's ``eid-agent://`` link. The browser is a stand-in
that keeps cookies (tests/oidc_kit.py); the real Chromium's turn is in
tests/test_oidc_browser.py."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from issuer import CertificateAuthority
from tests.conftest import ANNA, PASSWORD
from tests.door_kit import console
from tests.oidc_kit import CALLBACK, SCOPE, SECRET, Browser, Oidc, agent_link, login_id
from tests.xml_kit import verified_everywhere

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib.jose says joserfc is its future; it still verifies
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

pytestmark = pytest.mark.slow
PNR_CLAIM = "https://id.oidc.se/claim/personalIdentityNumber"


def _session(oidc: Oidc, client_id: str = "site", scope: str = SCOPE, **kw: Any) -> OAuth2Session:
    session = OAuth2Session(
        client_id,
        SECRET,
        scope=scope,
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        **kw,
    )
    session.verify = str(oidc.tls[0])
    return session


def _through_the_login_page(
    oidc: Oidc, browser: Browser, url: str, person: Path, typed: str = f"{PASSWORD}\n"
) -> tuple[str, str]:
    """The person's part: the login page, its button, the agent's link carried out by
    the console agent, and the way back. Returns (the agent's console, where the
    provider sent the browser)."""
    answer = browser.get(url)
    assert answer.status == 303, answer.body
    page = browser.get(oidc.issuer + answer.location)
    assert page.status == 200 and "with your BankID" in page.body
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    _, link = _start(oidc, browser, page.body)
    done = console(["open", link], person, oidc.tls, typed=typed)
    assert done.returncode == 0, done.stderr
    returned = browser.get(_way_back(done.stderr))
    assert returned.status == 303, returned.body
    return done.stderr, returned.location


def _start(oidc: Oidc, browser: Browser, page: str, **form: str) -> tuple[str, str]:
    """The login page's button: the login's id, and the agent's link the page then shows."""
    lid = login_id(page)
    started = browser.post(f"{oidc.issuer}/login/start", {"l": lid, **form})
    assert started.status == 303, started.body
    return lid, agent_link(browser.get(oidc.issuer + started.location).body)


def _way_back(console_said: str) -> str:
    """The return URL the console agent names (it has no browser to open it in)."""
    back = re.search(r"Go back to the website: (\S+)", console_said)
    assert back, console_said
    return back.group(1)


def _id_token(oidc: Oidc, token: str, client_id: str, nonce: str) -> dict[str, Any]:
    keys = requests.get(f"{oidc.issuer}/jwks", verify=str(oidc.tls[0]), timeout=10).json()
    claims = jwt.decode(
        token,
        JsonWebKey.import_key_set(keys),
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": oidc.issuer}},
        claims_params={"nonce": nonce, "client_id": client_id},
    )
    claims.validate()
    return dict(claims)


def test_authlib_logs_a_person_in(oidc: Oidc, person: Path) -> None:
    """Discovery, an authorization URL with PKCE (S256), the person's login through the
    agent, the code exchanged with client_secret_basic, the ID token validated (issuer,
    audience, expiry, nonce), userinfo: a pairwise ``sub``, the names, the personal
    number under its scope, and what was used from the certificate's policy."""
    meta = oidc.discovery()
    assert meta["issuer"] == oidc.issuer and meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    session = _session(oidc)
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    said, back = _through_the_login_page(oidc, oidc.browser(), url, person)
    assert "Exempelsajten" in said or "Exempelbutiken" in said  # the relay's party name
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
    assert back.startswith(CALLBACK) and query["state"] == state
    assert query["iss"] == oidc.issuer  # RFC 9207
    token = session.fetch_token(
        meta["token_endpoint"],
        authorization_response=back,
        code_verifier=verifier,
        verify=str(oidc.tls[0]),
    )
    claims = _id_token(oidc, token["id_token"], "site", nonce)
    assert claims["sub"] != str(ANNA.personal_number) and len(claims["sub"]) == 43
    assert claims["acr"] == "urn:eid-agent:acr:bankid-file" and claims["amr"] == ["pwd"]
    assert claims["name"] == "Anna Andersson" and claims["birthdate"] == "1981-12-18"
    assert claims[PNR_CLAIM] == str(ANNA.personal_number)
    info = session.get(meta["userinfo_endpoint"], verify=str(oidc.tls[0])).json()
    assert info["sub"] == claims["sub"] and info["family_name"] == "Andersson"
    assert info[PNR_CLAIM] == str(ANNA.personal_number) and "evidence" not in info


def test_pairwise_subs_differ_and_scopes_decide_the_claims(
    oidc: Oidc, person: Path, ca: CertificateAuthority
) -> None:
    """Another client (client_secret_post, RS256 ID tokens) gets another ``sub`` for the
    same person; without the personal-number scope no token or answer carries it; the
    ``evidence`` scope adds the XML signature, which xmlsec1 and the rp kit verify."""
    meta = oidc.discovery()
    subs = []
    for client_id, scope in (("site", "openid"), ("poster", "openid evidence")):
        kw = {"token_endpoint_auth_method": "client_secret_post"} if client_id == "poster" else {}
        session = _session(oidc, client_id, scope, **kw)
        verifier, nonce = generate_token(48), generate_token(20)
        url, _ = session.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        _, back = _through_the_login_page(oidc, oidc.browser(), url, person)
        token = session.fetch_token(
            meta["token_endpoint"],
            authorization_response=back,
            code_verifier=verifier,
            verify=str(oidc.tls[0]),
        )
        header = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
        assert header["alg"] == ("RS256" if client_id == "poster" else "ES256")
        claims = _id_token(oidc, token["id_token"], client_id, nonce)
        info = session.get(meta["userinfo_endpoint"], verify=str(oidc.tls[0])).json()
        everything = json.dumps([claims, info, token])
        assert str(ANNA.personal_number) not in everything.replace(
            info.get("evidence", {}).get("signature", "-"), ""
        )
        subs.append(claims["sub"])
        if client_id == "poster":
            evidence = info["evidence"]
            assert set(evidence) <= {"signature", "ocspResponse", "orderRef"}
            verified_everywhere(
                {"signature": evidence["signature"]},
                ca=ca,
                folder=oidc.folder / "xml",
                order_type="auth",
                origin=f"https://127.0.0.1:{oidc.relay.port}",
                order_ref=evidence["orderRef"],
            )
    assert subs[0] != subs[1]


def _code(
    oidc: Oidc, person: Path, browser: Browser | None = None, **extra: str
) -> tuple[OAuth2Session, str, str]:
    """A session, the code verifier, and the callback URL with a fresh code."""
    session = _session(oidc)
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(
        f"{oidc.issuer}/authorize", code_verifier=verifier, nonce=generate_token(20), **extra
    )
    _, back = _through_the_login_page(oidc, browser or oidc.browser(), url, person)
    return session, verifier, back


def _exchange(oidc: Oidc, session: OAuth2Session, back: str, verifier: str) -> dict[str, Any]:
    return dict(
        session.fetch_token(
            f"{oidc.issuer}/token",
            authorization_response=back,
            code_verifier=verifier,
            verify=str(oidc.tls[0]),
        )
    )


def _raw_token(
    oidc: Oidc, form: dict[str, str], auth: tuple[str, str] | None = ("site", SECRET)
) -> requests.Response:
    return requests.post(
        f"{oidc.issuer}/token", data=form, auth=auth, verify=str(oidc.tls[0]), timeout=10
    )


def test_a_code_is_redeemed_once_and_a_replay_revokes_its_tokens(oidc: Oidc, person: Path) -> None:
    session, verifier, back = _code(oidc, person)
    token = _exchange(oidc, session, back, verifier)
    userinfo = f"{oidc.issuer}/userinfo"
    assert session.get(userinfo, verify=str(oidc.tls[0])).status_code == 200
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    again = _raw_token(oidc, form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert again.headers["Cache-Control"] == "no-store"
    revoked = requests.get(
        userinfo,
        headers={"Authorization": f"Bearer {token['access_token']}"},
        verify=str(oidc.tls[0]),
        timeout=10,
    )
    assert revoked.status_code == 401 and "invalid_token" in revoked.headers["WWW-Authenticate"]


def test_pkce_redirect_uri_and_client_are_checked_at_the_token_endpoint(
    oidc: Oidc, person: Path
) -> None:
    _, verifier, back = _code(oidc, person)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["code"]
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    wrong = _raw_token(oidc, {**base, "code_verifier": generate_token(48)})
    assert wrong.json()["error"] == "invalid_grant"  # and the code is spent now
    assert _raw_token(oidc, {**base, "code_verifier": verifier}).json()["error"] == "invalid_grant"
    assert _raw_token(oidc, base, auth=("site", "wrong")).status_code == 401
    assert _raw_token(oidc, base, auth=None).json()["error"] == "invalid_client"
    assert _raw_token(oidc, {**base, "grant_type": "password"}).json()["error"] in (
        "unsupported_grant_type",
        "invalid_grant",
    )


def test_authorize_refuses_without_redirecting_anywhere_it_should_not(oidc: Oidc) -> None:
    """An unknown client or a redirect URI that is not exactly registered: the provider's
    own page, never a redirect; a registered one gets the error (with state and iss)."""
    browser = oidc.browser()
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    good = {
        "client_id": "site",
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s1",
    }

    def ask(**changes: str | None) -> Any:
        params = {k: v for k, v in {**good, **changes}.items() if v is not None}
        return browser.get(f"{oidc.issuer}/authorize?" + urllib.parse.urlencode(params))

    for changes in (
        {"client_id": "nobody"},
        {"redirect_uri": CALLBACK + "/more"},
        {"redirect_uri": CALLBACK + "?x=1"},
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": None},
    ):
        answer = ask(**changes)
        assert answer.status == 400 and "Location" not in answer.headers, changes
        assert "cannot be used (invalid_request)" in answer.body
    for changes, error in (
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
        ({"request": "eyJ"}, "request_not_supported"),
        ({"max_age": "9" * 40}, "invalid_request"),
        (
            {"authorization_details": '[{"type": "eid_agent_signature"}]'},
            "invalid_authorization_details",
        ),
        ({"authorization_details": "[" * 2000}, "invalid_authorization_details"),
        ({"nonce": "n" * 3000}, "invalid_request"),
    ):
        answer = ask(**changes)
        assert answer.status == 302, (changes, answer.body)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.location).query))
        assert answer.location.startswith(CALLBACK + "?"), answer.location
        assert query["error"] == error and query["state"] == "s1", (changes, query)
        assert query["iss"] == oidc.issuer
    # repeated parameters, lone surrogates, control characters, non-UTF-8: refused, no 500
    raw = f"{oidc.issuer}/authorize?" + urllib.parse.urlencode(good)
    for tail in ("&state=a&state=b", "&nonce=%ED%A0%80", "&nonce=a%00b", "&nonce=%FF%FE"):
        answer = browser.get(raw + tail)
        assert answer.status in (302, 400), (tail, answer.status, answer.body)
        assert "Traceback" not in answer.body
    # deeper than JSON parsers go, in a form: the OIDC error, not a 500
    deep = {**good, "authorization_details": "[" * 20_000}
    answer = browser.post(f"{oidc.issuer}/authorize", deep)
    assert answer.status == 302 and "invalid_authorization_details" in answer.location
    # a URL longer than the server reads: a plain 400
    assert ask(nonce="n" * 20_000).status == 400


def test_a_leaked_login_page_or_return_url_gives_another_browser_nothing(
    oidc: Oidc, person: Path
) -> None:
    """The login page and the return URL are bound to the browser that started the
    login (its cookie). Another browser is refused both, and a return URL presented by
    the wrong browser first is spent: the right one cannot finish with it either."""
    mine, theirs = oidc.browser(), oidc.browser()
    session = _session(oidc)
    url, _ = session.create_authorization_url(
        f"{oidc.issuer}/authorize", code_verifier=generate_token(48), nonce="n"
    )
    answer = mine.get(url)
    page_url = oidc.issuer + answer.location
    assert theirs.get(page_url).status == 403  # a leaked login page
    page = mine.get(page_url)
    lid = login_id(page.body)
    assert theirs.post(f"{oidc.issuer}/login/start", {"l": lid}).status == 403
    _, link = _start(oidc, mine, page.body)
    done = console(["open", link], person, oidc.tls, typed=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    back = _way_back(done.stderr)
    stolen = theirs.get(back)
    assert stolen.status == 403 and "started in another browser" in stolen.body
    late = mine.get(back)  # spent by its first use
    assert late.status == 403
    status = mine.get(f"{oidc.issuer}/login/status?l={lid}")
    assert json.loads(status.body)["finished"] is True and "next" not in status.body


def test_signing_through_oidc_shows_the_text_and_returns_the_evidence(
    oidc: Oidc, person: Path, ca: CertificateAuthority
) -> None:
    """A Rich Authorization Request (RFC 9396) of type eid_agent_signature: the login
    page and the agent's dialog show exactly its text, the person signs it, and the
    token response carries the XML signature — verified by xmlsec1 and the rp kit as a
    signature of that text for this order."""
    text = "Jag godkänner avtalet 2026-117.\nBelopp: 1 200 kr"
    details = json.dumps([{"type": "eid_agent_signature", "text": text}])
    session = _session(oidc, scope="openid")
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(
        f"{oidc.issuer}/authorize",
        code_verifier=verifier,
        nonce="n",
        authorization_details=details,
    )
    said, back = _through_the_login_page(oidc, oidc.browser(), url, person)
    assert "1 200 kr" in said and "Jag godkänner avtalet 2026-117." in said
    token = _exchange(oidc, session, back, verifier)
    assert token["authorization_details"] == [{"type": "eid_agent_signature", "text": text}]
    evidence = token["evidence"]
    verified = verified_everywhere(
        {"signature": evidence["signature"]},
        ca=ca,
        folder=oidc.folder / "xml",
        order_type="sign",
        origin=f"https://127.0.0.1:{oidc.relay.port}",
        order_ref=evidence["orderRef"],
        text=text,
    )
    assert verified.person.personal_number == str(ANNA.personal_number)


def test_cancel_on_the_login_page_returns_access_denied(oidc: Oidc) -> None:
    browser = oidc.browser()
    session = _session(oidc)
    url, state = session.create_authorization_url(
        f"{oidc.issuer}/authorize", code_verifier=generate_token(48), nonce="n"
    )
    page = browser.get(oidc.issuer + browser.get(url).location)
    lid = login_id(page.body)
    started = browser.post(f"{oidc.issuer}/login/start", {"l": lid})
    assert started.status == 303
    cancelled = browser.post(f"{oidc.issuer}/login/cancel", {"l": lid})
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cancelled.location).query))
    assert query["error"] == "access_denied" and query["state"] == state
    assert query["iss"] == oidc.issuer


def test_private_key_jwt_and_logout(oidc: Oidc, person: Path) -> None:
    """A client that authenticates with a signed assertion (Authlib's PrivateKeyJWT,
    ES256): the code exchange works; the same assertion again, an unsigned one
    (``alg: none``) and another key's are refused. Then RP-initiated logout sends the
    browser to the client's registered URI only with that client's ID token."""
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from cryptography.hazmat.primitives import serialization
    from joserfc.jwk import ECKey

    from tests.oidc_kit import JWT_CLIENT_KEY

    pem = JWT_CLIENT_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    token_url = f"{oidc.issuer}/token"
    session = OAuth2Session(
        "jwt-site",
        ECKey.import_key(pem),  # Authlib reads a PEM string as RSA; an EC key goes as one
        scope="openid",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="private_key_jwt",
    )
    session.register_client_auth_method(PrivateKeyJWT(token_url, alg="ES256"))
    verifier, nonce = generate_token(48), generate_token(20)
    url, _ = session.create_authorization_url(
        f"{oidc.issuer}/authorize", code_verifier=verifier, nonce=nonce
    )
    _, back = _through_the_login_page(oidc, oidc.browser(), url, person)
    token = session.fetch_token(
        token_url, authorization_response=back, code_verifier=verifier, verify=str(oidc.tls[0])
    )
    claims = _id_token(oidc, token["id_token"], "jwt-site", nonce)
    assert claims["aud"] == "jwt-site"
    # assertions the token endpoint refuses, whatever the code
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = {
        "iss": "jwt-site",
        "sub": "jwt-site",
        "aud": token_url,
        "jti": "x",
        "exp": 4102444800,
    }
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    form = {
        "grant_type": "authorization_code",
        "code": "whatever",
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": f"{header}.{payload}.",
    }
    refused = _raw_token(oidc, form, auth=None)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    # logout: only the client's own registered URI, only with its ID token
    browser = oidc.browser()
    bye = "https://site.example/bye"
    query = urllib.parse.urlencode(
        {"id_token_hint": token["id_token"], "post_logout_redirect_uri": bye, "state": "s"}
    )
    answer = browser.get(f"{oidc.issuer}/logout?{query}")
    assert answer.status == 302 and answer.location == f"{bye}?state=s"
    for changes in (
        {"post_logout_redirect_uri": "https://evil.example/"},
        {"id_token_hint": token["id_token"][:-4] + "AAAA"},
        {"client_id": "site"},
    ):
        params = {"id_token_hint": token["id_token"], "post_logout_redirect_uri": bye, **changes}
        answer = browser.get(f"{oidc.issuer}/logout?{urllib.parse.urlencode(params)}")
        assert answer.status == 200 and "You are logged out" in answer.body, changes


def test_two_providers_on_one_postgresql_redeem_a_code_once(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path], person: Path
) -> None:
    """Two ``eid-oidc`` processes behind one issuer URL on one PostgreSQL database (a
    load balancer's pair): the login runs on the first, the code is redeemed at the
    second, and presenting it again — at the first — is refused; the first answers
    userinfo for the token the second issued, and both publish the same keys."""
    from tests.issuer_kit import postgres_cluster
    from tests.oidc_kit import OidcProcess, relay_for, write_oidc_config
    from tests.relay_process_kit import free_port

    port_a, port_b = free_port(), free_port()
    issuer = f"https://127.0.0.1:{port_a}"
    relay, relay_config = relay_for(tmp_path, ca, issuer, tls)
    (tmp_path / "config.toml").write_text(f'[relay]\nallow = ["127.0.0.1:{relay.port}"]\n')
    with postgres_cluster() as pg:
        folder = tmp_path / "oidc"
        folder.mkdir()
        config = write_oidc_config(
            folder, issuer, relay, relay_config, tls, database=pg.new_database()
        )
        first = OidcProcess(config, tls, port_a)
        second = OidcProcess(config, tls, port_b)
        try:
            oidc = Oidc(issuer, relay, first, config, tls, folder)
            session, verifier, back = _code(oidc, person)
            other = f"https://127.0.0.1:{port_b}"
            token = session.fetch_token(
                f"{other}/token",
                authorization_response=back,
                code_verifier=verifier,
                verify=str(tls[0]),
            )
            code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["code"]
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            }
            again = _raw_token(oidc, form)
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
            info = requests.get(
                f"{issuer}/userinfo",
                headers={"Authorization": f"Bearer {token['access_token']}"},
                verify=str(tls[0]),
                timeout=10,
            )
            assert info.status_code == 401  # the replay revoked it, across processes
            keys = [
                requests.get(f"{u}/jwks", verify=str(tls[0]), timeout=10).json()
                for u in (issuer, other)
            ]
            assert keys[0] == keys[1]  # ES256, and RS256 for the client that asks it
            assert sorted(k["alg"] for k in keys[0]["keys"]) == ["ES256", "RS256"]
        finally:
            for process in (first, second):
                assert "Traceback" not in process.stop()
            if relay.proc.poll() is None:
                relay.stop()


def test_a_login_hint_is_used_only_when_the_person_confirms_it(oidc: Oidc, person: Path) -> None:
    """``login_hint`` with a personal number: the page says whom the site thinks it is
    (masked) and offers to log in as that person — the relay's order is then for that
    personal number only; the other button ignores it. Any other hint is ignored."""
    session = _session(oidc)
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(
        f"{oidc.issuer}/authorize",
        code_verifier=verifier,
        nonce="n",
        login_hint=str(ANNA.personal_number),
    )
    browser = oidc.browser()
    page = browser.get(oidc.issuer + browser.get(url).location)
    assert "Exempelsajten thinks you are 19811218-****." in page.body
    assert str(ANNA.personal_number) not in page.body
    _, link = _start(oidc, browser, page.body, hint="yes")
    done = console(["open", link], person, oidc.tls, typed=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    returned = browser.get(_way_back(done.stderr))
    token = _exchange(oidc, session, returned.location, verifier)
    assert _id_token(oidc, token["id_token"], "site", "n")["acr"].endswith("bankid-file")
    # a hint that is no personal number is not shown
    url, _ = session.create_authorization_url(
        f"{oidc.issuer}/authorize", code_verifier=verifier, nonce="n", login_hint="anna@example"
    )
    page = browser.get(oidc.issuer + browser.get(url).location)
    assert "thinks you are" not in page.body and "anna@example" not in page.body


def test_a_rotated_key_signs_and_the_old_one_stays_published(oidc: Oidc, person: Path) -> None:
    """``eid-oidc rotate-key``: a new ES256 key signs the next ID tokens; the old key
    stays in the JWKS (tokens it signed are still alive), so clients verify both."""
    import subprocess

    from tests.agent_process import BIN
    from tests.oidc_kit import OidcProcess

    before = requests.get(f"{oidc.issuer}/jwks", verify=str(oidc.tls[0]), timeout=10).json()
    (old,) = [k for k in before["keys"] if k["alg"] == "ES256"]
    assert "Traceback" not in oidc.provider.stop()
    rotated = subprocess.run(
        [str(BIN / "eid-oidc"), "--lang", "en", "rotate-key", "--config", str(oidc.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0 and "new signing key" in rotated.stderr, rotated.stderr
    oidc.provider = OidcProcess(oidc.config, oidc.tls, int(oidc.issuer.rsplit(":", 1)[1]))
    after = requests.get(f"{oidc.issuer}/jwks", verify=str(oidc.tls[0]), timeout=10).json()
    kids = [k["kid"] for k in after["keys"]]
    assert old["kid"] in kids and len(kids) == 3  # the old ES256, the new, and RS256
    session, verifier, back = _code(oidc, person)
    token = _exchange(oidc, session, back, verifier)
    header = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
    assert header["kid"] != old["kid"] and header["kid"] in kids


def test_a_cancel_in_the_agent_is_shown_and_goes_back_as_access_denied(
    oidc: Oidc, person: Path
) -> None:
    """The person cancels in the agent's dialog: the login page shows the catalogue's
    message and a way back, which gives the client ``access_denied``."""
    browser = oidc.browser()
    session = _session(oidc)
    url, state = session.create_authorization_url(
        f"{oidc.issuer}/authorize", code_verifier=generate_token(48), nonce="n"
    )
    page = browser.get(oidc.issuer + browser.get(url).location)
    lid, link = _start(oidc, browser, page.body)
    done = console(["open", link], person, oidc.tls, typed="\n")  # an empty line: cancel
    assert done.returncode == 1, done.stderr
    status = json.loads(browser.get(f"{oidc.issuer}/login/status?l={lid}").body)
    assert status["finished"] is True and status["title"] == "Cancelled", status
    page = browser.get(f"{oidc.issuer}/login?l={lid}")
    assert "Back to Exempelsajten" in page.body and 'id="open"' not in page.body
    back = browser.get(f"{oidc.issuer}/login/abort?l={lid}")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.location).query))
    assert query == {
        "error": "access_denied",
        "error_description": "userCancel",
        "state": state,
        "iss": oidc.issuer,
    }
