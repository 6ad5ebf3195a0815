"""Build a release bundle: the folder an installed agent runs from (ADR 0008).

A bundle is::

    bundle.json      {"format": 1, "name": "eid-agent", "version": ..., "selfContained": ...}
    eid-agent        the launcher (POSIX sh): runs lib/ on the recorded Python
    lib/agent/...    the agent's code, with the version stamped into agent/__init__.py
    lib/eidcore/...  the kernel it stands on (messages, personal numbers, files, …)
    lib/<deps>/...   self-contained bundles only: every runtime dependency, copied from
                     the build environment's installed distributions

A self-contained bundle runs with ``python -S`` (no site-packages at all), so it proves
that it carries everything it needs. An agent-only bundle uses the interpreter's own
site-packages for the dependencies (as a distribution package would); the tests use it
because it is small, which keeps patches and archives quick to build.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

import agent
import eidcore
from agent.updater.install import BUNDLE_FILE, LAUNCHER

__all__ = ["BundleError", "build_bundle"]

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")
# Runs lib/__main__.py with lib/ as sys.path[0]; -E -s keep PYTHONPATH and the user's
# site-packages out, so the bundle runs its own code and nothing the environment slips in.
# The Python it was built for when one was named, else the machine's own 3.11 (an
# installer built on one machine runs on another, where a build path means nothing).
_LAUNCHER = """#!/bin/sh
# eid-agent {version}: runs this bundle's code.
here=$(dirname "$(readlink -f "$0")")
python="{python}"
if [ ! -x "$python" ]; then
  python=""
  for candidate in python3.11 python3; do  # its compiled modules are for 3.11
    found=$(command -v "$candidate") || continue
    if "$found" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python=$found; break
    fi
  done
  if [ -z "$python" ]; then
    echo "eid-agent: needs Python 3.11 (Debian 12: apt install python3)" >&2; exit 69
  fi
fi
exec "$python" -E -s {flags}"$here/lib" "$@"
"""
_MAIN = """import sys
from agent.cli import entry
entry()
"""


class BundleError(Exception):
    """The bundle could not be built or is not one."""


def build_bundle(
    out: Path,
    version: str,
    *,
    self_contained: bool = True,
    python: str | None = None,
    source: Path | None = None,
) -> Path:
    """Write a bundle of the running agent's code (or of the checkout ``source``: its
    ``agent/`` and ``eidcore/``) as ``version`` into ``out`` (new). ``bundle.json``
    records what a rebuild needs to give the same bytes: the dependencies' versions and
    the interpreter the launcher names.

    Raises:
        BundleError: ``out`` exists, the version is not a version, or a dependency is
            not installed in the build environment.
    """
    try:
        Version(version)
    except InvalidVersion:
        raise BundleError(f"not a version: {version!r}") from None
    if out.exists():
        raise BundleError(f"{out} exists already")
    lib = out / "lib"
    lib.mkdir(parents=True)
    for package in (agent, eidcore):
        assert package.__file__ is not None  # a regular package, not a namespace
        code = source / package.__name__ if source else Path(package.__file__).parent
        if not (code / "__init__.py").is_file():
            raise BundleError(f"{code} is not the {package.__name__} package")
        shutil.copytree(code, lib / package.__name__, ignore=_SKIP)
    init = lib / "agent" / "__init__.py"
    stamped, count = re.subn(
        r'^__version__ = ".*"$',
        f'__version__ = "{version}"',
        init.read_text(encoding="utf-8"),
        flags=re.M,
    )
    if count != 1:
        raise BundleError("agent/__init__.py has no __version__ line to stamp")
    init.write_text(stamped, encoding="utf-8")
    (lib / "__main__.py").write_text(_MAIN, encoding="utf-8")
    dependencies: dict[str, str] = {}
    if self_contained:
        for dist in _runtime_closure("eid-agent"):
            _copy_distribution(dist, lib)
            dependencies[canonicalize_name(dist.metadata["Name"])] = dist.version
    launcher = out / LAUNCHER
    interpreter = _python(python, self_contained)
    launcher.write_text(
        _LAUNCHER.format(
            version=version, python=interpreter, flags="-S " if self_contained else ""
        ),
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    manifest = {
        "format": 1,
        "name": "eid-agent",
        "version": version,
        "selfContained": self_contained,
        "python": interpreter,
        "dependencies": dict(sorted(dependencies.items())),
    }
    (out / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def _python(python: str | None, self_contained: bool) -> str:
    """The interpreter the launcher names. A self-contained bundle names none unless told:
    it finds the machine's 3.11 where it runs, and carries no path of the build machine.
    An agent-only bundle needs the build's interpreter, whose site-packages it uses."""
    if python is not None:
        return python
    return "" if self_contained else sys.executable


def _runtime_closure(name: str) -> list[md.Distribution]:
    """The installed distributions ``name`` needs at run time (no extras)."""
    seen: dict[str, md.Distribution] = {}
    todo = [name]
    while todo:
        key = canonicalize_name(todo.pop())
        if key in seen:
            continue
        try:
            dist = md.distribution(key)
        except md.PackageNotFoundError:
            raise BundleError(f"{key} is not installed in the build environment") from None
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    seen.pop(canonicalize_name(name))  # the agent's own code is copied from its source
    return list(seen.values())


def _copy_distribution(dist: md.Distribution, lib: Path) -> None:
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] == ".." or "__pycache__" in parts:
            continue  # scripts land outside site-packages; bytecode is rebuilt
        src = Path(str(file.locate()))
        if not src.is_file():
            continue
        dst = lib.joinpath(*parts)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
