"""The secrets the suite types (passwords, PUKs, activation codes), and a scan of every
file the run left behind — the agents' and issuers' logs included — for any of them.
conftest.py runs the scan when the session ends and fails the run on a hit.

PINs of four or five digits are left out of this whole-run scan: such numbers occur by
chance in logs (ports, process ids); the card tests assert their absence where they
are typed. Proxy passwords are stored in the settings file by design (its owner-only
mode is tested), so config files are not scanned for them; nor are source code copies
and the virtual card's memory (see _by_design)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# typed by tests into the agent's dialogs, console or the issuer's enrolment
SECRETS: set[str] = {
    "correct horse",  # conftest.PASSWORD
    "not the password",
    "a brand new password",
    "not-the-right-one",
    "12345678",
    "87654321",  # card_kit.PUK and the PUK tests' wrong one
}
PROXY_SECRETS = {"proxy-secret-42"}
MAX_BYTES = 8 * 1024 * 1024  # larger files are release archives and bundles


def remember(secret: str) -> None:
    """A secret made during the run (an activation code)."""
    SECRETS.add(secret)
    if "-" in secret:
        SECRETS.add(secret.replace("-", ""))  # codes are accepted without dashes too


@dataclass
class ScanReport:
    files: int = 0
    bytes: int = 0
    secrets: int = 0
    hits: list[str] = field(default_factory=list)


def scan(root: Path) -> ScanReport:
    report = ScanReport(secrets=len(SECRETS) + len(PROXY_SECRETS))
    needles = [(s, s.encode()) for s in SECRETS]
    proxy = [(s, s.encode()) for s in PROXY_SECRETS]
    bundles = {p.parent for p in root.rglob("bundle.json")}  # the program, as shipped
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink() or _by_design(path):
            continue
        if bundles & set(path.parents):
            continue
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        report.files += 1
        report.bytes += size
        wanted = needles if path.suffix == ".toml" else needles + proxy
        for secret, needle in wanted:
            if needle in data:
                report.hits.append(f"{path}: {secret!r}")
    return report


_CODE = {".py", ".pyc", ".so", ".deb", ".run", ".gz", ".patch", ".typelib"}


def _by_design(path: Path) -> bool:
    """Files that hold such strings without leaking anything: the program itself as
    release bundles, archives and installers carry it (a PUK like 12345678 is a substring
    of "0123456789abcdef" in code and libraries), and the virtual card's own memory,
    which keeps its PINs as a card does."""
    return path.suffix in _CODE or path.name == "card.json" or path.suffix == ".vcard"
