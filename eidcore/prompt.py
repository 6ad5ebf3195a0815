"""Reading secrets on the command line.

On a terminal: getpass (no echo). From a pipe: one line per secret, so scripts and tests
can drive the commands (``printf 'old\nnew\nnew\n' | eid-agent credentials passwd ID``).
Secrets are returned to the caller and never printed or logged here.
"""

from __future__ import annotations

import getpass
from typing import TextIO


class NoInput(Exception):
    """Standard input ended before the secret was given."""


def read_secret(prompt: str, stdin: TextIO, stderr: TextIO) -> str:
    """Raises: NoInput."""
    if stdin.isatty():
        try:
            return getpass.getpass(prompt, stream=stderr)
        except EOFError:
            raise NoInput from None
    stderr.write(prompt)
    stderr.flush()
    line = stdin.readline()
    if not line:
        stderr.write("\n")
        raise NoInput
    stderr.write("\n")
    return line.rstrip("\r\n")


class PasswordsDiffer(Exception):
    """The new password and its repetition differ."""


def read_new_password(prompt: str, again: str, stdin: TextIO, stderr: TextIO) -> str:
    """Ask twice. Raises: NoInput, PasswordsDiffer."""
    first = read_secret(prompt, stdin, stderr)
    if read_secret(again, stdin, stderr) != first:
        raise PasswordsDiffer
    return first
