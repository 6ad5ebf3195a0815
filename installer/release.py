"""The update repository's tools, unattended. The release side's only importer of tufup.repo,
tuf and securesystemslib (ADR 0008).

A release folder holds::

    keystore/            private keys (0600), one file per key; keep it off the web server
    repository/          what any static HTTP server publishes
        metadata/        root (every version), targets, snapshot, timestamp
        targets/         eid-agent-<version>.tar.gz and eid-agent-<version>.patch
        install/         the install page (index.html, SHA256SUMS) and the installer
    .tufup-repo-config   tufup's own settings (key names, thresholds, expiry)
    release.json         where the repository is served ({"url": ...}), for the installer

tufup's repository tools prompt (an existing key or archive, an encrypted key); nothing
here reaches those prompts: keys are written unencrypted for unattended signing, an
existing version is refused before tufup sees it, and the CLI runs with stdin closed.

The administrator's policy (UPDATE-POLICY.md) is the ``user`` part of the latest archive's
signed custom metadata; changing it re-signs targets, snapshot and timestamp.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version
from securesystemslib.exceptions import Error as SslibError
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.interface import (
    generate_and_write_unencrypted_ed25519_keypair,
    import_ed25519_privatekey_from_file,
)
from securesystemslib.signer import SSlibSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer
from tufup.common import KEY_REQUIRED, Patcher, TargetMeta
from tufup.repo import Repository

from agent.updater.install import InstallError, bundle_version
from agent.updater.policy import Policy, PolicyError, VersionStatus
from agent.updater.rollout import MAX_DAYS, Rollout
from eidcore import strictjson
from eidcore.atomicfile import atomic_write_bytes, fsync_directory
from installer.archive import ArchiveError, archive_bytes, source_date_epoch

__all__ = [
    "APP_NAME",
    "ROLES",
    "PublishResult",
    "ReleaseError",
    "init",
    "public_url",
    "publish",
    "publish_held",
    "refresh",
    "rollout",
    "rotate_key",
    "set_policy",
    "sign_held",
    "sign_installers",
    "status",
    "write_install_page",
]

APP_NAME = "eid-agent"
ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY_DAYS = {"root": 365, "targets": 7, "snapshot": 7, "timestamp": 1}
POLICY_KEYS = (
    "requiredMinimum",
    "recommended",
    "automatic",
    "manualUrl",
    "failureThreshold",
    "checkIntervalMinutes",
    "versionStatus",
    "maxOfflineDays",
)


class ReleaseError(Exception):
    """An administrator's request that cannot be carried out; nothing was changed."""


HELD = "held/targets.json"  # the targets metadata waiting for more signatures
HELD_LIMIT = 16 << 20  # bytes: a held file is a few kB per release


@dataclass(frozen=True)
class PublishResult:
    version: str
    archive_bytes: int
    patch_bytes: int | None  # None: no previous version to patch from
    policy: dict[str, Any]


@contextlib.contextmanager
def _repo(folder: Path) -> Iterator[Repository]:
    # tufup keeps its settings in the working directory; work inside the release folder.
    if not (folder / Repository.config_filename).is_file():
        raise ReleaseError(f"{folder} is not a release folder (run 'eid-release init' first)")
    with contextlib.chdir(folder):
        yield Repository.from_config()


KEEP_VERSIONS = 16  # versioned snapshot/targets kept for agents part-way through a check


