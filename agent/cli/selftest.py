"""``eid-agent self-test``: whether this installation works (the health check a new
version passes before an update switches to it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from agent import __version__
from agent.cli.io import Io
from agent.updater import running_layout

__all__ = ["add_arguments", "run", "self_test_command"]


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(io: Io, args: argparse.Namespace) -> int:
    from eidcore.paths import default_data_dir

    return self_test_command(args.data_dir or default_data_dir(), io.stdout, io.stderr)


def self_test_command(data_dir: Path, out: TextIO, err: TextIO) -> int:
    from agent.app import self_test

    layout = running_layout(data_dir)
    bundle = layout.versions / __version__ if layout is not None else None
    problems = self_test(data_dir, bundle)
    for problem in problems:
        err.write(f"self-test: {problem}\n")
    if not problems:
        out.write(f"eid-agent {__version__}: self-test passed\n")
    return 1 if problems else 0
