"""OpenSC, set up for unblocking PIV cards through PKCS#11.

PIV has no security officer: OpenSC cannot log one in, so the standard unblock (an SO
login with the PUK, then C_InitPIN) fails. OpenSC unblocks instead on C_SetPIN(PUK, new
PIN) in a session without a login when its ``user_pin_unblock_style`` says so — by
default it sends that as a PIN change, with the PUK as the old PIN, which spends a PIN try.
The agent therefore loads OpenSC with a configuration of its own (``OPENSC_CONF``, for its
process only) unless the person or organisation has set one; Debian's own file holds
nothing but an empty ``app default``. Always logging in before a PIN change keeps changes
what they are under this setting.
"""

from __future__ import annotations

import os
from pathlib import Path

from eidcore.atomicfile import atomic_write_bytes

CONF_NAME = "opensc.conf"
CONF = b"""# eid-agent's own, for its process only (OPENSC_CONF): agent/credentials/pkcs11/opensc.py
app default {
    framework pkcs15 {
    }
}
app opensc-pkcs11 {
    pkcs11 {
        user_pin_unblock_style = set_pin_in_unlogged_session;
    }
}
"""
_OURS = "EID_AGENT_OPENSC_CONF"  # marks OPENSC_CONF as the agent's own


def prepare(directory: Path) -> Path | None:
    """Write the configuration into ``directory`` and point OpenSC at it, unless
    OPENSC_CONF names another file already. Before any module loads (children inherit).
    Returns the file used, or None when the person's own stays."""
    current = os.environ.get("OPENSC_CONF")
    if current and os.environ.get(_OURS) != current:
        return None
    path = directory / CONF_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_bytes(path, CONF, mode=0o600)
    except OSError:
        return None
    os.environ["OPENSC_CONF"] = os.environ[_OURS] = str(path)
    return path


def opensc_unblocks() -> bool:
    conf = os.environ.get("OPENSC_CONF")
    return bool(conf) and os.environ.get(_OURS) == conf
