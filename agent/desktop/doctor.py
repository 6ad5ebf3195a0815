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
import errno
import json
import logging
import os
import platform
import ssl
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from agent import __version__
from agent.credentials.pkcs11 import ModuleEntry
from agent.net import split_proxy_credentials, tls_for
from eidcore.messages import Language, Term, catalogue

__all__ = ["Check", "Phrase", "diagnose", "render", "say"]

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=5)
MAX_SKEW = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class Phrase:
    """Words for a person, said in their language when the report is rendered: a term
    whose placeholders take plain values, other phrases, or tuples of either (a list)."""

    term: Term
    values: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str  # a stable key (JSON, support scripts); the person reads its term
    status: str  # "ok" | "warning" | "problem" | "info"
    detail: Phrase


NAMES = {  # each check's key and what a person reads for it
    "versions": Term.DOCTOR_VERSIONS,
    "dataFolder": Term.DOCTOR_DATA_FOLDER,
    "permissions": Term.DOCTOR_PERMISSIONS,
    "credentials": Term.DOCTOR_CREDENTIALS,
    "cardReaders": Term.DOCTOR_CARD_READERS,
    "tokens": Term.DOCTOR_TOKENS,
    "bridge": Term.DOCTOR_BRIDGE,
    "updateRepository": Term.DOCTOR_UPDATE_REPOSITORY,
    "issuer": Term.DOCTOR_ISSUER,
    "clock": Term.DOCTOR_CLOCK,
}

_OS_REASONS = {
    errno.EACCES: Term.DOCTOR_REASON_DENIED,
    errno.EPERM: Term.DOCTOR_REASON_DENIED,
    errno.EROFS: Term.DOCTOR_REASON_READ_ONLY,
    errno.ENOSPC: Term.DOCTOR_REASON_FULL,
    errno.EDQUOT: Term.DOCTOR_REASON_FULL,
}


def _os_reason(exc: OSError) -> Phrase:
    term = _OS_REASONS.get(exc.errno or 0)
    if term is not None:
        return Phrase(term)
    return Phrase(Term.DOCTOR_REASON_SYSTEM, {"name": errno.errorcode.get(exc.errno or 0, "?")})


_NETWORK_REASONS: tuple[tuple[tuple[type[BaseException], ...], Term], ...] = (
    # the first that matches: a certificate or proxy failure is also a connector error
    ((aiohttp.ClientConnectorCertificateError, ssl.SSLError), Term.DOCTOR_REASON_CERTIFICATE),
    ((aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError), Term.DOCTOR_REASON_PROXY),
    ((aiohttp.ClientResponseError, aiohttp.ServerDisconnectedError), Term.DOCTOR_REASON_PROTOCOL),
)


def _network_reason(exc: BaseException) -> Phrase:
    """Why a server could not be reached, in words (the class name goes to the log)."""
    if isinstance(exc, TimeoutError):
        return Phrase(Term.DOCTOR_REASON_TIMEOUT, {"seconds": int(TIMEOUT.total or 0)})
    term = next(
        (t for types, t in _NETWORK_REASONS if isinstance(exc, types)), Term.DOCTOR_REASON_CONNECT
    )
    return Phrase(term)


def _via(proxy: str | None) -> Phrase:
    from agent.net import shown_proxy

    if not proxy:
        return Phrase(Term.DOCTOR_NO_PROXY)
    return Phrase(Term.DOCTOR_VIA_PROXY, {"proxy": shown_proxy(proxy).removeprefix("proxy ")})


def _versions() -> Check:
    return Check(
        "versions",
        "info",
        Phrase(
            Term.DOCTOR_VERSIONS_DETAIL,
            {
                "version": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        ),
    )


def _data_dir(data_dir: Path) -> Check:
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "dataFolder",
            "problem",
            Phrase(Term.DOCTOR_NOT_WRITABLE, {"path": str(data_dir), "reason": _os_reason(exc)}),
        )
    return Check("dataFolder", "ok", Phrase(Term.DOCTOR_WRITABLE, {"path": str(data_dir)}))


def _privacy(data_dir: Path) -> Check:
    """Whether what holds credentials, settings and logs is the owner's alone (the agent
    repairs it when it starts; this says so before)."""
    open_to_others: list[object] = []
    for path in (data_dir, data_dir / "tokens", *sorted(data_dir.glob("agent*.log*"))):
        try:
            info = path.lstat()
        except OSError:
            continue
        if info.st_uid != os.getuid():
            open_to_others.append(Phrase(Term.DOCTOR_ANOTHER_USERS, {"name": path.name or path}))
        elif info.st_mode & 0o077:
            open_to_others.append(f"{path.name} ({stat.filemode(info.st_mode)})")
    if open_to_others:
        return Check(
            "permissions",
            "warning",
            Phrase(Term.DOCTOR_OPEN_TO_OTHERS, {"paths": tuple(open_to_others)}),
        )
    return Check("permissions", "ok", Phrase(Term.DOCTOR_OWNER_ONLY))


