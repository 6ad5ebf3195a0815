"""Making keys on a PIV card and loading its certificates, through OpenSC's ``piv-tool``.

OpenSC's PKCS#11 module offers no key generation on PIV cards (measured: "Generate EC key
mechanism 1040 not supported"); OpenSC does it with ``piv-tool`` and the card's management
key (9B, 3DES). The key goes to piv-tool in a file named by ``PIV_EXT_AUTH_KEY`` — written
owner-only in a private temporary folder and removed at once — never on a command line,
which other users can read. The driver stays OpenSC's: this module only runs its tool.
Mutual authentication (``M``): Debian's OpenSC 0.23 builds an external authenticate's
answer longer than the card's challenge, then refuses it itself ("Allocated and computed
lengths do not match").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.credentials.pkcs11.errors import ManagementKeyRefused, TokenFault

PIV_TOOL = "/usr/bin/piv-tool"
SLOT_NAMES = {0x9A: "9A", 0x9C: "9C"}
TIMEOUT = 60.0
# The management key PIV cards and YubiKeys ship with (3DES); issuers change it.
DEFAULT_ADMIN_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")


class AdminKeyUnreadable(ValueError):
    """A management key file that does not hold 48 hex digits (a 3DES key)."""


def read_admin_key(path: Path) -> bytes:
    """Raises: AdminKeyUnreadable (the file is missing, unreadable or not a key)."""
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip().replace(":", ""))
    except (OSError, ValueError):
        raise AdminKeyUnreadable(str(path)) from None
    if len(key) != 24:
        raise AdminKeyUnreadable(str(path))
    return key


def available() -> bool:
    return shutil.which(PIV_TOOL) is not None or Path(PIV_TOOL).exists()


@contextmanager
def _workspace(admin_key: bytes) -> Iterator[tuple[Path, dict[str, str]]]:
    if len(admin_key) != 24:
        raise ValueError("a 3DES management key is 24 bytes")
    folder = Path(tempfile.mkdtemp(prefix="eid-piv-"))  # 0700
    try:
        key_file = folder / "admin.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(admin_key)
        yield folder, {**os.environ, "PIV_EXT_AUTH_KEY": str(key_file)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(
    args: Sequence[str],
    env: dict[str, str],
    during: str,
    *,
    success: frozenset[int] = frozenset({0}),
) -> str:
    try:
        done = subprocess.run(
            [PIV_TOOL, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TokenFault(type(exc).__name__, during) from None
    if done.returncode not in success or (done.returncode and done.stderr.strip()):
        last = (done.stderr.strip().splitlines() or ["failed"])[-1][:200]
        raise TokenFault(f"piv-tool: {last}", during)
    return done.stdout


def authenticate(reader: str, admin_key: bytes, label: str) -> None:
    """Whether the card in ``reader`` takes ``admin_key``, and nothing else: before an order
    spends its activation code. Raises: ManagementKeyRefused, TokenFault."""
    with _workspace(admin_key) as (_folder, env):
        try:
            _run(["--reader", reader, "--admin", "M:9B:03"], env, "authenticate")
        except TokenFault as exc:
            # measured: "admin_mode failed -1211" (SC_ERROR_SECURITY_STATUS_NOT_SATISFIED)
            if "admin_mode failed" in exc.what:
                raise ManagementKeyRefused(label) from None
            raise


def generate(reader: str, slot: int, admin_key: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 key made in ``slot`` (9A or 9C) of the card in ``reader``. Raises: TokenFault
    (no card, a wrong management key, a card that does not generate).

    Measured: Debian's piv-tool 0.23 ``--genkey`` cannot hand out an EC key under OpenSSL 3
    (it passes the curve's name with the length of a pointer: "invalid curve"), though the
    card made it. So the card's GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 3.3.2) goes
    through piv-tool's ``--send-apdu`` after its authentication, and the point is read from
    the answer.
    """
    command = ":".join(
        f"{b:02X}"
        for b in bytes([0x00, 0x47, 0x00, slot, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00])
    )
    with _workspace(admin_key) as (_folder, env):
        out = _run(
            ["--reader", reader, "--admin", "M:9B:03", "--send-apdu", command],
            env,
            "generate a key",
        )
    answer = _received(out)
    point = answer[5:] if answer[:5] == bytes.fromhex("7F49438641") else b""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise TokenFault("no P-256 public key in the card's answer", "generate a key") from None


def _received(output: str) -> bytes:
    """The data piv-tool prints after "Received (SW1=0x90, SW2=0x00):": 16 bytes a line,
    each as two hex digits and a space (48 columns), then the same bytes as text."""
    lines = output.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith("Received (SW1=0x90, SW2=0x00)")),
        None,
    )
    if start is None:
        raise TokenFault("piv-tool: the card refused", "generate a key")
    data = bytearray()
    for line in lines[start + 1 :]:
        fields = line[:48].split()
        if not fields or not all(len(f) == 2 for f in fields):
            break
        try:
            data += bytes.fromhex("".join(fields))
        except ValueError:
            break
    return bytes(data)


def load_certificate(
    reader: str, slot: int, certificate: x509.Certificate, admin_key: bytes
) -> None:
    """Write ``certificate`` into ``slot``'s certificate object. Raises: TokenFault."""
    with _workspace(admin_key) as (folder, env):
        pem = folder / "certificate.pem"
        pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        # Debian's piv-tool 0.23 exits with the count of bytes written (mod 256) when the
        # write succeeded: that status, with nothing said on stderr, is its success. The
        # caller reads the token again to see the certificate there.
        written = len(certificate.public_bytes(serialization.Encoding.DER)) % 256
        _run(
            [
                "--reader",
                reader,
                "--admin",
                "M:9B:03",
                "--cert",
                SLOT_NAMES[slot],
                "--in",
                str(pem),
            ],
            env,
            "load a certificate",
            success=frozenset({0, written}),
        )
