"""The person's (or the organisation's) settings: ``config.toml`` in the per-user config
folder, or the file ``--config`` names. Only what the command line does not say comes from
here; nothing here is a secret except a proxy password, which is never logged.

    [issuer]
    url = "https://issuer.bank.example"
    ca = "/etc/eid-agent/issuer-ca.pem"     # optional: trust only this certificate

    [network]
    proxy = "http://user:password@proxy.example:3128"   # "none", "system", or unset (= system)

    [ui]
    language = "sv"                # "sv" or "en"; unset: the session's language
    raise_dialogs = false          # Settings → Advanced: force dialogs to the front and
    plain_window = false           #   grab the keyboard; show them as plain windows

    [bridge]
    allow = ["bank.example"]       # only these sites (or domains) may start orders
    block = ["evil.example"]       # these may not

    [relay]
    allow = ["relay.internal.example"]  # order relays on the organisation's own addresses:
                                        # host (port 443) or host:port, [v6]:port
    ask = ["https://relay.bank.example"]  # relays "Orders waiting for me" asks (phone orders)

    [pkcs11]
    modules = ["/opt/bank/lib/bank-pkcs11.so"]  # the organisation's own PKCS#11 modules
    p11kit = true                  # also the modules p11-kit is configured with (default)
    intermediates = ["/etc/eid-agent/issuing-ca.pem"]  # issuing CAs a token cannot hold

The Settings window writes the keys it owns with ``save_settings`` (the rest of the file,
comments included, stays as the organisation wrote it) — the one importer of tomlkit.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eidcore.atomicfile import atomic_write_bytes

__all__ = [
    "AgentConfig",
    "ConfigError",
    "Settings",
    "load_config",
    "relay_address",
    "save_settings",
]

LANGUAGES = ("sv", "en")


class ConfigError(ValueError):
    """The config file exists but cannot be used; the message says where."""


@dataclass(frozen=True)
class Settings:
    """What the Settings window shows and changes."""

    language: str | None = None  # None: the session's language
    proxy: str | None = None  # "none", a URL (credentials inside), or None: the system's
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    raise_dialogs: bool = False
    plain_window: bool = False


@dataclass(frozen=True)
class AgentConfig:
    issuer_url: str | None = None
    issuer_ca: str | None = None
    settings: Settings = field(default_factory=Settings)
    # order relays the agent may fetch from although their addresses are the organisation's
    # own (internal relays), as host:port; a page cannot add to this
    relay_allow: tuple[str, ...] = ()
    pkcs11_modules: tuple[str, ...] = ()  # absolute paths of PKCS#11 modules to load
    p11kit: bool = True  # and those p11-kit's configuration names
    intermediates: tuple[bytes, ...] = ()  # issuing CA certificates (DER) for tokens' chains
    # relays asked for the phone orders waiting for the person (origins); only these are
    # ever shown which BankIDs the person holds
    relay_ask: tuple[str, ...] = ()

    @property
    def proxy(self) -> str | None:
        return self.settings.proxy


def load_config(path: Path) -> AgentConfig:
    """A missing file is an empty config. Raises: ConfigError."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AgentConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    read = _Reader(path, doc)
    url = read.text("issuer", "url")
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(f"{path}: issuer.url must be an http(s) URL")
    language = read.text("ui", "language")
    if language is not None and language not in LANGUAGES:
        raise ConfigError(f"{path}: ui.language must be one of {', '.join(LANGUAGES)}")
    proxy = read.text("network", "proxy")
    settings = Settings(
        language=language,
        proxy=None if proxy == "system" else proxy,
        allow=read.texts("bridge", "allow"),
        block=read.texts("bridge", "block"),
        raise_dialogs=read.flag("ui", "raise_dialogs"),
        plain_window=read.flag("ui", "plain_window"),
    )
    try:
        relays = tuple(relay_address(entry) for entry in read.texts("relay", "allow"))
    except ValueError as exc:
        raise ConfigError(f"{path}: relay.allow: {exc}") from None
    modules = read.texts("pkcs11", "modules")
    if not all(m.startswith("/") for m in modules):
        raise ConfigError(f"{path}: pkcs11.modules must be absolute paths")
    p11kit = read.flag("pkcs11", "p11kit", default=True)
    authorities = tuple(
        der for name in read.texts("pkcs11", "intermediates") for der in _certificates(path, name)
    )
    ask = read.texts("relay", "ask")
    if not all(a.startswith(("https://", "http://")) for a in ask):
        raise ConfigError(f"{path}: relay.ask must be https origins of order relays")
    return AgentConfig(
        url, read.text("issuer", "ca"), settings, relays, modules, p11kit, authorities, ask
    )


def relay_address(entry: str) -> str:
    """``host:port`` for a ``[relay] allow`` entry: a bare host means its port 443 (an
    entry opens one relay, not every service the host runs).

    Raises: ValueError, saying what is wrong."""
    host, port = entry.strip().lower(), "443"
    if host.startswith("["):
        inside, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not [IPv6 address] or [IPv6 address]:port")
        host, port = inside, rest[1:] or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    elif ":" in host:
        raise ValueError(f"{entry!r}: an IPv6 address goes in brackets, [address]:port")
    host = host.rstrip(".")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise ValueError(f"{entry!r} is not host or host:port")
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"


def _certificates(config: Path, name: str) -> list[bytes]:
    """The certificates in a PEM file, as DER. Raises: ConfigError."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        found = x509.load_pem_x509_certificates(Path(name).read_bytes())
    except OSError as exc:
        raise ConfigError(f"{config}: pkcs11.intermediates: {name}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{config}: pkcs11.intermediates: {name} holds no certificate") from None
    return [cert.public_bytes(Encoding.DER) for cert in found]


class _Reader:
    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self._path, self._doc = path, doc

    def _get(self, table: str, key: str) -> Any:
        section = self._doc.get(table, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{self._path}: [{table}] must be a table")
        return section.get(key)

    def text(self, table: str, key: str) -> str | None:
        value = self._get(table, key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{self._path}: {table}.{key} must be a string")
        return value

    def texts(self, table: str, key: str) -> tuple[str, ...]:
        value = self._get(table, key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._path}: {table}.{key} must be a list of strings")
        return tuple(value)

    def flag(self, table: str, key: str, *, default: bool = False) -> bool:
        value = self._get(table, key)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{self._path}: {table}.{key} must be true or false")
        return default if value is None else value


def save_settings(path: Path, settings: Settings) -> None:
    """Write the Settings window's keys into ``path``, atomically and readable by its
    owner only (a proxy password may be inside). Raises: ConfigError, OSError."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = tomlkit.document()
    except (UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(f"{path}: {exc}") from None

    def put(table: str, key: str, value: Any) -> None:
        section = doc.get(table)
        if section is None:
            if value is None or value in ((), False):
                return
            section = tomlkit.table()
            doc.add(table, section)
        if value is None:
            section.pop(key, None)
        else:
            section[key] = list(value) if isinstance(value, tuple) else value

    put("ui", "language", settings.language)
    put("ui", "raise_dialogs", settings.raise_dialogs)
    put("ui", "plain_window", settings.plain_window)
    put("network", "proxy", settings.proxy)
    put("bridge", "allow", settings.allow)
    put("bridge", "block", settings.block)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, tomlkit.dumps(doc).encode(), mode=0o600)
