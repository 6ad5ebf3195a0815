"""The ``uhi`` an agent gives each party: stable for one installation and party, different
for another party or relay, and its key kept owner-only, drawn once, redrawn if damaged."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.autostart.device import KEY_BYTES, installation_key, uhi

RELAY = "https://relay.bank.example"


def test_one_installation_gives_each_party_its_own_stable_uhi(tmp_path: Path) -> None:
    key = installation_key(tmp_path, os.urandom)
    assert installation_key(tmp_path, os.urandom) == key  # drawn once
    path = tmp_path / "installation.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == KEY_BYTES
    shop = uhi(key, RELAY, "shop")
    assert shop == uhi(key, RELAY, "shop") and len(shop) == 28
    assert shop != uhi(key, RELAY, "other")
    assert shop != uhi(key, "https://other-relay.example", "shop")
    assert shop != uhi(installation_key(tmp_path / "another", os.urandom), RELAY, "shop")


def test_a_damaged_key_is_drawn_again(tmp_path: Path) -> None:
    (tmp_path / "installation.key").write_bytes(b"short")
    key = installation_key(tmp_path, lambda n: b"\x01" * n)
    assert key == b"\x01" * KEY_BYTES
    assert (tmp_path / "installation.key").read_bytes() == key
