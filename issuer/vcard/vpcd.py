"""Connect a virtual card to Debian's vpcd (the virtual reader driver inside pcscd).

vpcd listens on TCP 35963 (reader "Virtual PCD 00 00") and 35964 ("… 00 01"); the card is
*inserted* when we connect and *removed* when we close. Every frame is a 2-byte
big-endian length and a payload; a one-byte payload is a control code (00 power off,
01 power on, 02 reset, 04 send ATR), anything longer is a command APDU answered with the
response APDU.

vpcd listens on all interfaces: it is a development fixture, never part of an end-user
installation.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from eidcore.atomicfile import atomic_write_bytes
from issuer.vcard.card import CardState


class Card(Protocol):
    """What a virtual card offers the reader: its ATR and its answers (profile or PIV)."""

    atr: bytes

    def reset(self) -> None: ...
    def process(self, apdu: bytes) -> bytes: ...


log = logging.getLogger(__name__)

VPCD_PORTS = (35963, 35964)
_POWER_OFF, _POWER_ON, _RESET, _ATR = 0, 1, 2, 4


class CardFile:
    """The card's persistent state in a file, rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> CardState:
        return CardState.from_json(self.path.read_bytes())

    def save(self, state: CardState) -> None:
        atomic_write_bytes(self.path, state.to_json(), mode=0o600)


class VpcdLink:
    """One card in one virtual reader, served on a background thread until ``remove``."""

    def __init__(
        self,
        card: Card,
        *,
        host: str = "127.0.0.1",
        port: int = VPCD_PORTS[0],
        on_apdu: Callable[[bytes, bytes], None] | None = None,
    ) -> None:
        self.card, self._host, self._port, self._on_apdu = card, host, port, on_apdu
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.apdus = 0

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd: the card is in the reader. Raises: OSError (vpcd not there)."""
        sock = socket.create_connection((self._host, self._port), timeout=timeout)
        # Without these every APDU waits ~40 ms for a delayed ACK (measured with
        # bookworm's vpcd): small frames, one in flight at a time.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self._sock = sock
        self.card.reset()
        self._thread = threading.Thread(target=self._serve, name="vcard", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Close the connection: the card leaves the reader."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.card.reset()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            while True:
                _quickack(sock)
                header = _recv_exact(sock, 2)
                if header is None:
                    return
                payload = _recv_exact(sock, struct.unpack(">H", header)[0])
                if payload is None:
                    return
                reply = self._handle(payload)
                if reply is not None:
                    sock.sendall(struct.pack(">H", len(reply)) + reply)
        except OSError:
            return  # removed (closed by us) or vpcd went away
        finally:
            log.debug("virtual card out of the reader after %d APDUs", self.apdus)

    def _handle(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            if payload[0] == _ATR:
                return self.card.atr
            if payload[0] in (_POWER_OFF, _POWER_ON, _RESET):
                self.card.reset()
            return None
        self.apdus += 1
        response = self.card.process(payload)
        if self._on_apdu is not None:
            self._on_apdu(payload, response)
        return response


def _quickack(sock: socket.socket) -> None:
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:  # Linux: re-armed before every receive, it does not stick
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)
