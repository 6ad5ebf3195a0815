"""The person's (or the organisation's) settings: ``config.toml`` in the per-user config
folder, or the file ``--config`` names. Only what the command line does not say comes from
here; nothing here is a secret except a proxy password, which is never logged.

    [issuer]
    url = "https://issuer.bank.example"
    ca = "/etc/eid-agent/issuer-ca.pem"     # optional: trust only this certificate

    [network]
    proxy = "http://user:password@proxy.example:3128"   # or "none"; unset: environment
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AgentConfig", "ConfigError", "load_config"]


class ConfigError(ValueError):
    """The config file exists but cannot be used; the message says where."""


@dataclass(frozen=True)
class AgentConfig:
    issuer_url: str | None = None
    issuer_ca: str | None = None
    proxy: str | None = None


def load_config(path: Path) -> AgentConfig:
    """A missing file is an empty config. Raises: ConfigError."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AgentConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    issuer, network = doc.get("issuer", {}), doc.get("network", {})
    values = {"issuer.url": issuer.get("url"), "issuer.ca": issuer.get("ca"),
              "network.proxy": network.get("proxy")}  # fmt: skip
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be a string")
    url = values["issuer.url"]
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(f"{path}: issuer.url must be an http(s) URL")
    return AgentConfig(url, values["issuer.ca"], values["network.proxy"])
