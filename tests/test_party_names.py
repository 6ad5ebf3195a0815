"""A relying party's name stands in quotes beside the relay's domain in every dialog:
«Exempelbutiken AB». One kernel rule (eidcore.visibletext.check_name) keeps a name from
forging those quotes, a web address or a look-alike; relay.toml refuses such a name, and
the agent refuses it again from a relay that sends one."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.serialization import Encoding

from agent.autostart.client import RelayClient
from agent.autostart.errors import RelayAnswerInvalid
from agent.autostart.link import parse_link
from eidcore.visibletext import NameRefused, TextRefused, check_name
from issuer import CertificateAuthority
from relay.config import ConfigError, config_from

GOOD = [
    "Exempelbutiken AB",
    "McDonald's Sverige AB",
    "McDonald\u2019s Sverige AB",
    "Åhléns AB",
    "St. Eriks Bryggeri",
    "Apple Inc.",
    "Ελληνική Τράπεζα",
    "株式会社 Sony",
    "Sony ソニー株式会社",
    "삼성전자 Samsung",
    "בנק הפועלים",
]
FORGED = [
    "Shop», vill att du skriver under. «Bank",  # closes the dialog's quote
    "Shop\u203a Bank",  # a single guillemet
    "Shop\u226b Bank",  # a look-alike
    'Shop" Bank',
    "Shop\u201d Bank",
    "https://bank.example",
    "bank.example",
    "www.bank",
    "Support: help@bank.example",
    "B\u0430nk AB",  # a Cyrillic а in a Latin word
    "Paypal \u0399nc",  # a Greek Ι
    "Bank\u202e BA",  # a bidirectional override (the text rule)
    "Bank\nAB",
    "",
    "x" * 101,
]


@pytest.mark.parametrize("name", GOOD)
def test_names_of_real_companies_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", FORGED)
def test_names_that_forge_quotes_addresses_or_letters_are_refused(name: str) -> None:
    with pytest.raises(TextRefused) as refused:
        check_name(name)
    assert name not in refused.value.details or not name


def test_the_refusal_says_which_rule() -> None:
    with pytest.raises(NameRefused, match="quotation mark"):
        check_name("A» B")
    with pytest.raises(NameRefused, match="web address"):
        check_name("a.example")
    with pytest.raises(NameRefused, match="scripts: cyrillic, latin"):
        check_name("B\u0430nk")


def _config(ca: CertificateAuthority, tmp_path: Path, name: str) -> Any:
    (tmp_path / "root.pem").write_bytes(ca.root_certificate.public_bytes(Encoding.PEM))
    doc = {
        "origin": "https://relay.example",
        "trust": ["root.pem"],
        "party": [
            {"id": "shop", "name": name, "client_cert_sha256": hashlib.sha256(b"t").hexdigest()}
        ],
    }
    return config_from(doc, tmp_path)


@pytest.mark.parametrize("name", FORGED[:10])
def test_relay_toml_refuses_such_a_name(
    ca: CertificateAuthority, tmp_path: Path, name: str
) -> None:
    with pytest.raises(ConfigError, match="party shop: name"):
        _config(ca, tmp_path, name)
    assert _config(ca, tmp_path, "Exempelbutiken AB").parties["shop"].name == "Exempelbutiken AB"


@pytest.mark.parametrize("name", ["Shop», vill att du skriver under. «Bank", "B\u0430nk AB"])
async def test_the_agent_refuses_it_from_a_relay_that_lies(name: str) -> None:
    async def order(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the agent's fetch
        origin = f"http://127.0.0.1:{server.port}"
        await ws.send_json(
            {
                "order": {
                    "orderRef": "ref",
                    "agentSecret": "s" * 43,
                    "type": "auth",
                    "relay": origin,
                    "party": {"id": "shop", "name": name},
                    "nonce": base64.urlsafe_b64encode(b"n" * 32).decode(),
                    "userVisibleDataFormat": "plaintext",
                }
            }
        )
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/agent/v2/order", order)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        link = parse_link(
            f"eid-agent:///?autostarttoken={'t' * 43}&server=http://127.0.0.1:{server.port}"
        )
        async with RelayClient(link, allow_http=True) as client:
            with pytest.raises(RelayAnswerInvalid, match="party name"):
                async with client.order(link.token):
                    pass
    finally:
        await server.close()
