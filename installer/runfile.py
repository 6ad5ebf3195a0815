"""The Linux installer: one self-extracting shell script per release (ADR 0011).

    sh eid-agent-<version>-linux.run [--force] [--no-start] [--as-root]

It carries the release's own signed archive (the repository's target, byte for byte) and
the repository's root metadata (the trust anchor, pinned, never fetched on first use) as
a tar after a fixed-size header, finds a Python 3.11, unpacks the archive and hands over
to the bundle's own ``eid-agent install --desktop --start``: the versions layout the
updater uses, the menu and autostart entries, a command in ``~/.local/bin``, and the
agent started. The archive is kept beside the install, so the first update is a patch
against it, not the whole next archive. Per user: no root, so the agent can update itself
later. Running it again repairs an install; an older version is refused unless
``--force``. Run as root it stops and says why (a per-user install belongs to the person;
the Debian package is the system-wide way) unless ``--as-root`` says root itself is meant.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

__all__ = ["build_installer", "installer_name"]

# The payload starts at byte {offset}; the header is padded to a fixed size, so the offset
# is known before the header is written.
HEADER_SIZE = 4096
_HEADER = """#!/bin/sh
# eid-agent {version} installer for Linux: installs for this user only, no root needed.
#   sh {name} [--force] [--no-start] [--as-root]
# Repository: {repository}
set -eu
say() {{  # say SWEDISH ENGLISH: in the person's language, on stderr
  case "${{LC_ALL:-${{LC_MESSAGES:-${{LANG:-}}}}}}" in
    sv*) printf 'eid-agent: %s\\n' "$1" >&2 ;;
    *) printf 'eid-agent: %s\\n' "$2" >&2 ;;
  esac
}}
force=""; start="--start"; as_root=""
for arg in "$@"; do
  case "$arg" in
    --force) force="--force" ;;
    --no-start) start="" ;;
    --as-root) as_root=1 ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) say "okänt val: $arg" "unknown option: $arg"; exit 2 ;;
  esac
done
if [ "$(id -u)" = 0 ] && [ -z "$as_root" ]; then
  say "kör inte installationen som root. Den installerar för den som kör den, så att \\
programmet kan uppdatera sig själv: kör den som dig själv. För alla på datorn: installera \\
Debianpaketet (sudo apt install ./eid-agent_{version}_*.deb). Menar du root själv: --as-root." \\
      "do not run the installer as root. It installs for whoever runs it, so that the \\
agent can update itself: run it as yourself. For everyone on this computer, install the \\
Debian package (sudo apt install ./eid-agent_{version}_*.deb). If you mean root itself: --as-root."
  exit 77
fi
python=""
for candidate in python3.11 python3; do
  found=$(command -v "$candidate") || continue
  if "$found" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    python=$found; break
  fi
done
if [ -z "$python" ]; then
  say "Python 3.11 behövs (Debian 12: sudo apt install python3)" \\
      "Python 3.11 is needed (Debian 12: sudo apt install python3)"
  exit 69
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
tail -c +{start} "$0" | tar -xf - -C "$tmp"
mkdir "$tmp/bundle"
tar -xzf "$tmp/archive.tar.gz" -C "$tmp/bundle"
"$tmp/bundle/eid-agent" install --repository "$(cat "$tmp/repository")" \\
  --trust "$tmp/root.json" --bundle "$tmp/bundle" --archive "$tmp/archive.tar.gz" \\
  --installer "$(readlink -f "$0")" --desktop $start $force
exit $?
"""


def installer_name(version: str) -> str:
    return f"eid-agent-{version}-linux.run"


def build_installer(
    out_dir: Path, archive: Path, version: str, root_json: bytes, repository: str, *, epoch: int
) -> Path:
    """Write the installer for the release ``archive`` (of ``version``) into ``out_dir``;
    returns its path. The same inputs give the same bytes.

    Raises: ValueError (root metadata not JSON, or a repository URL that could break the
    script), OSError (the archive unreadable)."""
    json.loads(root_json)
    if not repository.startswith(("https://", "http://")) or any(
        c in repository for c in "\"'`$\\\n"
    ):
        raise ValueError(f"not a repository URL: {repository!r}")
    name = installer_name(version)
    header = _HEADER.format(
        version=version, name=name, repository=repository, start=HEADER_SIZE + 1
    ).encode()
    if len(header) > HEADER_SIZE - 1:
        raise ValueError("the installer header outgrew its fixed size")
    header = header.ljust(HEADER_SIZE - 1, b"#") + b"\n"  # sh stops at `exit` above
    payload = io.BytesIO()
    # not compressed again: the archive is gzip'd already, and kept as it is signed
    with tarfile.open(fileobj=payload, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = (
            ("archive.tar.gz", archive.read_bytes()),
            ("root.json", root_json),
            ("repository", repository.encode()),
        )
        for arcname, data in members:
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), 0o644, epoch
            tar.addfile(info, io.BytesIO(data))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    temporary = path.with_name(f".{name}.tmp")
    temporary.write_bytes(header + payload.getvalue())
    temporary.chmod(0o755)
    temporary.replace(path)
    return path
