"""``eid-tuf-client``: the TUF conformance suite's client-under-test protocol
(tuf-conformance CLIENT-CLI.md: ``init``, ``refresh``, ``download``), spoken over the same
seam the agent updates through (agent/updater/remote.py), so the suite can be pointed at
exactly the code that guards the agent's updates. Exit 0 on success, 1 on any failure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from agent.updater import remote
from agent.updater.errors import UpdateError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eid-tuf-client")
    parser.add_argument("--metadata-dir", type=Path, required=True)
    parser.add_argument("--metadata-url")
    parser.add_argument("--target-name")
    parser.add_argument("--target-base-url")
    parser.add_argument("--target-dir", type=Path)
    parser.add_argument("command", choices=["init", "refresh", "download"])
    parser.add_argument("trusted_root", nargs="?", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            if args.trusted_root is None:
                parser.error("init needs the trusted root file")
            args.metadata_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.trusted_root, args.metadata_dir / "root.json")
        elif args.command == "refresh":
            if not args.metadata_url:
                parser.error("refresh needs --metadata-url")
            # tufup's client wants a targets folder even to refresh; keep it beside
            scratch = args.metadata_dir.parent / f".{args.metadata_dir.name}-targets"
            remote.refresh_metadata(args.metadata_dir, args.metadata_url, scratch)
        else:
            if not (
                args.metadata_url and args.target_name and args.target_base_url and args.target_dir
            ):
                parser.error(
                    "download needs --metadata-url, --target-name, "
                    "--target-base-url and --target-dir"
                )
            remote.download_artifact(
                args.metadata_dir,
                args.metadata_url,
                args.target_name,
                args.target_base_url,
                args.target_dir,
            )
    except (UpdateError, OSError) as exc:
        sys.stderr.write(f"eid-tuf-client: {exc}\n")
        return 1
    return 0


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
