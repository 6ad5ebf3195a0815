"""``eid-release verify-build TAG``: rebuild a published release from its tag and compare
bytes (ADR 0016). Anyone with the repository and the source can check that what agents
install is what the tag says.

The published archive says what the rebuild needs: its ``bundle.json`` names the
dependencies' versions and the interpreter the launcher names, and every member carries
the date it was built with. The source is the tag's tree (``git archive``), not the
working folder, so local changes cannot make a rebuild agree.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from agent.updater.install import InstallError, archive_manifest
from installer.archive import archive_bytes
from installer.bundle import build_bundle

__all__ = ["Verdict", "VerifyError", "verify_build"]

GIT = shutil.which("git") or "/usr/bin/git"


class VerifyError(Exception):
    """The rebuild could not be made (no such release or tag, other dependencies)."""


@dataclass(frozen=True)
class Verdict:
    version: str
    same: bool
    differences: list[str]  # members that differ, are missing or are extra
    archive_bytes: int
    seconds: float  # the rebuild, bundle and archive


def _members(data: bytes) -> dict[str, str]:
    """Member name → SHA-256 of its content (or its kind), of a gzip'd tar."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            member = tar.extractfile(info) if info.isreg() else None
            digest = hashlib.sha256(member.read()).hexdigest() if member else info.type.decode()
            found[info.name.removeprefix("./")] = f"{digest} {info.mode:o} {info.mtime}"
    return found


def verify_build(folder: Path, tag: str, checkout: Path, work: Path) -> Verdict:
    """Rebuild release ``tag`` (``v1.4.0`` or ``1.4.0``) from ``checkout``'s git tag in
    ``work`` (empty) and compare it with the published archive in ``folder``.

    Raises:
        VerifyError: no such release or tag, or this environment's dependencies are not
            the release's.
    """
    try:
        version = str(Version(tag.removeprefix("v")))
    except InvalidVersion:
        raise VerifyError(f"{tag!r} does not name a version") from None
    published = folder / "repository" / "targets" / f"eid-agent-{version}.tar.gz"
    try:
        data = published.read_bytes()
        manifest, epoch = archive_manifest(published)
    except (OSError, InstallError) as exc:
        raise VerifyError(f"release {version} is not published here: {exc}") from None
    wanted = manifest.get("dependencies") or {}
    if not isinstance(wanted, dict):
        raise VerifyError("the published bundle.json has no readable dependency list")
    other = []
    for name, need in sorted(wanted.items()):
        try:
            have = md.version(canonicalize_name(name))
        except md.PackageNotFoundError:
            have = "none"
        if have != need:
            other.append(f"{name} {have} (the release has {need})")
    if other:
        raise VerifyError(
            "this environment's dependencies are not the release's: " + ", ".join(other)
        )
    started = time.perf_counter()
    source = work / "source"
    source.mkdir(parents=True)
    tree = subprocess.run(
        [GIT, "-C", str(checkout), "archive", "--format=tar", f"{tag}^{{}}"],
        capture_output=True,
        check=False,
    )
    if tree.returncode != 0:
        raise VerifyError(f"no tag {tag} in {checkout}: {tree.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(tree.stdout), mode="r:") as tar:
        tar.extractall(source, filter="data")
    python = manifest.get("python")
    bundle = build_bundle(
        work / "bundle",
        version,
        self_contained=bool(manifest.get("selfContained", True)),
        python=python if isinstance(python, str) else None,
        source=source,
    )
    rebuilt = archive_bytes(bundle, epoch=epoch)
    seconds = time.perf_counter() - started
    if rebuilt == data:
        return Verdict(version, True, [], len(data), seconds)
    ours, theirs = _members(rebuilt), _members(data)
    differences = sorted(
        [f"differs: {n}" for n in ours.keys() & theirs.keys() if ours[n] != theirs[n]]
        + [f"only in the release: {n}" for n in theirs.keys() - ours.keys()]
        + [f"only in the rebuild: {n}" for n in ours.keys() - theirs.keys()]
    )
    return Verdict(version, False, differences or ["the compressed bytes"], len(data), seconds)
