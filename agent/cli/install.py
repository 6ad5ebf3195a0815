"""``eid-agent install``: install (or repair) this agent for this user from an update
repository, or from an installer's unpacked bundle checked against it; ``--desktop`` and
``--start`` then finish the person's side (agent/cli/setup.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import TextIO

from packaging.version import Version

from agent.cli.io import Io, Say, sayer
from agent.updater import InstallError, Layout, UpdateError, archive_name, bundle_version, remote
from eidcore.messages import Language, Term

__all__ = ["add_arguments", "install_command", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        required=True,
        metavar="URL",
        help="the update repository (its metadata/ and targets/ folders)",
    )
    parser.add_argument(
        "--trust",
        required=True,
        type=Path,
        metavar="ROOT_JSON",
        help="the repository's root metadata, pinned as the trust anchor",
    )
    parser.add_argument(
        "--bundle", type=Path, help="install this unpacked bundle instead of downloading one"
    )
    parser.add_argument(
        "--archive",
        type=Path,
        help="the release archive the bundle came from: kept so that the first update is a "
        "patch, and checked against the repository",
    )
    parser.add_argument("--installer", type=Path, help=argparse.SUPPRESS)  # the .run itself
    parser.add_argument(
        "--force", action="store_true", help="install even an older version than the one present"
    )
    parser.add_argument(
        "--desktop",
        action="store_true",
        help="also add the menu and autostart entries and ~/.local/bin/eid-agent",
    )
    parser.add_argument(
        "--start",
        action="store_true",
        help="then (re)start the installed agent and wait until it listens",
    )


def run(io: Io, args: argparse.Namespace) -> int:
    from agent.cli.setup import finish_install
    from eidcore.paths import default_data_dir

    data_dir = args.data_dir or default_data_dir()
    status = install_command(
        data_dir,
        repository=args.repository,
        trust=args.trust,
        bundle=args.bundle,
        archive=args.archive,
        installer=args.installer,
        force=args.force,
        out=io.stdout,
        err=io.stderr,
        language=io.language,
    )
    if status != 0 or not (args.desktop or args.start):
        return status
    return finish_install(
        data_dir,
        desktop=args.desktop,
        start=args.start,
        out=io.stdout,
        err=io.stderr,
        language=io.language,
    )


VERIFY_DEADLINE = 20.0  # seconds to check an installer against its repository


def install_command(
    data_dir: Path,
    *,
    repository: str,
    trust: Path,
    bundle: Path | None,
    archive: Path | None = None,
    installer: Path | None = None,
    force: bool,
    out: TextIO,
    err: TextIO,
    language: Language = Language.EN,
) -> int:
    """Install (or repair) into the per-user versions layout and pin the repository.
    ``archive``: the release archive ``bundle`` was unpacked from (an installer's), kept
    for the first update's patch and checked against the repository when it answers;
    ``installer``: the installer file itself, checked against the release's signed list
    of its installers."""
    say = sayer(language)
    layout = Layout.in_data_dir(data_dir)
    try:
        root = trust.read_bytes()
        json.loads(root)
    except (OSError, ValueError) as exc:
        err.write(f"eid-agent: the trusted root metadata {trust} is not readable: {exc}\n")
        return 2
    layout.configure(repository, root)
    source = layout.source()
    assert source is not None
    try:
        if bundle is not None:
            version = bundle_version(bundle)
            _refuse_older(layout, version, force)
            if archive is not None:
                _checked_archive(layout, source, archive, version, installer, out, say)
            if version != layout.current_version():
                layout.add(bundle, move=False)
        else:
            _, unpacked = remote.fetch(source, Version("0"), layout.new_staging_dir())
            version = bundle_version(unpacked)
            _refuse_older(layout, version, force)
            if version != layout.current_version():
                layout.add(unpacked, move=True)
    except UpdateError as exc:
        err.write(say(Term.INSTALL_FAILED, reason=exc) + "\n")
        layout.prune(source)
        return 1
    layout.switch(version)
    layout.prune(source)
    out.write(say(Term.INSTALL_DONE, version=version, path=layout.current / "eid-agent") + "\n")
    return 0


def _checked_archive(
    layout: Layout,
    source: remote.Source,
    archive: Path,
    version: Version,
    installer: Path | None,
    out: TextIO,
    say: Say,
) -> None:
    """Keep the installer's archive; refuse it, or the installer, if the repository signed
    another.

    Raises: InstallError."""
    kept = layout.keep_archive(archive, version)
    quick = dataclasses.replace(source, deadline=VERIFY_DEADLINE)
    try:
        signed = remote.verify_target(quick, archive_name(version), kept)
        if installer is not None:
            _checked_installer(installer, signed.get("installers"), version, source, say)
    except remote.FetchError as exc:
        kept.unlink(missing_ok=True)
        raise InstallError(
            say(Term.INSTALL_NOT_SIGNED, version=version, repository=source.base_url) + f" ({exc})"
        ) from None
    except (remote.CheckError, OSError) as exc:
        out.write(say(Term.INSTALL_UNCHECKED, repository=source.base_url) + "\n")
        log.warning("installer not checked against %s: %s", source.base_url, exc)


def _checked_installer(
    installer: Path, signed: object, version: Version, source: remote.Source, say: Say
) -> None:
    """The installer file against the release's signed list of its installers (a release
    published before installers were signed has none: nothing to compare).

    Raises: remote.FetchError (another installer), OSError."""
    import hashlib

    if not isinstance(signed, dict) or installer.name not in signed:
        return
    data = installer.read_bytes()
    entry = signed[installer.name]
    if (
        not isinstance(entry, dict)
        or entry.get("length") != len(data)
        or entry.get("sha256") != hashlib.sha256(data).hexdigest()
    ):
        raise remote.FetchError(f"{installer.name} is not the installer the repository signed")


def _refuse_older(layout: Layout, version: Version, force: bool) -> None:
    current = layout.current_version()
    if current is not None and version < current and not force:
        raise InstallError(f"{version} is older than the installed {current} (use --force)")
