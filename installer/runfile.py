"""The Linux installer: one self-extracting shell script per release (ADR 0011).

    sh eid-agent-<version>-linux.run [--force] [--no-start]

It carries the release bundle and the repository's root metadata (the trust anchor,
pinned, never fetched on first use) as a gzip'd tar after a fixed-size header, finds a
Python 3.11, and hands over to the bundle's own ``eid-agent install --desktop --start``:
the versions layout the updater uses, the menu and autostart entries, a command in
``~/.local/bin``, and the agent started. Per user: no root, so the agent can update
itself later. Running it again repairs an install; an older version is refused unless
``--force``.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from agent.updater.install import InstallError, bundle_version

__all__ = ["build_installer", "installer_name"]

# The payload starts at byte {offset}; the header is padded to a fixed size, so the offset
# is known before the header is written.
HEADER_SIZE = 4096
_HEADER = """#!/bin/sh
# eid-agent {version} installer for Linux: installs for this user only, no root needed.
#   sh {name} [--force] [--no-start]
# Repository: {repository}
set -eu
force=""; start="--start"
for arg in "$@"; do
  case "$arg" in
    --force) force="--force" ;;
    --no-start) start="" ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "eid-agent installer: unknown option $arg" >&2; exit 2 ;;
  esac
done
python=""
for candidate in python3.11 python3; do
  found=$(command -v "$candidate") || continue
  if "$found" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    python=$found; break
  fi
done
if [ -z "$python" ]; then
  echo "eid-agent installer: Python 3.11 is needed (Debian 12: sudo apt install python3)" >&2
  exit 69
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
tail -c +{start} "$0" | tar -xzf - -C "$tmp"
"$tmp/bundle/eid-agent" install --repository "$(cat "$tmp/repository")" \\
  --trust "$tmp/root.json" --bundle "$tmp/bundle" --desktop $start $force
exit $?
"""


def installer_name(version: str) -> str:
    return f"eid-agent-{version}-linux.run"


def build_installer(out_dir: Path, bundle: Path, root_json: bytes, repository: str) -> Path:
    """Write the installer for ``bundle`` into ``out_dir``; returns its path.

    Raises: InstallError (not a bundle), ValueError (root metadata not JSON, or a
    repository URL that could break the script)."""
    version = str(bundle_version(bundle))
    json.loads(root_json)
    if not repository.startswith(("https://", "http://")) or any(
            c in repository for c in "\"'`$\\\n"):  # fmt: skip
        raise ValueError(f"not a repository URL: {repository!r}")
    name = installer_name(version)
    header = _HEADER.format(version=version, name=name, repository=repository,
                            start=HEADER_SIZE + 1).encode()  # fmt: skip
    if len(header) > HEADER_SIZE - 1:
        raise InstallError("the installer header outgrew its fixed size")
    header = header.ljust(HEADER_SIZE - 1, b"#") + b"\n"  # sh stops at `exit` above
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz", compresslevel=9) as tar:
        tar.add(bundle, arcname="bundle", filter=_no_caches)
        for arcname, data in (("root.json", root_json), ("repository", repository.encode())):
            info = tarfile.TarInfo(arcname)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    temporary = path.with_name(f".{name}.tmp")
    temporary.write_bytes(header + payload.getvalue())
    temporary.chmod(0o755)
    temporary.replace(path)
    return path


def _no_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name or info.name.endswith(".pyc"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
