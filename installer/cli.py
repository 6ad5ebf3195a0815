"""``eid-release``: the administrator's update-repository tool. Never prompts: it runs
from CI and cron. Exit status 0 done, 1 refused (the message says why), 2 usage.

    eid-release init [--dir D] [--keys ROLE=N] [--threshold ROLE=N] [--expiry ROLE=DAYS]
                     [--url URL]
    eid-release bundle VERSION OUT [--agent-only] [--python PATH]
    eid-release publish VERSION BUNDLE [policy options] [--no-patch] [--rollout-days N]
                        [--url URL]
                        [--deb MAINTAINER]
    eid-release publish … --hold; eid-release sign HELD_JSON --keys DIR (elsewhere);
    eid-release publish-held HELD_JSON       # threshold signing across machines
    eid-release policy [policy options]
    eid-release refresh-timestamp            # the daily cron job
    eid-release rollout pause|resume|halt [--version V]
    eid-release rotate-key ROLE [--old NAME]
    eid-release verify-build TAG [--source CHECKOUT]
    eid-release status [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from eidcore.logline import log_to

__all__ = ["main"]


def _pairs(values: list[str], what: str) -> dict[str, int]:
    result = {}
    for value in values:
        role, sep, number = value.partition("=")
        if not sep or not number.isdigit():
            raise argparse.ArgumentTypeError(f"{what} takes ROLE=NUMBER, not {value!r}")
        result[role] = int(number)
    return result


def _policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("policy (signed with the release; kept until changed)")
    group.add_argument(
        "--required-minimum",
        metavar="V",
        help="older agents refuse to identify or sign until updated ('none' clears)",
    )
    group.add_argument(
        "--recommended", metavar="V", help="older agents recommend updating ('none' clears)"
    )
    auto = group.add_mutually_exclusive_group()
    auto.add_argument(
        "--automatic",
        dest="automatic",
        action="store_true",
        default=None,
        help="agents update without asking (never during an order)",
    )
    auto.add_argument("--no-automatic", dest="automatic", action="store_false")
    group.add_argument(
        "--manual-url",
        metavar="URL",
        help="the install page people are sent to when self-update fails",
    )
    group.add_argument(
        "--failure-threshold",
        type=int,
        metavar="N",
        help="failed updates in a row before people are sent to the install page",
    )
    group.add_argument(
        "--check-interval-minutes",
        type=int,
        metavar="M",
        help="how often agents look for updates (default 360)",
    )
    group.add_argument(
        "--version-status",
        action="append",
        metavar="RANGE=STATUS[@DATE]",
        help="accepted, phaseOut@YYYY-MM-DD (works to that day) or blocked for a version "
        "range, e.g. '<1.2.0=blocked' or '==1.2.*=phaseOut@2027-03-31'; the first "
        "matching rule wins; repeat for more; the list replaces the last ('none' clears)",
    )
    group.add_argument(
        "--max-offline-days",
        type=int,
        metavar="N",
        help="an agent that could not check for longer refuses orders until it can (default 30)",
    )


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for option, key in (("required_minimum", "requiredMinimum"), ("recommended", "recommended")):
        value = getattr(args, option)
        if value is not None:
            changes[key] = None if value.lower() == "none" else value
    if args.version_status:
        changes["versionStatus"] = _version_rules(args.version_status)
    for option, key in (
        ("automatic", "automatic"),
        ("manual_url", "manualUrl"),
        ("failure_threshold", "failureThreshold"),
        ("check_interval_minutes", "checkIntervalMinutes"),
        ("max_offline_days", "maxOfflineDays"),
    ):
        value = getattr(args, option)
        if value is not None:
            changes[key] = value
    return changes


def _version_rules(values: list[str]) -> list[dict[str, str]] | None:
    """``RANGE=STATUS[@DATE]`` options as the signed policy's rules (checked there)."""
    if [v.lower() for v in values] == ["none"]:
        return None
    rules = []
    for value in values:
        versions, sep, status = value.rpartition("=")
        if not sep or not versions:
            raise argparse.ArgumentTypeError(
                f"--version-status takes RANGE=STATUS[@DATE], not {value!r}"
            )
        status, _, until = status.partition("@")
        rule = {"versions": versions, "status": status}
        if until:
            rule["until"] = until
        rules.append(rule)
    return rules


