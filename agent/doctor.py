"""``eid-agent doctor``: what support needs to know, in one report a person can copy.

Each check is a small function returning a ``Check`` (ok, warning or problem, and one
line); the report is plain text or JSON. Nothing secret goes in: no passwords, PINs,
activation codes or proxy passwords (a proxy is shown as scheme://host:port), and no
personal numbers (credentials are counted, not listed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import os
import platform
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from agent import __version__

__all__ = ["Check", "diagnose", "render"]

TIMEOUT = aiohttp.ClientTimeout(total=5)
MAX_SKEW = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "warning" | "problem" | "info"
    detail: str


def _versions() -> Check:
    return Check("versions", "info", f"eid-agent {__version__}, Python "
                 f"{platform.python_version()}, {platform.platform()}")  # fmt: skip


def _data_dir(data_dir: Path) -> Check:
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data folder", "problem", f"{data_dir} is not writable: {exc.strerror}")
    return Check("data folder", "ok", f"{data_dir} is writable")


def _privacy(data_dir: Path) -> Check:
    """Whether what holds credentials, settings and logs is the owner's alone (the agent
    repairs it when it starts; this says so before)."""
    open_to_others = []
    for path in (data_dir, data_dir / "tokens", *sorted(data_dir.glob("agent*.log*"))):
        try:
            info = path.lstat()
        except OSError:
            continue
        if info.st_uid != os.getuid():
            open_to_others.append(f"{path.name or path} (another user's)")
        elif info.st_mode & 0o077:
            open_to_others.append(f"{path.name} ({stat.filemode(info.st_mode)})")
    if open_to_others:
        return Check("permissions", "warning", "open to other users: " + ", ".join(
            open_to_others) + "; the agent makes them owner-only when it starts")  # fmt: skip
    return Check("permissions", "ok", "the data folder, credentials and logs are owner-only")


def _credentials(data_dir: Path, now: dt.datetime) -> Check:
    from agent.tokens import DamagedEntry, TokenStore

    entries = TokenStore(data_dir).entries()
    damaged = sum(isinstance(e, DamagedEntry) for e in entries)
    usable = sum(1 for e in entries if not isinstance(e, DamagedEntry)
                 and e.state(now).value == "usable")  # fmt: skip
    status = "warning" if damaged or not usable else "ok"
    return Check("BankIDs on file", status,
                 f"{len(entries)} on file, {usable} usable, {damaged} damaged")  # fmt: skip


def _cards() -> Check:
    try:
        from agent.tokens.card.errors import CardError
        from agent.tokens.card.pcsc import PcscContext

        context = PcscContext()
        try:
            readers = context.readers()
        finally:
            context.close()
    except CardError as exc:
        return Check("card readers", "warning", f"the smart-card service (pcscd) answers "
                     f"nothing: {type(exc).__name__}")  # fmt: skip
    if not readers:
        return Check("card readers", "info", "pcscd runs; no reader connected")
    return Check("card readers", "ok", f"pcscd runs; readers: {', '.join(readers)}")


async def _bridge(port: int) -> Check:
    url = f"http://127.0.0.1:{port}/v1/info"
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.get(url, headers={"Origin": "https://doctor.invalid"}) as resp,
        ):
            body = await resp.json(content_type=None)
    except (aiohttp.ClientConnectorError, ConnectionRefusedError):
        return Check(
            "bridge", "warning", f"nothing listens on port {port}: the agent is not running"
        )
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Check("bridge", "problem", f"port {port} is held by another program "
                     f"({type(exc).__name__})")  # fmt: skip
    if isinstance(body, dict) and "apiVersion" in body:
        return Check("bridge", "ok", f"eid-agent {body.get('version')} answers on port {port}; "
                     f"update state {body.get('updateState')}")  # fmt: skip
    return Check("bridge", "problem", f"port {port} is held by another program")


async def _reachable(name: str, url: str, proxy: str | None, ca_file: str | None,
                     now: dt.datetime) -> list[Check]:  # fmt: skip
    """The server answers (any HTTP status) through ``proxy``; its clock is compared."""
    import ssl

    context: ssl.SSLContext | bool = False
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=ca_file) if ca_file else True
    from agent.enrol import shown_proxy, split_proxy_credentials

    proxy_url, proxy_auth = split_proxy_credentials(proxy)
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT, trust_env=False) as session,
            session.get(url, proxy=proxy_url, proxy_auth=proxy_auth, ssl=context) as resp,
        ):
            date = resp.headers.get("Date")
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return [Check(name, "problem", f"{url} unreachable via {shown_proxy(proxy)}: "
                      f"{type(exc).__name__}")]  # fmt: skip
    checks = [Check(name, "ok", f"{url} answers (HTTP {status}) via {shown_proxy(proxy)}")]
    if date:
        skew = email.utils.parsedate_to_datetime(date) - now
        status_word = "ok" if abs(skew) <= MAX_SKEW else "problem"
        checks.append(Check("clock", status_word,
                            f"{skew.total_seconds():+.0f} s against {name}'s clock"))  # fmt: skip
    return checks


async def diagnose(data_dir: Path, port: int, issuer: tuple[str, str | None, str | None] | None,
                   update_url: str | None, now: dt.datetime) -> list[Check]:  # fmt: skip
    """Every check, in the order a supporter reads them."""
    checks = [_versions(), _data_dir(data_dir), _privacy(data_dir),
              _credentials(data_dir, now), _cards(),
              await _bridge(port)]  # fmt: skip
    env_proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if update_url:
        checks += await _reachable("update repository", update_url.rstrip("/") +
                                   "/metadata/timestamp.json", env_proxy, None, now)  # fmt: skip
    else:
        checks.append(Check("update repository", "info", "not installed with a repository"))
    if issuer is not None:
        url, ca_file, proxy = issuer
        from agent.enrol import proxy_for

        chosen = proxy_for(url, proxy, os.environ)
        checks += await _reachable("issuer", url.rstrip("/") + "/health", chosen, ca_file, now)
    else:
        checks.append(Check("issuer", "info", "no issuer configured"))
    return checks


def render(checks: list[Check], *, as_json: bool) -> str:
    if as_json:
        return json.dumps([asdict(c) for c in checks], indent=2) + "\n"
    marks = {"ok": "✓", "warning": "!", "problem": "✗", "info": "·"}
    width = max(len(c.name) for c in checks)
    return "".join(f"{marks[c.status]} {c.name:<{width}}  {c.detail}\n" for c in checks)


def exit_status(checks: list[Check]) -> int:
    return 1 if any(c.status == "problem" for c in checks) else 0


def run_doctor(data_dir: Path, port: int, issuer: tuple[str, str | None, str | None] | None,
               update_url: str | None, *, as_json: bool) -> tuple[str, int]:  # fmt: skip
    checks = asyncio.run(diagnose(data_dir, port, issuer, update_url, dt.datetime.now(dt.UTC)))
    return render(checks, as_json=as_json), exit_status(checks)