def _publish(
    repo: Repository, key_dirs: list[Path], prepared: Mapping[str, Metadata[Any]] | None = None
) -> None:
    """tufup's ``publish_changes``, made safe for agents checking meanwhile.

    tufup rewrites ``targets.json``, ``snapshot.json`` and ``timestamp.json`` in place, and
    a TUF check reads them one request after another: an agent that read the old
    timestamp and then the new snapshot fails its check (the versions disagree), and one
    that read a file half-written fails too. So the repository uses consistent snapshots
    (TUF 5.5: snapshot and targets fetched by version, ``N.snapshot.json``), tufup signs
    into a folder aside, and the new files are moved in, each by one rename, in the
    order the spec gives (6.4): root, then ``N.targets.json``, then ``N.snapshot.json``,
    then ``timestamp.json`` last. An agent that read the old timestamp finds the old
    versioned files, which stay; one that read the new finds the new ones in place.

    ``prepared``: roles signed already (elsewhere), published as they are.

    Raises: ReleaseError (a role would have fewer signatures than its threshold: nothing
    is published), OSError."""
    live = repo.metadata_dir
    with tempfile.TemporaryDirectory(dir=live.parent, prefix=".publish-") as work:
        stage = Path(work)
        for name in ("root.json", "targets.json", "snapshot.json", "timestamp.json"):
            if (live / name).exists():  # tufup compares with these to see what changed
                shutil.copy2(live / name, stage / name)
        for role, metadata in (prepared or {}).items():  # unchanged to tufup: kept as signed
            metadata.to_file(str(stage / f"{role}.json"), JSONSerializer(compact=False))
        repo.roles.dir_path = stage
        try:
            repo.publish_changes(private_key_dirs=key_dirs)
        except Exception as exc:  # tufup raises a bare Exception for a missing key
            if "No private keys found" not in str(exc):
                raise
            raise ReleaseError(f"{exc} (this machine has none of that role's keys)") from None
        finally:
            repo.roles.dir_path = live
        for role in ("targets", "snapshot", "timestamp"):
            metadata = getattr(repo.roles, role)
            try:
                repo.roles.root.signed.verify_delegate(
                    role, metadata.signed_bytes, metadata.signatures
                )
            except UnsignedMetadataError:
                need = repo.roles.root.signed.roles[role].threshold
                raise ReleaseError(
                    f"{role} needs {need} signatures and the keys here give "
                    f"{_valid(repo, role, metadata)}; nothing was published. Publish with "
                    "--hold, sign elsewhere (eid-release sign), then publish-held"
                ) from None
        for role in ("root", "targets", "snapshot", "timestamp"):
            new = stage / f"{role}.json"
            if not new.exists() or _same(new, live / f"{role}.json"):
                continue
            version = getattr(repo.roles, role).signed.version
            if role != "timestamp":  # the one a client reads unversioned, so the last
                atomic_write_bytes(live / f"{version}.{role}.json", new.read_bytes(), mode=0o644)
            atomic_write_bytes(live / f"{role}.json", new.read_bytes(), mode=0o644)
    fsync_directory(live)
    _prune_versions(
        live, {r: getattr(repo.roles, r).signed.version for r in ("targets", "snapshot")}
    )


def _valid(repo: Repository, role: str, metadata: Metadata[Any]) -> int:
    """How many of ``role``'s keys validly signed ``metadata``."""
    delegation = repo.roles.root.signed.roles[role]
    count = 0
    for keyid in delegation.keyids:
        signature = metadata.signatures.get(keyid)
        key = repo.roles.root.signed.keys.get(keyid)
        if signature is None or key is None:
            continue
        try:
            key.verify_signature(signature, metadata.signed_bytes)
        except UnverifiedSignatureError:
            continue
        count += 1
    return count


def _hold(repo: Repository, folder: Path, version: str) -> Path:
    """The new targets (version bumped, expiry set), signed by the targets keys here, kept
    in ``held/`` with what a signer elsewhere needs to know; nothing goes live."""
    targets = repo.roles.targets
    targets.signed.version += 1
    repo.roles.set_expiration_date("targets", repo.expiration_days["targets"])
    targets.signatures.clear()
    for name in repo.key_map["targets"]:
        key = repo.keys.find_private_key(key_name=name, key_dirs=[_keystore(folder)])
        if key is not None:
            repo.roles.sign_role("targets", key)
    delegation = repo.roles.root.signed.roles["targets"]
    doc = {
        "heldFor": "targets",
        "version": version,
        "keyids": sorted(delegation.keyids),
        "threshold": delegation.threshold,
        "metadata": targets.to_dict(),
    }
    path = folder / HELD
    path.parent.mkdir(mode=0o700, exist_ok=True)
    atomic_write_bytes(path, json.dumps(doc, indent=1, sort_keys=True).encode(), mode=0o644)
    return path


