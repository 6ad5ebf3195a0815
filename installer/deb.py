"""The Debian package (ADR 0011): for administrators who deploy with apt.

The agent updates itself, which a root-owned package cannot do for its people; so the
package installs nothing that runs from ``/usr``. It carries the release's signed archive
(byte for byte the repository's target, so each person's first update is a patch), the
pinned root metadata and the repository's address under ``/usr/lib/eid-agent``, and a
system autostart hook that, at each person's login, makes or upgrades *their own*
install from it (the same ``eid-agent install --desktop --start`` the .run installer
runs). From then on each person's agent follows the repository. Removing the package
uninstalls every person's agent (stopped, entries gone; their BankIDs stay).

Built with ``dpkg-deb`` alone: no debhelper needed on the release machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["DEPENDS", "build_deb"]

LIB = "usr/lib/eid-agent"
DPKG = shutil.which("dpkg") or "/usr/bin/dpkg"
DPKG_DEB = shutil.which("dpkg-deb") or "/usr/bin/dpkg-deb"
# Python 3.11 for the bundle's compiled modules; pcscd for cards; GTK, its introspection
# and the appindicator typelib for the dialogs and the tray; cairo for PyGObject.
DEPENDS = (
    "python3.11, pcscd, libpcsclite1, libgirepository-1.0-1, libcairo2, "
    "gir1.2-gtk-3.0, gir1.2-ayatanaappindicator3-0.1"
)

_FIRST_RUN = """#!/bin/sh
# eid-agent: at a person's login, make or upgrade their own install from this package
# (per user, so that it can update itself); then their own autostart entry takes over.
lib=/usr/lib/eid-agent
data="${XDG_DATA_HOME:-$HOME/.local/share}/eid-agent"
want=$(cat "$lib/version")
have=""
if [ -L "$data/install/current" ]; then
  have=$(basename "$(readlink "$data/install/current")")
fi
if [ -n "$have" ] && dpkg --compare-versions "$have" ge "$want"; then
  exit 0  # up to date, or updated beyond the package by itself
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
tar -xzf "$lib/archive.tar.gz" -C "$tmp"
"$tmp/eid-agent" install --repository "$(cat "$lib/repository")" --trust "$lib/root.json" \\
  --bundle "$tmp" --archive "$lib/archive.tar.gz" --desktop --start
"""

_AUTOSTART = """[Desktop Entry]
Type=Application
Name=eid-agent setup
Comment=Installs the e-identification agent for this user
Exec=/usr/lib/eid-agent/first-run
NoDisplay=true
X-GNOME-Autostart-enabled=true
"""

# On removal, every person's own install goes too (as that person: their agent stops,
# their entries and command go; their BankIDs and settings stay). Not on upgrade.
_PRERM = """#!/bin/sh
set -e
case "$1" in
  remove|purge|deconfigure)
    getent passwd | while IFS=: read -r user _ _ _ _ home _; do
      agent="$home/.local/share/eid-agent/install/current/eid-agent"
      if [ -x "$agent" ]; then
        runuser -u "$user" -- env HOME="$home" "$agent" uninstall </dev/null || \\
          echo "eid-agent: could not uninstall for $user" >&2
      fi
    done
    ;;
esac
exit 0
"""

_CONTROL = """Package: eid-agent
Version: {version}
Architecture: {arch}
Maintainer: {maintainer}
Depends: {depends}
Section: utils
Priority: optional
Homepage: {repository}/install/
Description: e-identification agent (BankID on file and on card)
 Lets websites identify people and have them sign through a localhost bridge, with
 BankID on file and on card. Each person gets their own copy at their next login, which
 updates itself from the organisation's signed repository.
"""


def build_deb(
    out_dir: Path,
    archive: Path,
    version: str,
    root_json: bytes,
    repository: str,
    *,
    maintainer: str,
    work: Path,
    epoch: int,
) -> Path:
    """Write ``eid-agent_<version>_<arch>.deb`` for the release ``archive`` into
    ``out_dir``; ``work`` is an empty scratch folder. Raises: ValueError, OSError,
    subprocess.CalledProcessError (dpkg-deb refused)."""
    json.loads(root_json)
    arch = subprocess.run(
        [DPKG, "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    control = _CONTROL.format(
        version=version, arch=arch, maintainer=maintainer, depends=DEPENDS, repository=repository
    )
    if "\n" in maintainer or "\n" in repository:
        raise ValueError("a field of the control file spans lines")
    root = work / "root"
    lib = root / LIB
    files = {
        lib / "archive.tar.gz": (archive.read_bytes(), 0o644),
        lib / "root.json": (root_json, 0o644),
        lib / "repository": (repository.encode() + b"\n", 0o644),
        lib / "version": (version.encode() + b"\n", 0o644),
        lib / "first-run": (_FIRST_RUN.encode(), 0o755),
        root / "etc/xdg/autostart/eid-agent-setup.desktop": (_AUTOSTART.encode(), 0o644),
        root / "DEBIAN/prerm": (_PRERM.encode(), 0o755),
        root / "DEBIAN/control": (control.encode(), 0o644),
    }
    for path, (data, mode) in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    for path in [root, *root.rglob("*")]:  # readable by every person: they copy it at login
        if path.is_dir():
            path.chmod(0o755)
        os.utime(path, (epoch, epoch), follow_symlinks=False)  # the same bytes every build
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"eid-agent_{version}_{arch}.deb"
    subprocess.run(
        [DPKG_DEB, "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )
    return deb