def _bundle_arguments(first: str, second: str, err: TextIO) -> tuple[str, Path]:
    """``bundle VERSION OUT``; ``bundle OUT VERSION`` (before 1.5) still works, with a
    deprecation line: the old order is told by its first argument not being a version."""
    from packaging.version import InvalidVersion, Version

    try:
        Version(first)
    except InvalidVersion:
        try:
            Version(second)
        except InvalidVersion:
            raise argparse.ArgumentTypeError(f"not a version: {first!r}") from None
        err.write(
            f"eid-release: 'bundle OUT VERSION' is deprecated; write 'bundle {second} "
            f"{first}' (VERSION first, as publish takes it)\n"
        )
        return second, Path(first)
    return first, Path(second)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=Path.cwd(), help="the release folder (default: the current one)"
    )
    common.add_argument("-v", "--verbose", action="count", default=0)
    parser = argparse.ArgumentParser(
        prog="eid-release", description="The update repository's tool: unattended, for CI and cron."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", parents=[common], help="keys and the first metadata")
    init.add_argument("--keys", action="append", default=[], metavar="ROLE=N")
    init.add_argument("--threshold", action="append", default=[], metavar="ROLE=N")
    init.add_argument("--expiry", action="append", default=[], metavar="ROLE=DAYS")
    init.add_argument("--url", help="where the repository will be served (for the installer)")
    bundle = commands.add_parser("bundle", parents=[common], help="build a release bundle")
    # VERSION first, as publish takes it; the old order (OUT VERSION) still works, with a
    # deprecation line, for one release
    bundle.add_argument("version", metavar="VERSION")
    bundle.add_argument("out", metavar="OUT")
    bundle.add_argument(
        "--agent-only",
        action="store_true",
        help="leave the dependencies to the interpreter's site-packages",
    )
    bundle.add_argument("--python", help="the interpreter the launcher runs")
    bundle.add_argument(
        "--source",
        type=Path,
        metavar="CHECKOUT",
        help="bundle this checkout's code (default: the running code)",
    )
    publish = commands.add_parser("publish", parents=[common], help="sign and publish a release")
    publish.add_argument("version")
    publish.add_argument("bundle", type=Path)
    publish.add_argument("--no-patch", action="store_true", help="archive only")
    publish.add_argument(
        "--hold",
        action="store_true",
        help="sign with the targets keys here and hold it for the others "
        "(eid-release sign elsewhere, then publish-held)",
    )
    publish.add_argument(
        "--rollout-days",
        type=int,
        metavar="N",
        help="offer the release to a share of agents growing over N days "
        "(1/N more each day; a required update is never staged)",
    )
    publish.add_argument(
        "--url",
        help="where the repository is served (remembered): the "
        "installer pins it; with it the install page is written",
    )
    publish.add_argument(
        "--deb",
        metavar="MAINTAINER",
        help="also build the Debian package, e.g. 'IT <it@bank.example>'",
    )
    _policy_options(publish)
    policy = commands.add_parser("policy", parents=[common], help="change the policy only")
    _policy_options(policy)
    commands.add_parser(
        "refresh-timestamp", parents=[common], help="re-sign what is about to expire (run daily)"
    )
    staged = commands.add_parser(
        "rollout", parents=[common], help="pause, resume or halt a staged roll-out"
    )
    staged.add_argument(
        "action",
        choices=["pause", "resume", "halt"],
        help="halt: offered to nobody new; pause: kept at today's share",
    )
    staged.add_argument("--version", help="the release (default: the latest)")
    rotate = commands.add_parser("rotate-key", parents=[common], help="replace a role's key")
    rotate.add_argument("role")
    rotate.add_argument("--old", help="the key to replace (default: the role's first)")
    sign = commands.add_parser(
        "sign",
        help="add this machine's targets signatures to a held release (needs no release folder)",
    )
    sign.add_argument("held", type=Path, metavar="HELD_JSON")
    sign.add_argument(
        "--keys",
        type=Path,
        action="append",
        required=True,
        metavar="DIR",
        help="a folder of private keys (repeatable)",
    )
    sign.add_argument("-v", "--verbose", action="count", default=0)
    held = commands.add_parser(
        "publish-held", parents=[common], help="publish a held release signed by enough keys"
    )
    held.add_argument("held", type=Path, metavar="HELD_JSON")
    held.add_argument("--url", help="where the repository is served (for the install page)")
    held.add_argument("--deb", metavar="MAINTAINER", help="also build the Debian package")
    verify = commands.add_parser(
        "verify-build", parents=[common], help="rebuild a release from its tag; compare bytes"
    )
    verify.add_argument("tag", metavar="TAG", help="the release's tag, v1.4.0 or 1.4.0")
    verify.add_argument(
        "--source",
        type=Path,
        default=Path.cwd(),
        metavar="CHECKOUT",
        help="the git checkout with the tag (default: this folder)",
    )
    status = commands.add_parser("status", parents=[common], help="releases, policy, expiry")
    status.add_argument("--json", action="store_true")
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = _parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    log_to(err, level)
    if not args.verbose:  # tufup narrates every step at WARNING and above
        logging.getLogger("tufup").setLevel(logging.ERROR)
    # Anything that would still prompt fails at once instead of hanging a cron job.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    from installer import release
    from installer.bundle import BundleError, build_bundle

    folder: Path = args.dir.resolve() if hasattr(args, "dir") else Path.cwd()
    try:
        if args.command == "init":
            release.init(
                folder,
                keys=_pairs(args.keys, "--keys"),
                thresholds=_pairs(args.threshold, "--threshold"),
                expiry_days=_pairs(args.expiry, "--expiry"),
            )
            if args.url:
                release.public_url(folder, args.url)
            out.write(
                f"repository ready: {folder / 'repository'} (serve it as static files)\n"
                f"trust anchor for agents: {folder / 'repository/metadata/root.json'}\n"
                f"keys: {folder / 'keystore'} (keep private)\n"
            )
        elif args.command == "bundle":
            version, target = _bundle_arguments(args.version, args.out, err)
            build_bundle(
                target,
                version,
                self_contained=not args.agent_only,
                python=args.python,
                source=args.source,
            )
            out.write(f"{target}\n")
        elif args.command == "publish":
            result = release.publish(
                folder,
                args.version,
                args.bundle.resolve(),
                _changes(args),
                patch=not args.no_patch,
                rollout_days=args.rollout_days,
                now=dt.datetime.now(dt.UTC),
                hold=args.hold,
            )
            patch = f", patch {result.patch_bytes} bytes" if result.patch_bytes else ""
            done = "held" if args.hold else "published"
            out.write(
                f"{done} {result.version}: archive {result.archive_bytes} bytes{patch}\n"
                f"policy: {json.dumps(result.policy, sort_keys=True)}\n"
            )
            if args.hold:
                out.write(
                    f"held for signing: {folder / release.HELD}; sign it where the other "
                    "targets keys are (eid-release sign FILE --keys DIR), then "
                    "eid-release publish-held FILE\n"
                )
                return 0
            _install_page(folder, result.version, args.url, args.deb, out, err)
        elif args.command == "sign":
            releases, have, need = release.sign_held(args.held, args.keys)
            out.write(f"signed {args.held}: {', '.join(releases)}; {have} of {need} signatures\n")
        elif args.command == "publish-held":
            version = release.publish_held(folder, args.held)
            out.write(f"published {version}\n")
            _install_page(folder, version, args.url, args.deb, out, err)
        elif args.command == "policy":
            policy = release.set_policy(folder, _changes(args))
            out.write(f"policy: {json.dumps(policy, sort_keys=True)}\n")
        elif args.command == "refresh-timestamp":
            for line in release.refresh(folder, dt.datetime.now(dt.UTC)):
                (err if line.startswith("warning") else out).write(f"{line}\n")
        elif args.command == "rollout":
            now = dt.datetime.now(dt.UTC)
            staged = release.rollout(folder, args.action, now, args.version)
            out.write(
                f"roll-out {args.action}: {json.dumps(staged.to_custom(), sort_keys=True)}"
                f"; offered now to {staged.share(now):.0%} of agents\n"
            )
        elif args.command == "verify-build":
            return _verify(folder, args.tag, args.source, out, err)
        elif args.command == "rotate-key":
            old, new = release.rotate_key(folder, args.role, args.old)
            out.write(f"{args.role}: {old} replaced by {new}; root re-signed by both\n")
        else:
            _status(release.status(folder), out, as_json=args.json)
    except argparse.ArgumentTypeError as exc:
        err.write(f"eid-release: {exc}\n")
        return 2
    except (release.ReleaseError, BundleError) as exc:
        err.write(f"eid-release: {exc}\n")
        return 1
    return 0


def _verify(folder: Path, tag: str, source: Path, out: TextIO, err: TextIO) -> int:
    import tempfile

    from installer.verify import VerifyError, verify_build

    try:
        with tempfile.TemporaryDirectory(prefix="eid-verify-") as work:
            verdict = verify_build(folder, tag, source.resolve(), Path(work))
    except VerifyError as exc:
        err.write(f"eid-release: {exc}\n")
        return 1
    if verdict.same:
        out.write(
            f"{verdict.version}: the rebuild from {tag} is the published archive, byte "
            f"for byte ({verdict.archive_bytes:,} bytes, rebuilt in "
            f"{verdict.seconds:.1f} s)\n"
        )
        return 0
    err.write(f"eid-release: {verdict.version} is NOT what {tag} builds:\n")
    for line in verdict.differences[:50]:
        err.write(f"  {line}\n")
    return 1


def _install_page(
    folder: Path, version: str, url: str | None, deb: str | None, out: TextIO, err: TextIO
) -> None:
    from installer import release

    known = release.public_url(folder, url)
    if known is None:
        err.write("eid-release: no install page: say once where the repository is served (--url)\n")
        return
    page = release.write_install_page(
        folder, version, known, dt.datetime.now(dt.UTC), deb_maintainer=deb
    )
    out.write(f"install page: {page} (served as {known}/install/)\n")
    try:
        signed = release.sign_installers(folder, version)
    except release.ReleaseError as exc:  # targets keys elsewhere: the archive is signed
        err.write(f"eid-release: the installers are not signed with the release: {exc}\n")
        return
    out.write(f"signed with the release: {', '.join(sorted(signed))}\n")


def _status(info: dict[str, Any], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(info, indent=2) + "\n")
        return
    out.write(
        f"repository: {info['repository']}\n"
        f"latest release: {info['latest'] or 'none published yet'}\n\n"
    )
    out.write("releases (newest first; the newest's policy is the one agents follow):\n")
    for entry in info["releases"]:
        patch = f", patch {entry['patchBytes']:,} bytes" if entry["patchBytes"] else ""
        archive = (
            f"archive {entry['archiveBytes']:,} bytes" if entry["archiveBytes"] else "no archive"
        )
        out.write(f"  {entry['version']:<10} {archive}{patch}\n")
        stage = entry.get("rollout")
        if stage is None:
            out.write("      roll-out: offered to every agent\n")
        elif "invalid" in stage:
            out.write(f"      roll-out: not valid ({stage['invalid']})\n")
        else:
            out.write(
                f"      roll-out: {stage['state']}, offered to {stage['share']:.0%} of "
                f"agents ({stage['days']} days from {stage['start']})\n"
            )
        for line in _policy_lines(entry.get("policy") or {}):
            out.write(f"      {line}\n")
    out.write("\nsigning roles:\n")
    for role, data in info["roles"].items():
        out.write(
            f"  {role:<10} version {data['version']:<4} expires {data['expires'][:16]}  "
            f"keys {', '.join(data['keys'])} (threshold {data['threshold']})\n"
        )


def _policy_lines(policy: dict[str, Any]) -> list[str]:
    """A release's signed policy as an administrator reads it."""
    if not policy:
        return ["policy: defaults (nothing required, manual updates, checks every 6 hours)"]
    lines = []
    words = {
        "requiredMinimum": "required minimum",
        "recommended": "recommended",
        "automatic": "automatic updates",
        "manualUrl": "install page",
        "failureThreshold": "failed updates before the install page",
        "checkIntervalMinutes": "check interval (minutes)",
        "maxOfflineDays": "refuse orders after this many days unchecked",
    }
    for key, label in words.items():
        if key in policy:
            value = policy[key]
            shown = ("yes" if value else "no") if isinstance(value, bool) else value
            lines.append(f"{label}: {shown}")
    for rule in policy.get("versionStatus") or []:
        until = f" until {rule['until']}" if rule.get("until") else ""
        lines.append(f"versions {rule['versions']}: {rule['status']}{until}")
    return lines


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
