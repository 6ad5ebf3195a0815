"""The Settings window's rules, pure: what the window shows for the stored settings, and
the settings for what the person entered (or which field is wrong, and why).

The proxy password never travels to the window: its field starts empty, and empty means
"keep the stored one" (``note`` says so); only a new one replaces it.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from dataclasses import dataclass

from agent.config import LANGUAGES, Settings
from eidcore.messages import MessageCode

__all__ = ["ProxyMode", "SettingsForm", "SettingsInvalid", "form_for", "settings_from"]

# a site entry: a host name (a domain covers its subdomains) or an https origin
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


class ProxyMode(enum.StrEnum):
    NONE = "none"
    SYSTEM = "system"  # the environment's HTTPS_PROXY / NO_PROXY
    MANUAL = "manual"


class SettingsInvalid(ValueError):
    """A field the person must correct: ``field`` names it, ``code`` says why."""

    def __init__(self, field: str, code: MessageCode, entry: str = "") -> None:
        super().__init__(f"{field}: {code.name}")
        self.field, self.code, self.entry = field, code, entry


@dataclass(frozen=True)
class SettingsForm:
    language: str  # "" for the session's language
    proxy_mode: ProxyMode
    proxy_url: str  # scheme://host:port, without credentials
    proxy_user: str
    proxy_password: str  # always "" towards the window; "" back means unchanged
    allow: str  # one site per line
    block: str
    raise_dialogs: bool
    plain_window: bool


def form_for(settings: Settings) -> SettingsForm:
    mode, url, user = ProxyMode.SYSTEM, "", ""
    if settings.proxy == "none":
        mode = ProxyMode.NONE
    elif settings.proxy:
        mode = ProxyMode.MANUAL
        parts = urllib.parse.urlsplit(settings.proxy)
        user = urllib.parse.unquote(parts.username or "")
        url = _without_credentials(parts)
    return SettingsForm(
        language=settings.language or "",
        proxy_mode=mode,
        proxy_url=url,
        proxy_user=user,
        proxy_password="",
        allow="\n".join(settings.allow),
        block="\n".join(settings.block),
        raise_dialogs=settings.raise_dialogs,
        plain_window=settings.plain_window,
    )


def settings_from(form: SettingsForm, stored: Settings) -> Settings:
    """Raises: SettingsInvalid."""
    if form.language and form.language not in LANGUAGES:
        raise SettingsInvalid("language", MessageCode.SETTINGS_NOT_SAVED, form.language)
    return Settings(
        language=form.language or None,
        proxy=_proxy(form, stored),
        allow=_sites("allow", form.allow),
        block=_sites("block", form.block),
        raise_dialogs=form.raise_dialogs,
        plain_window=form.plain_window,
    )


def _proxy(form: SettingsForm, stored: Settings) -> str | None:
    if form.proxy_mode is ProxyMode.NONE:
        return "none"
    if form.proxy_mode is ProxyMode.SYSTEM:
        return None
    text = form.proxy_url.strip()
    if "://" not in text:
        text = "http://" + text  # "proxy.example:3128" is how people write it
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise SettingsInvalid("proxy_url", MessageCode.PROXY_INVALID) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port is None
        or parts.username
        or parts.path not in ("", "/")
        or parts.query
    ):
        raise SettingsInvalid("proxy_url", MessageCode.PROXY_INVALID)
    user = form.proxy_user.strip()
    password = form.proxy_password
    if not password and user and stored.proxy:
        old = urllib.parse.urlsplit(stored.proxy)
        if urllib.parse.unquote(old.username or "") == user:
            password = urllib.parse.unquote(old.password or "")  # unchanged
    if password and not user:
        raise SettingsInvalid("proxy_user", MessageCode.PROXY_INVALID)
    base = _without_credentials(parts)
    if not user:
        return base
    credentials = urllib.parse.quote(user, safe="")
    if password:
        credentials += ":" + urllib.parse.quote(password, safe="")
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{credentials}@{rest}"


def _without_credentials(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _sites(field: str, text: str) -> tuple[str, ...]:
    """One entry per line: a domain ("bank.example", covering its subdomains) or an https
    origin ("https://login.bank.example:8443"), as the bridge's origin policy reads them."""
    entries: list[str] = []
    for line in text.splitlines():
        entry = line.strip().lower().rstrip("/")
        if not entry:
            continue
        scheme, sep, host = entry.partition("://")
        if sep:
            name, _, port = host.partition(":")
            entry = f"https://{_ascii(name)}" + (f":{port}" if port else "")
            ok = (
                scheme == "https"
                and bool(_HOST.match(_ascii(name)))
                and (not port or (port.isdigit() and 0 < int(port) < 65536))
            )
        else:
            name, ok = entry, bool(_HOST.match(_ascii(entry)))
            entry = _ascii(entry)
        if not ok:
            raise SettingsInvalid(field, MessageCode.SITE_ENTRY_INVALID, line.strip())
        if entry not in entries:
            entries.append(entry)
    return tuple(entries)


def _ascii(name: str) -> str:
    """An internationalised name as browsers send it (punycode); unchanged if it is not
    a valid name (the pattern then refuses it)."""
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name