def _credentials(data_dir: Path, now: dt.datetime) -> Check:
    from agent.credentials import CredentialStore, DamagedEntry

    entries = CredentialStore(data_dir).entries()
    damaged = sum(isinstance(e, DamagedEntry) for e in entries)
    usable = sum(
        1 for e in entries if not isinstance(e, DamagedEntry) and e.state(now).value == "usable"
    )
    status = "warning" if damaged or not usable else "ok"
    return Check(
        "credentials",
        status,
        Phrase(
            Term.DOCTOR_CREDENTIALS_DETAIL,
            {"total": len(entries), "usable": usable, "damaged": damaged},
        ),
    )


def _cards() -> Check:
    try:
        from agent.credentials.card import CardError, PcscContext

        context = PcscContext()
        try:
            readers = context.readers()
        finally:
            context.close()
    except CardError as exc:
        log.info("doctor: pcscd: %s: %s", type(exc).__name__, exc)
        return Check("cardReaders", "warning", Phrase(Term.DOCTOR_PCSCD_SILENT))
    if not readers:
        return Check("cardReaders", "info", Phrase(Term.DOCTOR_NO_READER))
    return Check("cardReaders", "ok", Phrase(Term.DOCTOR_READERS, {"readers": tuple(readers)}))


async def _tokens(modules: Sequence[ModuleEntry]) -> Check:
    """Each PKCS#11 module tried as the agent tries it: in a child process."""
    from agent.credentials.pkcs11 import probe

    if not modules:
        return Check("tokens", "info", Phrase(Term.DOCTOR_NO_MODULES))
    results = await asyncio.gather(*(asyncio.to_thread(probe.probe, m.path) for m in modules))
    problems = tuple(
        Phrase(
            Term.DOCTOR_MODULE_PROBLEM,
            {
                "path": str(m.path),
                "reason": Phrase(Term(f"doctor_module_{r.reason}"), {"detail": r.detail}),
            },
        )
        for m, r in zip(modules, results, strict=True)
        if not r.ok
    )
    if problems:
        return Check("tokens", "warning", Phrase(Term.DOCTOR_MODULES, {"modules": problems}))
    names = tuple(f"{m.name} ({r.detail})" for m, r in zip(modules, results, strict=True))
    return Check("tokens", "ok", Phrase(Term.DOCTOR_MODULES, {"modules": names}))


def _update_state(name: object) -> Phrase:
    try:
        return Phrase(Term(f"update_state_{name}"))
    except ValueError:  # an agent of another version: its word is not ours to translate
        return Phrase(Term.DOCTOR_UNKNOWN)


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the sockets listening on TCP ``port`` (the kernel's socket tables)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address "HEX:PORT", state 0A = LISTEN, inode the tenth field
            if len(fields) > 9 and fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):
                inodes.add(fields[9])
    return inodes


def _owns_port(data_dir: Path, port: int) -> bool | None:
    """Whether the agent of ``data_dir`` (its pid file) holds the socket listening on
    ``port``; None where this cannot be told (no socket table: not Linux)."""
    if not Path("/proc/net/tcp").exists():
        return None
    try:
        pid = int((data_dir / "agent.pid").read_text().strip())
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except (OSError, ValueError):
        return False  # no agent runs for this folder (or not as this user)
    listening = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for fd in fds:
        try:
            if os.readlink(fd) in listening:
                return True
        except OSError:
            continue
    return False


async def _bridge(port: int, data_dir: Path) -> Check:
    url = f"http://127.0.0.1:{port}/v1/info"
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.get(url, headers={"Origin": "https://doctor.invalid"}) as resp,
        ):
            body = await resp.json(content_type=None)
    except (aiohttp.ClientConnectorError, ConnectionRefusedError):
        return Check("bridge", "warning", Phrase(Term.DOCTOR_NOT_LISTENING, {"port": port}))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.info("doctor: port %d: %s", port, type(exc).__name__)
        return Check("bridge", "problem", Phrase(Term.DOCTOR_PORT_TAKEN, {"port": port}))
    if isinstance(body, dict) and "apiVersion" in body:
        if await asyncio.to_thread(_owns_port, data_dir, port) is False:
            # an agent answers, but it is not the one whose folder this report is about
            values = {"version": str(body.get("version")), "port": port, "path": str(data_dir)}
            return Check("bridge", "warning", Phrase(Term.DOCTOR_BRIDGE_ELSEWHERE, values))
        return Check(
            "bridge",
            "ok",
            Phrase(
                Term.DOCTOR_BRIDGE_OK,
                {
                    "version": str(body.get("version")),
                    "port": port,
                    "state": _update_state(body.get("updateState")),
                },
            ),
        )
    return Check("bridge", "problem", Phrase(Term.DOCTOR_PORT_TAKEN, {"port": port}))


