"""The Linux install: versions side by side, switched by renaming a symlink (ADR 0008).

::

    <data dir>/install/
        versions/1.0.0/      a bundle: bundle.json, the eid-agent launcher, lib/
        versions/1.1.0/
        current  -> versions/1.1.0     what the desktop entry and autostart run
        previous -> versions/1.0.0     kept for roll-back; older versions are removed
        staging/             downloads being unpacked
        tuf/metadata/        the trusted root (pinned at install) and what TUF verified
        tuf/targets/         the current version's archive, so the next update can patch it
                             (downloaded, or kept from the installer that installed it)
        update.json          {"repository": URL}

Every change is a rename within one directory, so a crash at any point leaves
``current`` naming a complete version: a new version is unpacked under ``staging/``,
renamed into ``versions/``, and becomes current only by the rename of a new symlink over
``current``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

import agent
from agent.updater.errors import InstallError  # raised here; defined with the others
from agent.updater.source import APP_NAME, Source
from eidcore.atomicfile import atomic_write_bytes, fsync_directory

__all__ = [
    "BUNDLE_FILE",
    "LAUNCHER",
    "InstallError",
    "Layout",
    "archive_manifest",
    "archive_name",
    "archive_version",
    "bundle_version",
    "running_layout",
]

BUNDLE_FILE = "bundle.json"
LAUNCHER = "eid-agent"


def bundle_version(bundle: Path) -> Version:
    """The version an unpacked bundle says it is.

    Raises:
        InstallError: no readable bundle.json, or no launcher.
    """
    try:
        doc = json.loads((bundle / BUNDLE_FILE).read_text(encoding="utf-8"))
        if doc.get("format") != 1 or doc.get("name") != APP_NAME:
            raise InstallError(f"{bundle} is not an {APP_NAME} bundle")
        version = Version(str(doc["version"]))
    except (OSError, ValueError, KeyError, AttributeError, InvalidVersion) as exc:
        raise InstallError(f"{bundle} is not a readable bundle: {exc}") from None
    if not os.access(bundle / LAUNCHER, os.X_OK):
        raise InstallError(f"{bundle} has no launcher")
    return version


def archive_name(version: Version) -> str:
    """The release archive's name in the repository (tufup's naming)."""
    return f"{APP_NAME}-{version}.tar.gz"


def archive_manifest(archive: Path) -> tuple[dict[str, object], int]:
    """A release archive's ``bundle.json`` and the date its members carry, read without
    unpacking.

    Raises:
        InstallError: not a gzip'd tar with a readable bundle.json of this project.
    """
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for info in tar:
                if info.name.removeprefix("./") == BUNDLE_FILE and info.isreg():
                    member = tar.extractfile(info)
                    if member is None or info.size > 1 << 16:
                        break
                    doc = json.loads(member.read())
                    if (
                        isinstance(doc, dict)
                        and doc.get("format") == 1
                        and doc.get("name") == APP_NAME
                    ):
                        return doc, int(info.mtime)
                    break
    except (OSError, tarfile.TarError, EOFError, ValueError) as exc:
        raise InstallError(f"{archive} is not a readable release archive: {exc}") from None
    raise InstallError(f"{archive} is not an {APP_NAME} release archive")


def archive_version(archive: Path) -> Version:
    """The version a release archive's ``bundle.json`` says.

    Raises:
        InstallError: not a release archive, or no version in it.
    """
    doc, _ = archive_manifest(archive)
    try:
        return Version(str(doc["version"]))
    except (KeyError, InvalidVersion) as exc:
        raise InstallError(f"{archive} names no version: {exc}") from None


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Layout:
        return cls(data_dir / "install")

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def previous(self) -> Path:
        return self.root / "previous"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def settings(self) -> Path:
        return self.root / "update.json"

    def launcher(self, version: Version | None = None) -> Path:
        base = self.current if version is None else self.versions / str(version)
        return base / LAUNCHER

    def source(self) -> Source | None:
        """Where updates come from, or None when this install has no repository."""
        try:
            url = json.loads(self.settings.read_text(encoding="utf-8"))["repository"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        tuf = self.root / "tuf"
        return Source(str(url), tuf / "metadata", tuf / "targets")

    def configure(self, repository: str, trusted_root: bytes) -> None:
        """Pin the repository and its root metadata (the trust anchor, never fetched)."""
        if not repository.startswith(("https://", "http://")):
            raise InstallError("the repository must be an http(s) URL")
        tuf = self.root / "tuf" / "metadata"
        tuf.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(tuf / "root.json", trusted_root, mode=0o644)
        doc = json.dumps({"repository": repository}, indent=2) + "\n"
        atomic_write_bytes(self.settings, doc.encode(), mode=0o644)

    def _link_version(self, link: Path) -> Version | None:
        try:
            return Version(os.readlink(link).rsplit("/", 1)[-1])
        except (OSError, InvalidVersion):
            return None

    def current_version(self) -> Version | None:
        return self._link_version(self.current)

    def previous_version(self) -> Version | None:
        return self._link_version(self.previous)

    def installed(self) -> list[Version]:
        found = []
        for child in self.versions.iterdir() if self.versions.is_dir() else []:
            with contextlib.suppress(InvalidVersion):
                found.append(Version(child.name))
        return sorted(found)

    def add(self, bundle: Path, *, move: bool) -> Version:
        """Put an unpacked bundle into ``versions/`` (not yet current).

        Raises:
            InstallError: not a bundle, or it is the running version.
        """
        version = bundle_version(bundle)
        if version == self.current_version():
            raise InstallError(f"{version} is the current version")
        self.versions.mkdir(parents=True, exist_ok=True)
        target = self.versions / str(version)
        if target.exists():  # left by an update that did not become healthy
            shutil.rmtree(target)
        partial = self.versions / f".{version}.{uuid.uuid4().hex[:8]}.partial"
        if move:
            os.replace(bundle, partial)
        else:
            shutil.copytree(bundle, partial, symlinks=True)
        _compile(partial)
        os.replace(partial, target)
        fsync_directory(self.versions)
        return version

    def switch(self, version: Version) -> None:
        """Make ``version`` current and the old current previous, each by one rename."""
        if not (self.versions / str(version)).is_dir():
            raise InstallError(f"{version} is not installed")
        old = self.current_version()
        if old == version:
            return
        if old is not None:
            _symlink(self.previous, f"versions/{old}")
        _symlink(self.current, f"versions/{version}")
        fsync_directory(self.root)

    def roll_back(self, failed: Version) -> None:
        """Make previous current again if ``failed`` is current; drop ``failed``."""
        previous = self.previous_version()
        if self.current_version() == failed and previous is not None:
            _symlink(self.current, f"versions/{previous}")
            fsync_directory(self.root)
        if failed != self.current_version():
            shutil.rmtree(self.versions / str(failed), ignore_errors=True)

    def prune(self, source: Source | None) -> None:
        """Keep current and previous; drop other versions, staging, and old archives."""
        keep = {str(v) for v in (self.current_version(), self.previous_version()) if v}
        for child in self.versions.iterdir() if self.versions.is_dir() else []:
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)
        current = self.current_version()
        if source is not None and current is not None and source.targets_dir.is_dir():
            wanted = archive_name(current)
            for child in source.targets_dir.iterdir():
                if child.name != wanted:
                    child.unlink(missing_ok=True)

    def keep_archive(self, archive: Path, version: Version) -> Path:
        """Keep the release archive ``version`` was installed from (an installer or the
        Debian package carries it) where the updater finds its current archive, so the
        first update is a patch. Returns where it is kept.

        Raises:
            InstallError: not an archive of ``version``, or it could not be written.
        """
        source = self.source()
        if source is None:
            raise InstallError("no update repository is configured")
        found = archive_version(archive)
        if found != version:
            raise InstallError(f"the archive {archive} is version {found}, not {version}")
        kept = source.targets_dir / archive_name(version)
        source.targets_dir.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write_bytes(kept, archive.read_bytes(), mode=0o644)
        except OSError as exc:
            raise InstallError(f"the archive could not be kept: {exc.strerror}") from None
        return kept

    def new_staging_dir(self) -> Path:
        path = self.staging / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path


def _symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def running_layout(data_dir: Path) -> Layout | None:
    """The install this very process runs from, or None (a source checkout, a package)."""
    layout = Layout.in_data_dir(data_dir)
    bundle = Path(agent.__file__).resolve().parent.parent.parent
    try:
        if bundle.parent != layout.versions.resolve() or not (bundle / BUNDLE_FILE).is_file():
            return None
    except OSError:
        return None
    return layout


def _compile(bundle: Path) -> None:
    """Byte-compile the bundle's code now, so that its first start (after an install, or
    the hand-over of an update, while the bridge is away) does not: bundles ship without
    bytecode. Files that do not compile here (another Python's syntax in a dependency)
    are left to the interpreter, as pip does."""
    import compileall

    with contextlib.suppress(OSError):
        compileall.compile_dir(bundle / "lib", quiet=2, workers=1)
