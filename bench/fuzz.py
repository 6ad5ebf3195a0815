"""The bridge fuzzed in full: schemathesis generates requests from docs/openapi.json for
every operation — with generated headers, from an allowed site, and from an allowed site
past the rate limits (tests/test_fuzz_bridge.py, run with more cases). The figure is the
count answered as documented against the count asked for (at least 1000); any 5xx,
schema mismatch or agent exit fails it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Figure

ROOT = Path(__file__).parent.parent
OPERATIONS = 5  # paths x methods in docs/openapi.json
MODES = 3  # generated headers; an allowed site's; an allowed site's past the rate limits


def run(tmp: Path, cases: int = 1000) -> list[Figure]:
    report = tmp / "fuzz.json"
    per_operation = -(-cases // (OPERATIONS * MODES))
    began = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_fuzz_bridge.py"),
        ],
        env={**os.environ, "EID_FUZZ_EXAMPLES": str(per_operation), "EID_FUZZ_REPORT": str(report)},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    took = time.monotonic() - began
    found = json.loads(report.read_text()) if report.exists() else {"answered": {}}
    answered = {int(k): v for k, v in found["answered"].items()}
    total = sum(answered.values())
    ok = result.returncode == 0 and found.get("alive") is True and total >= cases
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "no output"
    return [
        Figure(
            "fuzz: generated bridge requests answered as documented",
            "",
            float(total),
            "asked for",
            float(cases),
            f">= {cases}, no 5xx, agent up",
            ok and not any(s >= 500 for s in answered),
            f"statuses {answered}; {total / took:.0f}/s; pytest: {summary}",
        ),
    ]
