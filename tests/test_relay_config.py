"""relay.toml as an organisation writes it: what it may say, and the clear refusal of what
it may not (the party names' own rule is tried in test_party_names.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from eidcore import policies
from issuer import CertificateAuthority
from relay.config import AGENT_BUDGET, ConfigError, config_from

DIGEST = hashlib.sha256(b"certificate").hexdigest()


def _doc(**more: Any) -> dict[str, Any]:
    return {
        "origin": "https://relay.example",
        "trust": ["root.pem"],
        "party": [{"id": "shop", "name": "Shop AB", "client_cert_sha256": DIGEST}],
        **more,
    }


@pytest.fixture
def folder(tmp_path: Path, ca: CertificateAuthority) -> Path:
    (tmp_path / "root.pem").write_bytes(ca.root_certificate.public_bytes(Encoding.PEM))
    return tmp_path


def test_the_defaults(folder: Path) -> None:
    config = config_from(_doc(), folder)
    assert config.agent_budget == AGENT_BUDGET
    assert config.kind_policies == dict(policies.KIND_POLICIES)


def test_an_issuer_with_its_own_policies(folder: Path) -> None:
    config = config_from(_doc(kind_policies={"card": ["1.2.752.999.1.2"]}), folder)
    assert config.kind_policies["1.2.752.999.1.2"] == "card"
    assert config.kind_policies[policies.POLICY_FOR_KIND["file"]] == "file"  # still known


def test_the_agent_budget_can_be_set_and_turned_off(folder: Path) -> None:
    config = config_from(_doc(limits={"agent_burst": 200, "agent_per_second": 50}), folder)
    assert config.agent_budget == (200.0, 50.0)
    assert config_from(_doc(limits={"agent_per_second": 0}), folder).agent_budget[1] == 0.0


@pytest.mark.parametrize(
    ("more", "says"),
    [
        ({"origin": "https://Relay.example"}, "origin must be"),
        ({"origin": "https://relay.example/path"}, "origin must be"),
        ({"trust": []}, "trust must name"),
        ({"trust": ["missing.pem"]}, "trust"),
        ({"kind_policies": {"usb": "1.2.3"}}, "kind_policies"),
        ({"kind_policies": {"card": "x.y"}}, "dotted OID"),
        ({"kind_policies": {"card": [policies.POLICY_FOR_KIND["file"]]}}, "policy for file"),
        ({"limits": {"agent_burst": -1}}, "limits.agent_burst"),
        ({"limits": {"agent_per_second": "many"}}, "limits.agent_per_second"),
        ({"limits": {"agent_per_second": True}}, "limits.agent_per_second"),
        ({"limits": {"agent_burst": 0}}, "at least 1"),
        ({"limits": {"site_per_second": 5}}, "takes agent_burst and agent_per_second"),
        ({"party": [{"id": "Shop", "name": "S", "client_cert_sha256": DIGEST}]}, "party id"),
        ({"party": [{"id": "shop", "name": "S", "client_cert_sha256": "abc"}]}, "64 hex"),
        (
            {
                "party": [
                    {
                        "id": "shop",
                        "name": "S",
                        "client_cert_sha256": DIGEST,
                        "token_sha256": DIGEST,
                    }
                ]
            },
            "bearer tokens are gone",
        ),
        (
            {
                "party": [
                    {
                        "id": "shop",
                        "name": "S",
                        "client_cert_sha256": DIGEST,
                        "return_urls": ["http://shop.example/back"],
                    }
                ]
            },
            "return_urls",
        ),
    ],
)
def test_what_it_may_not_say_is_refused_with_where(
    folder: Path, more: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        config_from(_doc(**more), folder)
