"""A real pcscd with Debian's vpcd, and the project's virtual card in its first reader.

The session uses the machine's pcscd when one runs, and otherwise starts its own (as
root, foreground) and stops it afterwards. Nothing in the PC/SC path is simulated.

vpcd listens on fixed ports (35963, 35964) inside the kernel's ephemeral range. Any test
server bound to port 0 may be handed one of them, and a pcscd started after that comes up
without the reader ("Could not initialize connection to virtual ICC" in its log; seen in
CI). As root the session asks the kernel to keep both ports out of the ephemeral range
(``ip_local_reserved_ports``), which covers every process, every parallel worker included;
a reservation only stops the kernel choosing them, so pcscd still binds them. Where that
file cannot be written, a session that uses pcscd holds both ports from the end of its
collection, before any test runs, and lets go of them only to start pcscd.

All tests that use pcscd run in one worker (``xdist_group("pcscd")``, set in conftest):
there is one virtual reader, and some tests restart the pcscd their session started.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.credentials.card.errors import CardError, NoCard
from agent.credentials.card.pcsc import PcscConnection, PcscContext
from issuer import CertificateAuthority
from issuer.cards import personalise_card
from issuer.vcard import CardFile, VirtualCard, VpcdLink
from issuer.vcard.vpcd import VPCD_PORTS
from tests.conftest import ANNA

READER = "Virtual PCD 00 00"
ID_PIN, SIGN_PIN, PUK = "1234", "12345", "12345678"
SOCKET = Path("/run/pcscd/pcscd.comm")


def _pcscd_running() -> bool:
    """Any pcscd process (by name: its pid file goes when another pcscd exits)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text()
        except OSError:
            continue
        name, _, rest = fields.partition(") ")
        if name.endswith("(pcscd") and not rest.startswith("Z"):  # not a zombie
            return True
    return False


class Pcscd:
    """The pcscd the tests use; ``restart`` only when this session started it."""

    def __init__(self, process: subprocess.Popen[bytes] | None, binary: str) -> None:
        self.process, self.binary = process, binary

    @property
    def owned(self) -> bool:
        return self.process is not None

    def restart(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = _start(self.binary)

    def kill(self) -> None:
        """SIGKILL, then a new pcscd: a crash, not a shutdown."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = _start(self.binary)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


_held: list[socket.socket] = []
_RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def _ranges(text: str) -> set[int]:
    ports: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def reserve_vpcd_ports() -> bool:
    """Keep vpcd's ports out of the kernel's ephemeral range, for every process on this
    machine; whether they are. Left in place afterwards: it changes nothing but that."""
    try:
        text = _RESERVED.read_text()
        if set(VPCD_PORTS) <= _ranges(text):
            return True
        wanted = ",".join(
            [text.strip(), *map(str, VPCD_PORTS)] if text.strip() else list(map(str, VPCD_PORTS))
        )
        _RESERVED.write_text(wanted + "\n")
        return set(VPCD_PORTS) <= _ranges(_RESERVED.read_text())
    except (OSError, ValueError):
        return False


def hold_vpcd_ports() -> None:
    """Keep vpcd's ports from being handed out as ephemeral ports (see the module's text)."""
    for port in VPCD_PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))  # conflicts with any address
            sock.listen(1)
        except OSError:
            sock.close()  # a running pcscd has it: that is the port's owner already
            continue
        _held.append(sock)


def release_vpcd_ports() -> None:
    while _held:
        _held.pop().close()


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))  # conflicts with any address
            sock.listen(1)
        except OSError:
            return True
    return False


def _start(binary: str) -> subprocess.Popen[bytes]:
    release_vpcd_ports()
    with tempfile.TemporaryFile() as log:  # pcscd keeps its own descriptor
        proc = subprocess.Popen([binary, "-f"], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not _readers_visible():
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait(timeout=10)
                log.seek(0)
                said = log.read().decode(errors="replace")[-2000:]
                taken = [port for port in VPCD_PORTS if _port_taken(port)]
                raise RuntimeError(
                    "pcscd did not come up with the vpcd readers"
                    + (f"; ports held by another process: {taken}" if taken else "")
                    + f"; pcscd said:\n{said}"
                )
            time.sleep(0.1)
    return proc


@pytest.fixture(scope="session")
def pcscd() -> Iterator[Pcscd]:
    binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if _pcscd_running():
        yield Pcscd(None, binary)
        return
    binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if not Path(binary).exists() or os.geteuid() != 0:
        pytest.skip("needs pcscd (./dev setup installs it) and root to start it")
    daemon = Pcscd(_start(binary), binary)
    yield daemon
    daemon.stop()


def _readers_visible() -> bool:
    try:
        with PcscContext() as context:
            return READER in context.readers()
    except CardError:
        return False


@dataclass
class InsertedCard:
    link: VpcdLink
    card: VirtualCard
    file: CardFile
    ca: CertificateAuthority

    def connect(self, timeout: float = 5.0) -> PcscConnection:
        """A connection once pcscd has seen the card (insertion takes a moment)."""
        deadline = time.monotonic() + timeout
        context = PcscContext()
        while True:
            try:
                return context.connect(READER)
            except NoCard:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def wait_removed(self, timeout: float = 5.0) -> None:
        wait_no_card(timeout)


def wait_no_card(timeout: float = 5.0) -> None:
    """Until pcscd has taken the card in the first reader down."""
    deadline = time.monotonic() + timeout
    with PcscContext() as context:
        while time.monotonic() < deadline:
            try:
                context.connect(READER).close()
            except NoCard:
                return
            except CardError:
                pass  # on its way out
            time.sleep(0.02)
    raise AssertionError("pcscd still sees the card")


@pytest.fixture(scope="session")
def card_ca() -> CertificateAuthority:
    return CertificateAuthority.create("Card Test", dt.datetime.now(dt.UTC) - dt.timedelta(days=1))


@pytest.fixture
def inserted_card(
    pcscd: Pcscd, tmp_path: Path, card_ca: CertificateAuthority
) -> Iterator[InsertedCard]:
    inserted = personalised_card(tmp_path, card_ca)
    inserted.link.insert()
    try:
        yield inserted
    finally:
        inserted.link.remove()
        inserted.wait_removed()


def personalised_card(tmp_path: Path, card_ca: CertificateAuthority) -> InsertedCard:
    """A card ready to insert (``link.insert()``), not yet in the reader."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    state = personalise_card(
        card_ca,
        ANNA,
        dt.datetime.now(dt.UTC),
        serial="VC0001",
        identification_pin=ID_PIN,
        signature_pin=SIGN_PIN,
        puk=PUK,
    )
    file = CardFile(tmp_path / "card.json")
    file.save(state)
    card = VirtualCard(state, file.save)
    return InsertedCard(VpcdLink(card), card, file, card_ca)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, before any parallel worker starts
        reserve_vpcd_ports()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Where the kernel cannot reserve them, hold vpcd's ports for a session that will use
    pcscd — known once its tests are collected, before any test runs a server — and for no
    other: a session holding them without using them broke the cards of another session on
    the same machine. Parallel workers each collect every test, so they cannot tell which
    of them will start pcscd: they rely on the reservation."""
    if reserve_vpcd_ports() or hasattr(session.config, "workerinput"):
        return
    if any("pcscd" in getattr(item, "fixturenames", ()) for item in session.items):
        hold_vpcd_ports()
