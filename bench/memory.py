"""Where the agent's idle memory goes, by import (#31): each row is a fresh interpreter
that imports one more part of what the running agent loads, its RSS and PSS read from
/proc once the imports are done, against a bare ``python -c pass`` in the same run. The
whole agent's idle figure (agent + dialogs + tray) is the desktop group's; these rows say
which libraries make it up, so a lever is chosen by measurement. The rows after the
daemon's are loaded only by what needs them (ADR 0024): an idle agent is the daemon's
row."""

from __future__ import annotations

import statistics
import subprocess
import sys

from bench.common import Figure

__all__ = ["run"]

# (what, the statement) — cumulative, in the order the agent meets them
_STEPS: tuple[tuple[str, str], ...] = (
    ("the kernel and its catalogue", "import eidcore.messages; eidcore.messages.catalogue()"),
    ("+ aiohttp (the bridge, the relay door)", "import aiohttp.web"),
    ("+ cryptography (credentials)", "import agent.credentials"),
    ("+ the order service (writes XML signatures; no lxml)", "import agent.orders"),
    ("+ python-pkcs11 (tokens)", "import agent.credentials.pkcs11.lib"),
    ("+ pyscard (cards)", "import agent.credentials.card.pcsc"),
    ("+ jeepney (the tray on the session bus)", "import agent.ui.desktop.sni"),
    ("+ the daemon (everything `eid-agent run` imports)", "import agent.app.daemon"),
    # loaded later, by what needs them, and not by an idle agent:
    ("+ lxml (reading XML signatures: the relay, the rp kit)", "import lxml.etree"),
    ("+ tufup and tuf (an update check)", "import agent.updater.remote"),
    (
        "+ GTK (the dialog helper, while a dialog is needed)",
        "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk",
    ),
)

_READ = r"""
import os, sys
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
rss = int(status["VmRSS"].split()[0])
pss = 0
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("Pss:"):
        pss = int(line.split()[1])
print(rss, pss, len(sys.modules))
"""


def _measure(statements: list[str]) -> tuple[float, float, int]:
    code = "\n".join([*statements, _READ])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    rss, pss, modules = done.stdout.split()
    return int(rss) / 1024, int(pss) / 1024, int(modules)


def _median(statements: list[str], runs: int) -> tuple[float, float, int]:
    samples = [_measure(statements) for _ in range(runs)]
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
        samples[0][2],
    )


def run(runs: int = 5) -> list[Figure]:
    bare_rss, bare_pss, bare_modules = _median(["pass"], runs)
    figures = []
    done: list[str] = []
    before = bare_rss
    for what, statement in _STEPS:
        done.append(statement)
        rss, pss, modules = _median(done, runs)
        figures.append(
            Figure(
                f"memory: {what}",
                "MiB",
                rss,
                "a bare interpreter (python -c pass)",
                bare_rss,
                "— (reported)",
                True,
                f"RSS, imports cumulative; +{rss - before:.1f} MiB for this step; PSS {pss:.1f} "
                f"MiB (bare {bare_pss:.1f}); {modules} modules (bare {bare_modules})",
            )
        )
        before = rss
    return figures