def _held(path: Path) -> tuple[dict[str, Any], Metadata[Any]]:
    """Raises: ReleaseError."""
    try:
        with path.open("rb") as file:
            raw = file.read(HELD_LIMIT + 1)
        if len(raw) > HELD_LIMIT:
            raise ValueError("larger than any targets metadata")
        doc = strictjson.loads(raw.decode("utf-8"))  # bounded depth and numbers
        if not isinstance(doc, dict) or doc.get("heldFor") != "targets":
            raise ValueError("not held targets metadata")
        metadata: Metadata[Any] = Metadata.from_dict(dict(doc["metadata"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReleaseError(f"{path} is not held targets metadata: {exc}") from None
    return doc, metadata


def sign_held(path: Path, key_dirs: list[Path]) -> tuple[list[str], int, int]:
    """Add the signatures of the targets keys in ``key_dirs`` (another machine's) to the
    held metadata at ``path``. Returns (what was signed, signatures now, needed).

    Raises:
        ReleaseError: not held metadata, or no key here is one of its targets keys.
    """
    doc, metadata = _held(path)
    wanted = set(doc.get("keyids") or [])
    added = 0
    for key_dir in key_dirs:
        for key_file in sorted(key_dir.iterdir()) if key_dir.is_dir() else []:
            if not key_file.is_file() or key_file.suffix == ".pub":
                continue
            try:
                key = import_ed25519_privatekey_from_file(str(key_file), prompt=False)
            except (SslibError, OSError, ValueError, KeyError, TypeError):
                continue  # not an unencrypted ed25519 key
            if key["keyid"] in wanted and key["keyid"] not in metadata.signatures:
                metadata.sign(SSlibSigner(key), append=True)
                added += 1
    if not added:
        raise ReleaseError(
            f"no key in {', '.join(map(str, key_dirs))} is a targets key of "
            "this release that has not signed it yet"
        )
    doc["metadata"] = metadata.to_dict()
    atomic_write_bytes(path, json.dumps(doc, indent=1, sort_keys=True).encode(), mode=0o644)
    releases = sorted(t for t in metadata.signed.targets if t.endswith(".tar.gz"))
    return releases, len(metadata.signatures), int(doc.get("threshold", 1))


def publish_held(folder: Path, path: Path) -> str:
    """Publish held targets metadata once enough targets keys signed it (snapshot and
    timestamp signed here). Returns the version it releases.

    Raises:
        ReleaseError: too few valid signatures, or the repository moved on meanwhile.
    """
    doc, metadata = _held(path)
    with _repo(folder) as repo:
        live = repo.roles.targets.signed.version
        if metadata.signed.version != live + 1:
            raise ReleaseError(
                f"the held targets are version {metadata.signed.version}, but "
                f"the repository is at {live}: hold the release again"
            )
        need = repo.roles.root.signed.roles["targets"].threshold
        have = _valid(repo, "targets", metadata)
        if have < need:
            raise ReleaseError(
                f"the held targets have {have} of the {need} signatures they "
                "need; nothing was published"
            )
        repo.roles.targets = metadata
        repo.roles.snapshot.signed.meta["targets.json"].version = metadata.signed.version
        _publish(repo, [_keystore(folder)], prepared={"targets": metadata})
    (folder / HELD).unlink(missing_ok=True)  # published: nothing is held any more
    return str(doc.get("version", ""))


def _same(a: Path, b: Path) -> bool:
    return b.exists() and a.read_bytes() == b.read_bytes()


def _prune_versions(live: Path, current: Mapping[str, int]) -> None:
    for path in live.glob("*.*.json"):
        number, _, role = path.name.partition(".")
        role = role.removesuffix(".json")
        if number.isdigit() and role in current and int(number) <= current[role] - KEEP_VERSIONS:
            path.unlink(missing_ok=True)


def _keystore(folder: Path) -> Path:
    return folder / "keystore"


def init(
    folder: Path,
    *,
    keys: Mapping[str, int] | None = None,
    thresholds: Mapping[str, int] | None = None,
    expiry_days: Mapping[str, int] | None = None,
) -> None:
    """Create keys and the first signed root, targets, snapshot and timestamp.

    ``keys[role]`` keys are made per role; ``thresholds[role]`` of them must sign.

    Raises:
        ReleaseError: the folder already holds a repository, or the numbers do not fit.
    """
    keys = {role: 1 for role in ROLES} | dict(keys or {})
    thresholds = {role: 1 for role in ROLES} | dict(thresholds or {})
    expiry = EXPIRY_DAYS | dict(expiry_days or {})
    for role in ROLES:
        if not 1 <= thresholds[role] <= keys[role] <= 10 or expiry[role] < 1:
            raise ReleaseError(f"{role}: need 1 <= threshold <= keys <= 10 and expiry >= 1 day")
    if (folder / Repository.config_filename).exists() or (folder / "repository").exists():
        raise ReleaseError(f"{folder} already holds a repository")
    folder.mkdir(parents=True, exist_ok=True)
    _keystore(folder).mkdir(mode=0o700)
    key_map = {role: [_key_name(role, n) for n in range(1, keys[role] + 1)] for role in ROLES}
    with contextlib.chdir(folder):
        repo = Repository(
            app_name=APP_NAME,
            repo_dir=folder / "repository",
            keys_dir=_keystore(folder),
            key_map=key_map,
            expiration_days=expiry,
            thresholds=thresholds,
        )
        repo.initialize()
        _consistent(repo, folder)
    _protect_keys(folder)


def _consistent(repo: Repository, folder: Path) -> None:
    """Turn on consistent snapshots (see ``_publish``): a new root, signed by the root key.
    tufup makes its repositories without them."""
    if not repo.roles.root.signed.consistent_snapshot:
        repo.roles.root.signed.consistent_snapshot = True
        _publish(repo, [_keystore(folder)])


def _key_name(role: str, n: int) -> str:
    return role if n == 1 else f"{role}-{n}"


def _protect_keys(folder: Path) -> None:
    for path in _keystore(folder).iterdir():
        if path.is_file() and path.suffix != ".pub":
            path.chmod(0o600)


def publish(
    folder: Path,
    version: str,
    bundle: Path,
    changes: Mapping[str, Any],
    *,
    patch: bool = True,
    rollout_days: int | None = None,
    now: dt.datetime | None = None,
    hold: bool = False,
) -> PublishResult:
    """Add ``bundle`` as ``version`` (archive and, unless told otherwise, a patch from the
    previous version) with the previous policy updated by ``changes``, and sign it all.
    ``rollout_days``: offered to a share of agents growing over that many days from
    ``now`` (agent.updater.rollout); else to every agent at once. ``hold``: sign the
    targets with the keys here and keep them in ``held/targets.json`` for the other
    targets keys to sign elsewhere (``sign_held``); nothing is published until
    ``publish_held``.

    Raises:
        ReleaseError: not newer than the latest release, the bundle says another version,
            or the resulting policy is not valid.
    """
    bundle = bundle.resolve()  # tufup works inside the release folder
    try:
        wanted = Version(version)
        found = bundle_version(bundle)
    except (InvalidVersion, InstallError) as exc:
        raise ReleaseError(str(exc)) from None
    if found != wanted:
        raise ReleaseError(f"{bundle} is version {found}, not {version}")
    with _repo(folder) as repo:
        latest = repo.roles.get_latest_archive()
        if latest is not None and latest.version >= wanted:
            raise ReleaseError(f"{version} is not newer than the latest release {latest.version}")
        policy = _merged(_policy_of(repo, latest), changes, wanted)
        if rollout_days is not None:
            if not 1 <= rollout_days <= MAX_DAYS:
                raise ReleaseError(f"--rollout-days must be from 1 to {MAX_DAYS}")
            start = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
            policy["rollout"] = Rollout(start, rollout_days).to_custom()
        archive = repo.targets_dir / TargetMeta.compose_filename(APP_NAME, str(wanted), True)
        patch_file = repo.targets_dir / TargetMeta.compose_filename(APP_NAME, str(wanted), False)
        for leftover in (archive, patch_file):  # from a publish that failed half-way
            leftover.unlink(missing_ok=True)
        try:
            _add_release(
                repo,
                bundle,
                wanted,
                policy,
                archive,
                patch_file if patch else None,
                epoch=source_date_epoch(os.environ),
            )
            if hold:
                _hold(repo, folder, str(wanted))
            else:
                _publish(repo, [_keystore(folder)])
        except (OSError, EOFError, ArchiveError) as exc:
            for leftover in (archive, patch_file):
                leftover.unlink(missing_ok=True)
            raise ReleaseError(f"publishing {version} failed; nothing was signed: {exc}") from None
        return PublishResult(
            version=str(wanted),
            archive_bytes=archive.stat().st_size,
            patch_bytes=patch_file.stat().st_size if patch_file.exists() else None,
            policy=policy,
        )


def _add_release(
    repo: Repository,
    bundle: Path,
    version: Version,
    policy: dict[str, Any],
    archive: Path,
    patch_file: Path | None,
    *,
    epoch: int,
) -> None:
    """What tufup's ``add_bundle`` does, with the reproducible archive (installer.archive)
    in place of tufup's own: the archive, and a patch from the latest archive, as
    targets."""
    latest = repo.roles.get_latest_archive()
    archive.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(archive, archive_bytes(bundle, epoch=epoch), mode=0o644)
    repo.roles.add_or_update_target(
        local_path=archive, custom={"user": policy, "tufup": {KEY_REQUIRED: False}}
    )
    _hash_link(repo, archive)
    if latest is None or patch_file is None:
        return
    # tufup diffs the uncompressed tars and signs the result's size and hash
    result = Patcher.diff_and_hash(
        src_path=repo.targets_dir / latest.target_path_str, dst_path=archive, patch_path=patch_file
    )
    repo.roles.add_or_update_target(local_path=patch_file, custom={"user": None, "tufup": result})
    _hash_link(repo, patch_file)


def _hash_link(repo: Repository, path: Path) -> None:
    """With consistent snapshots a standard TUF client fetches a target by its hash
    (``<sha256>.<name>``, spec 5.7.3): a hard link under that name serves it too. The
    agent itself fetches the plain name, which never changes for a version."""
    digest = repo.roles.targets.signed.targets[path.name].hashes["sha256"]
    link = path.with_name(f"{digest}.{path.name}")
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)
    except OSError:  # a file system without hard links: a copy
        shutil.copyfile(path, link)


def public_url(folder: Path, url: str | None = None) -> str | None:
    """Where the repository is served: remembered in ``release.json`` when given (so the
    next publish knows it), else read from there.

    Raises:
        ReleaseError: not an http(s) URL.
    """
    settings = folder / "release.json"
    if url is not None:
        if not url.startswith(("https://", "http://")):
            raise ReleaseError(f"--url must be an http(s) URL, not {url!r}")
        temporary = settings.with_name(".release.json.tmp")
        temporary.write_text(json.dumps({"url": url.rstrip("/")}) + "\n", encoding="utf-8")
        temporary.replace(settings)
        return url.rstrip("/")
    try:
        known = json.loads(settings.read_text(encoding="utf-8")).get("url")
    except (OSError, ValueError, AttributeError):
        return None
    return str(known) if known else None


def write_install_page(
    folder: Path, version: str, url: str, now: dt.datetime, *, deb_maintainer: str | None = None
) -> Path:
    """The installer for the published ``version`` (its signed archive, with the
    repository's current root metadata as its trust anchor), with ``deb_maintainer`` also
    the Debian package, and the install page, in ``repository/install/``; older ones are
    removed. Returns the page. The agent's update fall-back opens this page unless the
    policy names another (``manualUrl``).

    Raises:
        ReleaseError: ``version`` is not published, the repository has no root metadata,
            the URL cannot be used, or dpkg-deb refused the package.
    """
    import subprocess
    import tempfile

    from installer.deb import build_deb
    from installer.page import write_install_page as write_page
    from installer.runfile import build_installer

    repository = folder / "repository"
    archive = repository / "targets" / TargetMeta.compose_filename(APP_NAME, version, True)
    try:
        root = (repository / "metadata" / "root.json").read_bytes()
    except OSError as exc:
        raise ReleaseError(f"no root metadata to pin: {exc}") from None
    if not archive.is_file():
        raise ReleaseError(f"{version} is not published: no {archive.name}")
    target = repository / "install"
    epoch = source_date_epoch(os.environ)
    try:
        installer = build_installer(target, archive, version, root, url, epoch=epoch)
    except (ValueError, OSError) as exc:
        raise ReleaseError(f"the installer could not be built: {exc}") from None
    deb = None
    if deb_maintainer is not None:
        try:
            with tempfile.TemporaryDirectory() as work:
                deb = build_deb(
                    target,
                    archive,
                    version,
                    root,
                    url,
                    maintainer=deb_maintainer,
                    work=Path(work),
                    epoch=epoch,
                )
        except (OSError, ValueError, subprocess.CalledProcessError) as exc:
            raise ReleaseError(f"the Debian package could not be built: {exc}") from None
    for old in [*target.glob("eid-agent-*-linux.run"), *target.glob("eid-agent_*.deb")]:
        if old not in (installer, deb):
            old.unlink()
    return write_page(target, installer, version, now, deb)


def set_policy(folder: Path, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change the policy of the latest release and sign it; returns the new policy.

    Raises:
        ReleaseError: nothing published yet, or the policy would not be valid.
    """
    with _repo(folder) as repo:
        latest = repo.roles.get_latest_archive()
        if latest is None:
            raise ReleaseError("nothing is published yet; publish a release first")
        old = _policy_of(repo, latest)
        policy = _merged(old, changes, latest.version)
        for own in RELEASE_OWN:  # the release's own, not a policy carried to the next
            if own in old:
                policy[own] = old[own]
        target = repo.roles.targets.signed.targets[latest.target_path_str]
        custom = dict(target.unrecognized_fields.get("custom") or {})
        target.unrecognized_fields["custom"] = {**custom, "user": policy}
        _publish(repo, [_keystore(folder)])
        return policy


# Signed beside a release's policy, but its own: not carried to the next release.
RELEASE_OWN = ("rollout", "installers")


def sign_installers(folder: Path, version: str) -> dict[str, dict[str, Any]]:
    """Sign the installer and Debian package of ``version`` (in ``repository/install/``)
    with its release: their length and SHA-256 in the release's signed metadata, so an
    install can check an installer against the targets key, not only against a checksum
    on the same server. Returns what was signed.

    Raises:
        ReleaseError: ``version`` is not published, or the keys here are too few.
    """
    install = folder / "repository" / "install"
    found = {}
    for path in [
        *install.glob(f"eid-agent-{version}-linux.run"),
        *install.glob(f"eid-agent_{version}_*.deb"),
    ]:
        data = path.read_bytes()
        found[path.name] = {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with _repo(folder) as repo:
        name = TargetMeta.compose_filename(APP_NAME, version, True)
        target = repo.roles.targets.signed.targets.get(name)
        if target is None:
            raise ReleaseError(f"{version} is not published")
        custom = dict(target.unrecognized_fields.get("custom") or {})
        user = dict(custom.get("user") or {})
        if user.get("installers") == found:
            return found
        user["installers"] = found
        target.unrecognized_fields["custom"] = {**custom, "user": user}
        _publish(repo, [_keystore(folder)])
    return found


ROLLOUT_ACTIONS = ("pause", "resume", "halt")


def rollout(folder: Path, action: str, now: dt.datetime, version: str | None = None) -> Rollout:
    """Pause, resume or halt the staged roll-out of ``version`` (default: the latest
    release) and sign it. Returns the roll-out as it now is.

    Raises:
        ReleaseError: no such release, or it is not rolling out in stages.
    """
    if action not in ROLLOUT_ACTIONS:
        raise ReleaseError(f"{action!r}: one of {', '.join(ROLLOUT_ACTIONS)}")
    with _repo(folder) as repo:
        meta = repo.roles.get_latest_archive()
        if version is not None:
            name = TargetMeta.compose_filename(APP_NAME, version, True)
            meta = TargetMeta(name) if name in repo.roles.targets.signed.targets else None
        if meta is None:
            raise ReleaseError(f"no release {version or ''} is published".replace("  ", " "))
        target = repo.roles.targets.signed.targets[meta.target_path_str]
        custom = dict(target.unrecognized_fields.get("custom") or {})
        user = dict(custom.get("user") or {})
        try:
            staged = Rollout.from_custom(user.get("rollout"))
        except PolicyError as exc:
            raise ReleaseError(str(exc)) from None
        if staged is None:
            raise ReleaseError(
                f"{meta.version} is not rolling out in stages: it is offered "
                "to every agent (publish with --rollout-days)"
            )
        moment = now.replace(microsecond=0)
        changed = {"pause": staged.paused, "resume": staged.resumed}.get(action)
        new = changed(moment) if changed is not None else staged.halt()
        user["rollout"] = new.to_custom()
        target.unrecognized_fields["custom"] = {**custom, "user": user}
        _publish(repo, [_keystore(folder)])
        return new


def refresh(folder: Path, now: dt.datetime) -> list[str]:
    """Re-sign the timestamp (the daily job), and snapshot/targets once less than half
    their life is left. Root is never re-signed here: its key belongs offline.

    Returns the roles re-signed, and warnings as ``"warning: ..."`` entries.
    """
    done: list[str] = []
    with _repo(folder) as repo:
        for role in ("targets", "snapshot", "timestamp"):
            expires = getattr(repo.roles, role).signed.expires.replace(tzinfo=dt.UTC)
            days = repo.expiration_days[role]
            if role == "timestamp" or expires - now < dt.timedelta(days=days) / 2:
                repo.refresh_expiration_date(role)
                # tufup re-signs only what changed, and its expiry has one-second steps:
                # a new version makes a refresh in the same second a refresh too
                getattr(repo.roles, role).signed.version += 1
                done.append(role)
        _publish(repo, [_keystore(folder)])
        root_expires = repo.roles.root.signed.expires.replace(tzinfo=dt.UTC)
        if root_expires - now < dt.timedelta(days=30):
            done.append(
                f"warning: root expires {root_expires:%Y-%m-%d}; re-sign it with the root key"
            )
    return done


def rotate_key(folder: Path, role: str, old: str | None = None) -> tuple[str, str]:
    """Replace one key of ``role`` with a new one (root re-signed by old and new keys).
    The old private key moves to ``keystore/retired/``. Returns (old name, new name).

    Raises:
        ReleaseError: unknown role or key.
    """
    if role not in ROLES:
        raise ReleaseError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    with _repo(folder) as repo:
        names = list(repo.key_map[role])
        old = old or names[0]
        if old not in names:
            raise ReleaseError(f"{role} has no key {old!r}; it has {', '.join(names)}")
        keystore = _keystore(folder)
        n = 2
        while (keystore / _key_name(role, n)).exists() or (
            keystore / "retired" / _key_name(role, n)
        ).exists():
            n += 1
        new = _key_name(role, n)
        generate_and_write_unencrypted_ed25519_keypair(filepath=str(keystore / new))
        (keystore / new).chmod(0o600)
        repo.replace_key(
            old_key_name=old,
            new_public_key_path=keystore / f"{new}.pub",
            new_private_key_encrypted=False,
        )
        _publish(repo, [keystore])
    retired = keystore / "retired"
    retired.mkdir(mode=0o700, exist_ok=True)
    for suffix in ("", ".pub"):
        source = keystore / f"{old}{suffix}"
        if source.exists():
            os.replace(source, retired / source.name)
    return old, new


def status(folder: Path, now: dt.datetime | None = None) -> dict[str, Any]:
    """What an administrator wants to know: releases (with their policy and roll-out
    stage at ``now``), policy, keys, expiry."""
    moment = now or dt.datetime.now(dt.UTC)
    with _repo(folder) as repo:
        roles = {}
        for role in ROLES:
            signed = getattr(repo.roles, role).signed
            delegation = repo.roles.root.signed.roles[role]
            roles[role] = {
                "version": signed.version,
                "expires": signed.expires.replace(tzinfo=dt.UTC).isoformat(),
                "keys": list(repo.key_map[role]),
                "threshold": delegation.threshold,
            }
        targets = []
        by_version: dict[Version, dict[str, Any]] = {}
        for path, target in sorted(repo.roles.targets.signed.targets.items()):
            meta = TargetMeta(target_path=path)
            targets.append({"file": path, "version": str(meta.version), "bytes": target.length})
            if meta.name != APP_NAME or meta.version is None or meta.is_other:
                continue
            entry = by_version.setdefault(
                meta.version,
                {"version": str(meta.version), "archiveBytes": None, "patchBytes": None},
            )
            if meta.is_archive:
                entry["archiveBytes"] = target.length
                entry["policy"] = own = _policy_of(repo, meta)
                entry["rollout"] = _stage(own.pop("rollout", None), moment)
            else:
                entry["patchBytes"] = target.length
        latest = repo.roles.get_latest_archive()
        return {
            "repository": str(repo.repo_dir),
            "latest": str(latest.version) if latest else None,
            "policy": _policy_of(repo, latest) if latest else {},
            "releases": [by_version[v] for v in sorted(by_version, reverse=True)],
            "roles": roles,
            "targets": targets,
        }


def _stage(doc: object, now: dt.datetime) -> dict[str, Any] | None:
    """A release's roll-out as status shows it; None: offered to every agent."""
    try:
        staged = Rollout.from_custom(doc)
    except PolicyError as exc:
        return {"invalid": str(exc)}
    if staged is None:
        return None
    state = "halted" if staged.halted else "paused" if staged.paused_at else "rolling out"
    share = staged.share(now)
    if state == "rolling out" and share >= 1.0:
        state = "complete"
    return {**staged.to_custom(), "share": round(share, 4), "state": state}


def _policy_of(repo: Repository, latest: TargetMeta | None) -> dict[str, Any]:
    if latest is None:
        return {}
    target = repo.roles.targets.signed.targets[latest.target_path_str]
    custom = target.unrecognized_fields.get("custom") or {}
    user = custom.get("user") if isinstance(custom, dict) else None
    return dict(user) if isinstance(user, dict) else {}


def _merged(old: Mapping[str, Any], changes: Mapping[str, Any], latest: Version) -> dict[str, Any]:
    """The previous policy with ``changes`` (None clears a key), checked as the agent will."""
    unknown = set(changes) - set(POLICY_KEYS)
    if unknown:
        raise ReleaseError(f"unknown policy keys: {', '.join(sorted(unknown))}")
    merged = {k: v for k, v in {**old, **changes}.items() if k not in RELEASE_OWN}
    policy = {k: v for k, v in merged.items() if v is not None}
    try:
        parsed = Policy.from_custom(policy)
    except PolicyError as exc:
        raise ReleaseError(f"the policy is not valid: {exc}") from None
    for name, value in (("required minimum", parsed.minimum), ("recommended", parsed.recommended)):
        if value is not None and value > latest:
            raise ReleaseError(
                f"the {name} version {value} is newer than the release {latest}: "
                "no agent could ever satisfy it"
            )
    rule = parsed.status_of(latest)
    if rule is not None and rule.status is not VersionStatus.ACCEPTED:
        raise ReleaseError(
            f"the latest release {latest} would be {rule.status}: agents would "
            "have nothing to update to"
        )
    plain: dict[str, Any] = json.loads(json.dumps(policy))  # JSON types, as they are signed
    return plain
