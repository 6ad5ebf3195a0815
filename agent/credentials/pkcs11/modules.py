"""Which PKCS#11 modules to load: p11-kit's configuration of this machine, then the
organisation's own paths from ``config.toml``. Pure: the folders and file texts are inputs.

p11-kit's rules followed here (pkcs11.conf(5)): one ``NAME.module`` file per module in the
package folder, the system folder and the person's folder, a later folder's file replacing
an earlier one of the same name; ``module:`` relative to the module folder; ``enable-in`` /
``disable-in`` name the programs that may load it. Trust-policy modules hold certificates of
authorities, never keys, and p11-kit's own proxy would load every module a second time:
neither is loaded.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROGRAM = "eid-agent"  # the name enable-in / disable-in refer to
SKIPPED_FILES = frozenset({"p11-kit-proxy.so", "p11-kit-trust.so", "p11-kit-client.so"})


@dataclass(frozen=True)
class ModuleEntry:
    name: str  # the .module file's name, or the file name of a configured path
    path: Path
    source: str  # "p11-kit" or "config"


def parse_module_file(text: str) -> dict[str, str]:
    """``key: value`` lines; ``#`` starts a comment line. Later keys win, as in p11-kit."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        values[key.strip().lower()] = value.strip()
    return values


def _names(value: str | None) -> set[str]:
    return {n.strip() for n in (value or "").split(",") if n.strip()}


def _wanted(values: Mapping[str, str], program: str) -> bool:
    if values.get("trust-policy", "").lower() in ("yes", "true"):
        return False
    enable = _names(values.get("enable-in"))
    if enable and program not in enable:
        return False
    return program not in _names(values.get("disable-in"))


def p11kit_modules(
    files: Iterable[tuple[str, str]], module_dir: Path, *, program: str = PROGRAM
) -> list[ModuleEntry]:
    """``files``: (file name, text) in p11-kit's order (package, system, person's)."""
    chosen: dict[str, Mapping[str, str]] = {}
    for file_name, text in files:
        if file_name.endswith(".module"):
            chosen[file_name.removesuffix(".module")] = parse_module_file(text)
    entries = []
    for name in sorted(chosen):
        values = chosen[name]
        module = values.get("module")
        if not module or not _wanted(values, program):
            continue
        path = Path(module) if os.path.isabs(module) else module_dir / module
        if path.name in SKIPPED_FILES:
            continue
        entries.append(ModuleEntry(name, path, "p11-kit"))
    return entries


def merged(p11kit: Sequence[ModuleEntry], configured: Sequence[str]) -> list[ModuleEntry]:
    """p11-kit's modules and the configured paths, each file once (Debian's softhsm2
    module file names the same library through another link: compared resolved)."""
    out: list[ModuleEntry] = []
    seen: set[str] = set()
    for entry in [*p11kit, *(ModuleEntry(Path(p).name, Path(p), "config") for p in configured)]:
        key = os.path.realpath(entry.path)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


# -- where this machine keeps them (the thin, impure part) -----------------------------------


def config_dirs(home: Path | None = None) -> list[Path]:
    """p11-kit's folders in its order; the person's last unless pkcs11.conf says none."""
    system = [Path("/usr/share/p11-kit/modules"), Path("/etc/pkcs11/modules")]
    try:
        conf = parse_module_file(Path("/etc/pkcs11/pkcs11.conf").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        conf = {}
    user_config = conf.get("user-config", "merge").lower()
    if user_config == "none":
        return system
    base = Path(os.environ.get("XDG_CONFIG_HOME") or (home or Path.home()) / ".config")
    user = [base / "pkcs11" / "modules"]
    return user if user_config == "only" else [*system, *user]


def module_dir() -> Path:
    """Where p11-kit resolves a relative ``module:`` (Debian: the multiarch folder)."""
    arch = sysconfig.get_config_var("MULTIARCH") or f"{os.uname().machine}-linux-gnu"
    for candidate in (
        Path(f"/usr/lib/{arch}/pkcs11"),
        Path("/usr/lib64/pkcs11"),
        Path("/usr/lib/pkcs11"),
    ):
        if candidate.is_dir():
            return candidate
    return Path(f"/usr/lib/{arch}/pkcs11")


def read_config_files(dirs: Sequence[Path]) -> list[tuple[str, str]]:
    files = []
    for directory in dirs:
        try:
            names = sorted(p.name for p in directory.iterdir() if p.suffix == ".module")
        except OSError:
            continue
        for name in names:
            try:
                files.append((name, (directory / name).read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                continue  # p11-kit skips an unreadable file too
    return files


def find_modules(configured: Sequence[str], *, use_p11kit: bool = True) -> list[ModuleEntry]:
    found = p11kit_modules(read_config_files(config_dirs()), module_dir()) if use_p11kit else []
    return merged(found, configured)
