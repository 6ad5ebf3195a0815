"""The agent's own log file: owner-only and bounded.

It names every site the person used, so it is created 0600 (and a rotated file keeps that
mode, being renamed); it is rotated at ``MAX_BYTES`` keeping ``BACKUPS`` older files, so
an agent that runs for months cannot fill the disk.
"""

from __future__ import annotations

import io
import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from eidcore.atomicfile import private_file
from eidcore.logline import PrintableFormatter

__all__ = ["BACKUPS", "MAX_BYTES", "log_to_file"]

MAX_BYTES = 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _PrivateRotatingHandler(RotatingFileHandler):
    def _open(self) -> io.TextIOWrapper:
        # RotatingFileHandler opens with open(): the umask would decide the mode.
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handle = os.fdopen(fd, "a", encoding=self.encoding or "utf-8")
        private_file(Path(self.baseFilename))
        return handle


def log_to_file(path: Path) -> None:
    """Send the root logger's records to ``path`` instead of where they went.

    Raises:
        OSError: the file cannot be opened; NotPrivate: it is another user's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _PrivateRotatingHandler(
        path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(PrintableFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
