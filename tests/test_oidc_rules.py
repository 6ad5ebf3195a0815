"""oidc/rules.py, oidc/config.py and ``eid-oidc add-client``: the provider's pure rules
and its configuration, without a server."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from issuer import CertificateAuthority
from oidc import rules
from oidc.config import ConfigError, config_from, load_config
from tests.agent_process import BIN

CLIENT = rules.Client("site", frozenset({"https://site.example/cb"}), name="Site")
CLIENTS = {"site": CLIENT}
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).rstrip(b"=").decode()
GOOD = {
    "client_id": ["site"],
    "redirect_uri": ["https://site.example/cb"],
    "response_type": ["code"],
    "scope": ["openid profile"],
    "code_challenge": [CHALLENGE],
    "code_challenge_method": ["S256"],
    "state": ["s"],
    "nonce": ["n"],
}


def _parse(**changes: list[str] | None) -> rules.AuthRequest:
    params = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    return rules.parse_authorize(params, CLIENTS)


def test_a_good_request_round_trips_through_the_database_form() -> None:
    request = _parse(login_hint=["198112189876"], ui_locales=["sv en"])
    assert request.scope == ("openid", "profile") and request.login_hint == "198112189876"
    assert rules.AuthRequest.from_json(request.to_json()) == request


@pytest.mark.parametrize(
    ("changes", "error", "redirected"),
    [
        ({"client_id": ["other"]}, "invalid_request", False),
        ({"client_id": None}, "invalid_request", False),
        ({"redirect_uri": ["https://site.example/cb/"]}, "invalid_request", False),
        ({"redirect_uri": ["https://SITE.example/cb"]}, "invalid_request", False),
        (
            {"redirect_uri": ["https://site.example/cb", "https://site.example/cb"]},
            "invalid_request",
            False,
        ),
        ({"code_challenge_method": ["plain"]}, "invalid_request", True),
        ({"code_challenge": ["short"]}, "invalid_request", True),
        ({"scope": ["openid bogus"]}, "invalid_scope", True),
        ({"response_mode": ["fragment"]}, "invalid_request", True),
        ({"state": ["a", "b"]}, "invalid_request", True),
        ({"nonce": ["\ud800"]}, "invalid_request", True),
        ({"nonce": ["a\x00"]}, "invalid_request", True),
        ({"request_uri": ["https://x"]}, "request_uri_not_supported", True),
        ({"registration": ["{}"]}, "registration_not_supported", True),
        ({"prompt": ["none login"]}, "login_required", True),
        ({"prompt": ["bogus"]}, "invalid_request", True),
        ({"max_age": ["-1"]}, "invalid_request", True),
    ],
)
def test_refusals_and_where_they_go(
    changes: dict[str, list[str] | None], error: str, redirected: bool
) -> None:
    with pytest.raises(rules.AuthorizeError) as refused:
        _parse(**changes)
    assert refused.value.error == error
    assert (refused.value.redirect is not None) is redirected


@pytest.mark.parametrize(
    "details",
    [
        "{}",
        "[]",
        json.dumps(
            [{"type": rules.SIGN_TYPE, "text": "a"}, {"type": rules.SIGN_TYPE, "text": "b"}]
        ),
        '[{"type": "payment_initiation", "text": "a"}]',
        '[{"type": "eid_agent_signature", "text": "   "}]',
        '[{"type": "eid_agent_signature", "text": "a", "amount": 1}]',
        '[{"type": "eid_agent_signature", "text": "a\\u0000b"}]',
        '[{"type": "eid_agent_signature", "text": 5}]',
        "[" * 5000,
        '[{"type": "eid_agent_signature", "text": "' + "x" * (rules.MAX_SIGN_TEXT + 1) + '"}]',
    ],
)
def test_what_cannot_be_signed_is_refused(details: str) -> None:
    with pytest.raises(rules.AuthorizeError) as refused:
        _parse(authorization_details=[details])
    assert refused.value.error in ("invalid_authorization_details", "invalid_request")


def test_a_signing_request_keeps_its_text_exactly() -> None:
    text = "Rad ett\nRad två\tmed tab — och «citat»"
    details = json.dumps([{"type": rules.SIGN_TYPE, "text": text}])
    assert _parse(authorization_details=[details]).sign_text == text


@given(st.text(min_size=43, max_size=128, alphabet="ABCabc0123-._~"))
def test_pkce_s256_matches_only_its_own_verifier(verifier: str) -> None:
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert rules.pkce_matches(verifier, challenge)
    assert not rules.pkce_matches(verifier + "x", challenge)
    assert not rules.pkce_matches(verifier, challenge[:-1] + ("A" if challenge[-1] != "A" else "B"))


def test_pairwise_subs_differ_per_client_and_per_key() -> None:
    other = rules.Client("other", frozenset({"https://o.example/cb"}))
    key = b"k" * 32
    pnr = "198112189876"
    subs = {
        rules.pairwise_sub(key, CLIENT, pnr),
        rules.pairwise_sub(key, other, pnr),
        rules.pairwise_sub(b"j" * 32, CLIENT, pnr),
        rules.pairwise_sub(key, CLIENT, "194910112384"),
    }
    assert len(subs) == 4 and all(pnr not in s for s in subs)
    assert rules.pairwise_sub(key, CLIENT, pnr) == rules.pairwise_sub(key, CLIENT, pnr)


def test_claims_follow_the_scopes() -> None:
    person = rules.Person(
        "198112189876", "Anna Andersson", "Anna", "Andersson", "1981-12-18", "card"
    )
    assert rules.claims_for(person, ("openid",), {"signature": "x"}) == {}
    profile = rules.claims_for(person, ("openid", "profile"), None)
    assert profile == {
        "name": "Anna Andersson",
        "given_name": "Anna",
        "family_name": "Andersson",
        "birthdate": "1981-12-18",
    }
    number = rules.claims_for(person, ("openid", rules.PNR_SCOPE), None)
    assert number == {rules.PNR_CLAIM: "198112189876"}
    evidence = rules.claims_for(person, ("openid", rules.EVIDENCE_SCOPE), {"signature": "x"})
    assert evidence == {"evidence": {"signature": "x"}}
    assert rules.acr_for("card") == "urn:eid-agent:acr:bankid-card"
    assert rules.AMR["token"] == ("hwk", "pin") and rules.AMR["file"] == ("pwd",)


def test_redirects_keep_the_clients_own_query() -> None:
    target = rules.redirect_with("https://a.example/cb?x=1", {"code": "c", "state": None})
    assert target == "https://a.example/cb?x=1&code=c"


def _config_text(ca_file: str, extra: str = "") -> str:
    return (
        f'issuer = "https://login.example"\ntrust = ["{ca_file}"]\n'
        '[relay]\nurl = "https://relay.example"\nparty = "login"\n'
        'client_cert = "c.pem"\nclient_key = "k.pem"\n' + extra
    )


def test_the_configuration_refuses_what_would_be_unsafe(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "root.pem").write_bytes(
        ca.root_certificate.public_bytes(serialization.Encoding.PEM)
    )
    import tomllib

    def load(extra: str) -> object:
        return config_from(tomllib.loads(_config_text("root.pem", extra)), tmp_path)

    good = load(
        '[[client]]\nclient_id = "a"\nredirect_uris = ["https://a.example/cb"]\n'
        f'client_secret_sha256 = "{"0" * 64}"\n'
    )
    assert (tmp_path / "pairwise.key").stat().st_mode & 0o777 == 0o600
    assert good is not None
    for bad in (
        '[[client]]\nclient_id = "a"\nredirect_uris = ["http://a.example/cb"]\n',
        '[[client]]\nclient_id = "a"\nredirect_uris = ["https://a.example/cb#f"]\n',
        '[[client]]\nclient_id = "a"\nredirect_uris = ["https://a.example/cb"]\n',  # no secret
        '[[client]]\nclient_id = "a b"\nredirect_uris = ["https://a.example/cb"]\n',
        '[[client]]\nclient_id = "a"\nredirect_uris = ["https://a.example/cb"]\n'
        'token_endpoint_auth_method = "private_key_jwt"\n',  # no jwks_file
        '[[client]]\nclient_id = "a"\nredirect_uris = ["https://a.example/cb"]\n'
        f'client_secret_sha256 = "{"0" * 64}"\nid_token_signed_response_alg = "none"\n',
    ):
        with pytest.raises(ConfigError):
            load(bad)
    (tmp_path / "short.key").write_bytes(b"x" * 8)
    with pytest.raises(ConfigError):
        load('pairwise_key_file = "short.key"\n')


def test_add_client_writes_a_hashed_secret_that_works(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "root.pem").write_bytes(
        ca.root_certificate.public_bytes(serialization.Encoding.PEM)
    )
    config = tmp_path / "oidc.toml"
    config.write_text(_config_text("root.pem"))
    config.chmod(0o640)
    done = subprocess.run(
        [
            str(BIN / "eid-oidc"),
            "--lang",
            "en",
            "add-client",
            "--config",
            str(config),
            "--client-id",
            "shop",
            "--name",
            "Exempelbutiken AB",
            "--redirect-uri",
            "https://shop.example/callback",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().splitlines()[-1].strip()
    assert secret not in config.read_text() and config.stat().st_mode & 0o777 == 0o640
    client = load_config(config).clients["shop"]
    assert client.secret_matches(secret) and not client.secret_matches(secret + "x")
    assert client.redirect_uris == {"https://shop.example/callback"}
    again = subprocess.run(
        [
            str(BIN / "eid-oidc"),
            "--lang",
            "en",
            "add-client",
            "--config",
            str(config),
            "--client-id",
            "shop",
            "--name",
            "x",
            "--redirect-uri",
            "https://shop.example/cb",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 1 and "shop twice" in again.stderr


async def test_a_code_older_than_a_minute_is_refused(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """The token endpoint's clock (the provider's, given): a code 61 s old is refused and
    spent; one 59 s old is redeemed."""
    import datetime as dt

    from multidict import MultiDict, MultiDictProxy

    from oidc.config import OidcConfig, RelaySide
    from oidc.server import Provider, _Refused
    from oidc.store import OidcStore, digest

    secret = "s" * 30
    client = rules.Client(
        "site",
        frozenset({"https://site.example/cb"}),
        secret_sha256=(hashlib.sha256(secret.encode()).hexdigest(),),
    )
    config = OidcConfig(
        "https://login.example",
        f"sqlite:///{tmp_path / 'oidc.db'}",
        (ca.root_certificate,),
        b"k" * 32,
        RelaySide("https://relay.example", "https://relay.example", "p", Path(), Path(), None),
        {"site": client},
    )
    store = OidcStore.open(config.database)
    start = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
    clock = [start]
    provider = Provider(config, store, relay=None, now=lambda: clock[0])  # type: ignore[arg-type]
    request = _parse(code_challenge=[CHALLENGE]).to_json()
    person = {
        "personal_number": "198112189876",
        "name": "Anna Andersson",
        "given_name": "Anna",
        "surname": "Andersson",
        "birthdate": "1981-12-18",
        "token_kind": "file",
    }
    grant = {
        "request": json.loads(request),
        "result": {"person": person, "evidence": {}, "auth_time": int(start.timestamp())},
    }
    for n, age in enumerate((61, 59)):
        login = f"login{n}"
        store.new_login(login, "browser", request, start)
        store.update(login, phase="complete", hint=None)
        with store._db.transaction() as tx:  # the browser came back (as _login_return does)
            tx.run("UPDATE oidc_logins SET returned = 1 WHERE id_hash = ?", (login,))
        assert store.finish(login, digest(f"code{n}"), "site", grant, start)
        clock[0] = start + dt.timedelta(seconds=age)
        form = MultiDictProxy(
            MultiDict(
                grant_type="authorization_code",
                code=f"code{n}",
                redirect_uri="https://site.example/cb",
                code_verifier="v" * 43,
            )
        )
        basic = "Basic " + base64.b64encode(f"site:{secret}".encode()).decode()
        if age > rules.CODE_SECONDS:
            with pytest.raises(_Refused) as refused:
                await provider.token(form, basic)
            assert refused.value.error == "invalid_grant"
        else:
            answer = await provider.token(form, basic)
            assert answer["token_type"] == "Bearer" and "id_token" in answer
    store.close()
