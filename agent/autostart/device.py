"""The ``uhi`` a relay passes on to its websites (BankID's ``device.uhi``): one identifier
per installation and party, so a site can tell a person's usual computer from a new one,
while two sites comparing notes cannot join their users by it.

It is an HMAC of the relay's origin and the party's identifier under a key drawn once per
installation and kept owner-only in the data folder; the key never leaves the computer.
A damaged key file is drawn again (sites then see a new computer; nothing worse).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

from eidcore.atomicfile import atomic_write_bytes

__all__ = ["KEY_BYTES", "installation_key", "uhi"]

KEY_BYTES = 32
UHI_BYTES = 21  # 28 characters of base64, about the length of BankID's


def installation_key(data_dir: Path, random_bytes: Callable[[int], bytes]) -> bytes:
    path = data_dir / "installation.key"
    try:
        key = path.read_bytes()
        if len(key) == KEY_BYTES:
            return key
    except OSError:
        pass
    key = random_bytes(KEY_BYTES)
    data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, key, mode=0o600)
    return key


def uhi(key: bytes, relay: str, party: str) -> str:
    """This installation's identifier for ``party`` at ``relay`` (its origin)."""
    mac = hmac.new(key, f"{relay}\n{party}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac[:UHI_BYTES]).decode("ascii")
