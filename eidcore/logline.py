"""Log lines about what someone else sent. Pure, apart from ``logging`` itself.

A server facing the internet logs what anonymous peers make it do. Two rules keep that
log from becoming the peer's tool:

- **One line per request.** A traceback is ~2 kB an attacker can multiply at will (a
  lone surrogate once gave 1.8 kB per request at the relay); an unexpected error is
  logged as ``one_line(exc)``: its type, the first line of its message and where it was
  raised — enough to find it, too little to fill a disk.
- **Nothing a peer sends can forge a line.** A path, a header or a field value may hold a
  line feed, an escape sequence for the terminal that shows the log, or a lone surrogate
  that the log file's UTF-8 encoder refuses (``logging`` then prints its own traceback
  to stderr). ``PrintableFormatter`` writes every such character as an escape.
"""

from __future__ import annotations

import logging
import traceback
from typing import TextIO

__all__ = [
    "FORMAT",
    "MAX_DETAIL",
    "PEER_LOGGERS",
    "PrintableFormatter",
    "log_to",
    "one_line",
    "one_line_records",
    "printable",
]

FORMAT = "%(levelname)s %(name)s: %(message)s"

MAX_DETAIL = 200  # characters of an exception's message in one_line


def printable(text: str) -> str:
    """``text`` with every control character, line or paragraph separator, and
    surrogate written as a Python escape (``\\n``, ``\\x1b``, ``\\ud800``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in "\n\r\t":
        return repr(ch)[1:-1]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message (file.py:123)``: the innermost frame of the
    traceback, the message cut at ``MAX_DETAIL`` characters and made printable."""
    message = str(exc).split("\n", 1)[0]
    if len(message) > MAX_DETAIL:
        message = message[:MAX_DETAIL] + "…"
    where = ""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if frames:
        last = frames[-1]
        where = f" ({_short(last.filename)}:{last.lineno})"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return printable(text + where)


def _short(filename: str) -> str:
    """The path from the package on: ``relay/server.py``, not the install folder."""
    parts = filename.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


class PrintableFormatter(logging.Formatter):
    """A formatter whose message part is ``printable``: one record, one line. A
    traceback (from ``log.exception`` in code no peer reaches) keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def log_to(stream: TextIO, level: int, fmt: str = FORMAT) -> None:
    """Send the root logger's records at ``level`` and above to ``stream``, one printable
    line each (what ``logging.basicConfig`` does, with ``PrintableFormatter``); the
    libraries that log what peers send (``PEER_LOGGERS``) log one line per record."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
    for name in PEER_LOGGERS:
        one_line_records(logging.getLogger(name))


# aiohttp's server logs every request it cannot parse ("Error handling request") with the
# parser's traceback, ~600 bytes a malformed request; asyncio logs failed handshakes and
# accepts the same way.
PEER_LOGGERS = ("aiohttp.server", "aiohttp.web", "asyncio")


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {one_line(record.exc_info[1])}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def one_line_records(logger: logging.Logger) -> None:
    """Every record of ``logger`` is one line: a traceback becomes ``one_line`` of its
    exception."""
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())
