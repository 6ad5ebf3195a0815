"""Log lines about what a peer sent: one line each, nothing that forges another line or
breaks the log file's encoder."""

from __future__ import annotations

import io
import logging

from eidcore.logline import MAX_DETAIL, PrintableFormatter, one_line, printable


def test_printable_escapes_what_could_forge_a_line() -> None:
    assert printable("plain Åsa 😀") == "plain Åsa 😀"
    assert printable("a\nINFO fake") == "a\\nINFO fake"
    assert printable("\r\t\x1b[31m") == "\\r\\t\\x1b[31m"
    assert printable("\ud800x") == "\\ud800x"
    assert printable("\u2028\u202e\u200b") == "\\u2028\\u202e\\u200b"
    assert printable("\U000e0041") == "\\U000e0041"


def _raise(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_one_line_names_type_message_and_place() -> None:
    line = one_line(_raise("bad thing\nsecond line"))
    assert line.startswith("ValueError: bad thing (")
    assert "second line" not in line and "\n" not in line
    assert "test_logline.py:" in line


def test_one_line_is_bounded_and_printable() -> None:
    line = one_line(_raise("\ud800" * 10_000))
    assert len(line) < MAX_DETAIL * 7 + 100  # every character at most as long as \ud800
    assert line.isprintable()
    assert one_line(KeyError()) == "KeyError"  # never raised: no place


def test_the_formatter_writes_one_printable_line_per_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.logline")
    log.addHandler(handler)
    # not on to pytest's own capture, which keeps the raw text: a lone surrogate in a
    # test's report cannot cross to a parallel run's controller (UTF-8 only)
    log.propagate = False
    try:
        log.warning("refused %s", "/rp/v1/x\nERROR forged \ud800")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    written = stream.getvalue()
    assert written == "WARNING refused /rp/v1/x\\nERROR forged \\ud800\n"
    written.encode("utf-8")  # the file's encoder takes it
