"""The OpenID Provider as an organisation runs it: a real ``eid-relay serve`` (mutual
TLS), a real ``eid-oidc serve`` in front of it as its party, over HTTPS, with clients
registered in ``oidc.toml``; a person's BankID on file; and a browser stand-in that
keeps cookies and never follows a redirect by itself (so a test sees each step)."""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import re
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from issuer import CertificateAuthority
from tests.agent_process import BIN
from tests.relay_kit import RETURN
from tests.relay_process_kit import (
    RelayProcess,
    free_port,
    party_certificate,
    start_server,
    write_config,
)

__all__ = ["Browser", "Oidc", "OidcProcess", "oidc"]

CALLBACK = "https://site.example/callback"
# the site's callback on this machine, for the real browser (it follows the provider's
# redirect there): plain http on loopback, as a development site registers it
LOCAL_CALLBACK = "http://127.0.0.1:{port}/callback"
# the private_key_jwt client's key: its public half goes into the provider's
# configuration as a JWKS (made by Authlib, not by the provider's own code)
JWT_CLIENT_KEY = ec.generate_private_key(ec.SECP256R1())
SECRET = "site-secret-0123456789"
SCOPE = "openid profile https://id.oidc.se/scope/naturalPersonNumber"


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Cookies per origin, TLS trusting the test CA, no redirects followed."""

    def __init__(self, ca: Path) -> None:
        self.jar = http.cookiejar.CookieJar()
        context = ssl.create_default_context(cafile=str(ca))
        self._open = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirect(),
        ).open

    def get(self, url: str) -> Answer:
        return self._do(urllib.request.Request(url))  # noqa: S310 - the tests' https

    def post(self, url: str, form: Mapping[str, str]) -> Answer:
        data = urllib.parse.urlencode(form).encode()
        return self._do(urllib.request.Request(url, data=data, method="POST"))  # noqa: S310

    def _do(self, request: urllib.request.Request) -> Answer:
        request.add_header("Accept-Language", "en")
        try:
            with self._open(request, timeout=30) as response:
                return Answer(response.status, dict(response.headers), response.read().decode())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), exc.read().decode())


def login_id(page: str) -> str:
    found = re.search(r'name="l" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def agent_link(page: str) -> str:
    found = re.search(r'id="open" href="([^"]+)"', page)
    assert found, page
    return found.group(1).replace("&amp;", "&")


class OidcProcess:
    def __init__(self, config: Path, tls: tuple[Path, Path], port: int) -> None:
        self.port = port
        self.server = start_server(
            [
                str(BIN / "eid-oidc"),
                "--lang",
                "en",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--tls-cert",
                str(tls[0]),
                "--tls-key",
                str(tls[1]),
            ]
        )

    @property
    def proc(self) -> subprocess.Popen[str]:
        return self.server.proc

    def stop(self) -> str:
        return self.server.stop()


@dataclass
class Oidc:
    issuer: str
    relay: RelayProcess
    provider: OidcProcess
    config: Path
    tls: tuple[Path, Path]
    folder: Path
    callback_port: int = 9

    def browser(self) -> Browser:
        return Browser(self.tls[0])

    def discovery(self) -> dict[str, Any]:
        answer = self.browser().get(f"{self.issuer}/.well-known/openid-configuration")
        assert answer.status == 200
        parsed: dict[str, Any] = json.loads(answer.body)
        return parsed


def write_oidc_config(
    folder: Path,
    issuer: str,
    relay: RelayProcess,
    relay_config: Path,
    tls: tuple[Path, Path],
    *,
    database: str | None = None,
    extra: str = "",
    callback_port: int = 9,
) -> Path:
    cert, key = party_certificate(relay_config)
    _write_client_jwks(folder / "jwt-site.jwks")
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    config = folder / "oidc.toml"
    db = database or f"sqlite:///{folder / 'oidc.db'}"
    config.write_text(
        f'issuer = "{issuer}"\ndatabase = "{db}"\n'
        f'trust = ["{relay_config.parent}/issuer-root.pem"]\n'
        f'\n[relay]\nurl = "https://127.0.0.1:{relay.port}"\nparty = "shop"\n'
        f'client_cert = "{cert}"\nclient_key = "{key}"\nca_file = "{tls[0]}"\n'
        f'\n[[client]]\nclient_id = "site"\nname = "Exempelsajten"\n'
        f'redirect_uris = ["{CALLBACK}", "{LOCAL_CALLBACK.format(port=callback_port)}"]\n'
        f'client_secret_sha256 = "{digest}"\n'
        f'post_logout_redirect_uris = ["https://site.example/bye"]\n'
        f'\n[[client]]\nclient_id = "poster"\nname = "Postsajten"\n'
        f'redirect_uris = ["{CALLBACK}"]\nclient_secret_sha256 = "{digest}"\n'
        'token_endpoint_auth_method = "client_secret_post"\n'
        'id_token_signed_response_alg = "RS256"\n'
        f'\n[[client]]\nclient_id = "jwt-site"\nname = "Nyckelsajten"\n'
        f'redirect_uris = ["{CALLBACK}"]\ntoken_endpoint_auth_method = "private_key_jwt"\n'
        'jwks_file = "jwt-site.jwks"\npost_logout_redirect_uris = ["https://site.example/bye"]\n'
        + extra
    )
    return config


def _write_client_jwks(path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib.jose points to joserfc; it still exports
        from authlib.jose import JsonWebKey

    public = JWT_CLIENT_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = JsonWebKey.import_key(public, {"kty": "EC", "use": "sig", "alg": "ES256"})
    path.write_text(json.dumps({"keys": [key.as_dict()]}))


def relay_for(
    folder: Path, ca: CertificateAuthority, issuer: str, tls: tuple[Path, Path]
) -> tuple[RelayProcess, Path]:
    """The relay, its ``shop`` party being the provider (its return URL registered)."""
    port = free_port()
    config = write_config(folder / "relay", ca, origin=f"https://127.0.0.1:{port}")
    config.write_text(
        config.read_text().replace(
            f'return_urls = ["{RETURN}"]', f'return_urls = ["{issuer}/login/return"]'
        )
    )
    return RelayProcess(config, f"sqlite:///{folder / 'relay.db'}", tls, port=port), config


@pytest.fixture
def oidc(tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path]) -> Iterator[Oidc]:
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    relay, relay_config = relay_for(tmp_path, ca, issuer, tls)
    folder = tmp_path / "oidc"
    folder.mkdir()
    try:
        callback_port = free_port()
        config = write_oidc_config(
            folder, issuer, relay, relay_config, tls, callback_port=callback_port
        )
        # the person's settings: this loopback relay may be asked
        (tmp_path / "config.toml").write_text(f'[relay]\nallow = ["127.0.0.1:{relay.port}"]\n')
        running = Oidc(
            issuer, relay, OidcProcess(config, tls, port), config, tls, folder, callback_port
        )
        try:
            yield running
        finally:
            # the provider running now: a test may have restarted it (key rotation)
            said = running.provider.stop()
            assert "Traceback" not in said, said
            # logins are named by a hash prefix; no person's number reaches the log
            assert "198112189876" not in said and "19811218" not in said, said
    finally:
        if relay.proc.poll() is None:
            assert "Traceback" not in relay.stop()