async def _reachable(
    name: str, url: str, proxy: str | None, ca_file: str | None, now: dt.datetime
) -> list[Check]:
    """The server answers (any HTTP status) through ``proxy``; its clock is compared."""
    context = tls_for(url, ca_file, pinned=True)
    proxy_url, proxy_auth = split_proxy_credentials(proxy)
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT, trust_env=False) as session,
            session.get(url, proxy=proxy_url, proxy_auth=proxy_auth, ssl=context) as resp,
        ):
            date = resp.headers.get("Date")
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.info("doctor: %s: %s: %s", url, type(exc).__name__, exc)
        return [
            Check(
                name,
                "problem",
                Phrase(
                    Term.DOCTOR_UNREACHABLE,
                    {"url": url, "via": _via(proxy), "reason": _network_reason(exc)},
                ),
            )
        ]
    checks = [
        Check(
            name,
            "ok",
            Phrase(Term.DOCTOR_ANSWERS, {"url": url, "status": status, "via": _via(proxy)}),
        )
    ]
    if date:
        skew = email.utils.parsedate_to_datetime(date) - now
        status_word = "ok" if abs(skew) <= MAX_SKEW else "problem"
        checks.append(
            Check(
                "clock",
                status_word,
                Phrase(
                    Term.DOCTOR_SKEW,
                    {"skew": f"{skew.total_seconds():+.0f}", "name": Phrase(NAMES[name])},
                ),
            )
        )
    return checks


async def diagnose(
    data_dir: Path,
    port: int,
    issuer: tuple[str, str | None, str | None] | None,
    update_url: str | None,
    now: dt.datetime,
    modules: Sequence[ModuleEntry] = (),
) -> list[Check]:
    """Every check, in the order a supporter reads them."""
    checks = [
        _versions(),
        _data_dir(data_dir),
        _privacy(data_dir),
        _credentials(data_dir, now),
        _cards(),
        await _tokens(modules),
        await _bridge(port, data_dir),
    ]
    env_proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if update_url:
        checks += await _reachable(
            "updateRepository",
            update_url.rstrip("/") + "/metadata/timestamp.json",
            env_proxy,
            None,
            now,
        )
    else:
        checks.append(Check("updateRepository", "info", Phrase(Term.DOCTOR_NO_REPOSITORY)))
    if issuer is not None:
        url, ca_file, proxy = issuer
        from agent.net import proxy_for

        chosen = proxy_for(url, proxy, os.environ)
        checks += await _reachable("issuer", url.rstrip("/") + "/health", chosen, ca_file, now)
    else:
        checks.append(Check("issuer", "info", Phrase(Term.DOCTOR_NO_ISSUER)))
    return checks


def say(phrase: Phrase, language: Language) -> str:
    """The phrase in ``language``: nested phrases first, lists joined with commas."""

    def value(v: object) -> object:
        if isinstance(v, Phrase):
            return say(v, language)
        if isinstance(v, tuple):
            return ", ".join(str(value(item)) for item in v)
        return v

    text = catalogue().term(phrase.term, language)
    return text.format(**{k: value(v) for k, v in phrase.values.items()})


def render(checks: list[Check], language: Language, *, as_json: bool) -> str:
    """The report: the person's language, the checks' stable keys kept for JSON."""
    if as_json:
        return (
            json.dumps(
                [
                    {
                        "name": c.name,
                        "title": say(Phrase(NAMES[c.name]), language),
                        "status": c.status,
                        "detail": say(c.detail, language),
                    }
                    for c in checks
                ],
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
    marks = {"ok": "✓", "warning": "!", "problem": "✗", "info": "·"}
    titles = [say(Phrase(NAMES[c.name]), language) for c in checks]
    width = max(map(len, titles))
    return "".join(
        f"{marks[c.status]} {title:<{width}}  {say(c.detail, language)}\n"
        for c, title in zip(checks, titles, strict=True)
    )


def exit_status(checks: list[Check]) -> int:
    return 1 if any(c.status == "problem" for c in checks) else 0


def run_doctor(
    data_dir: Path,
    port: int,
    issuer: tuple[str, str | None, str | None] | None,
    update_url: str | None,
    language: Language,
    *,
    as_json: bool,
    modules: Sequence[ModuleEntry] = (),
) -> tuple[str, int]:
    checks = asyncio.run(
        diagnose(data_dir, port, issuer, update_url, dt.datetime.now(dt.UTC), modules)
    )
    return render(checks, language, as_json=as_json), exit_status(checks)
