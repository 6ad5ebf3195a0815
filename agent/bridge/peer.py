"""Which local user owns the other end of a loopback TCP connection (BRIDGE-SECURITY 10).

Linux lists every TCP socket with its owner in /proc/net/tcp and /proc/net/tcp6. The
client's socket is the row whose local address is the peer address we see and whose
remote address is ours. Parsing is pure; reading the files is the driver's one line.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path


def _hex_address(ip: str, port: int) -> str:
    """The kernel's spelling: each 32-bit word of the network-order address printed as a
    native integer (so 127.0.0.1 is 0100007F on little-endian machines), then the port."""
    packed = ipaddress.ip_address(ip).packed
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def socket_owner(table: str, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The uid in ``table`` (the text of /proc/net/tcp or tcp6) of the socket whose local
    end is ``peer`` and remote end is ``local``; None if there is no such row."""
    want_local, want_remote = _hex_address(*peer), _hex_address(*local)
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == want_local and fields[2] == want_remote:
            return int(fields[7])
    return None


def peer_uid(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """None where the platform does not say (not Linux) or the row is gone."""
    name = "tcp6" if ipaddress.ip_address(peer[0]).version == 6 else "tcp"
    try:
        table = Path("/proc/net", name).read_text()
    except OSError:
        return None
    return socket_owner(table, peer, local)
