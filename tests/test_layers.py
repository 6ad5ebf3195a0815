"""The layers hold: the relying-party kit stands on the kernel alone, so a website's back
end that installs it gets neither the agent nor the agent's hardware and desktop
libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

AGENT_ONLY = ("agent", "smartcard", "gi", "pystray", "tufup", "tuf")


@pytest.mark.parametrize(
    "modules",
    [
        "rp",
        "rp.verify",
        "rp.revocation",
        "rp.nonces",
        "demo.site",
        "demo.cli",
        "demo.relaydoor",
        "rp.webmessages",
    ],
)
def test_the_rp_kit_loads_nothing_of_the_agent(modules: str) -> None:
    probe = (
        f"import sys, {modules}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {AGENT_ONLY!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", f"{modules} loads {result.stdout.strip()}"


def test_the_kernel_imports_nothing_above_it() -> None:
    probe = (
        "import sys, pkgutil, importlib, eidcore\n"
        "for m in pkgutil.walk_packages(eidcore.__path__, 'eidcore.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('agent', 'issuer', 'rp', 'installer')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
