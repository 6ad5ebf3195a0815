"""Run every benchmark; print a table; write bench/results.json and the report in
docs/performance.md (every figure with the baseline measured in the same run)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench import (
    bridge,
    cards,
    desktop,
    floods,
    fuzz,
    installer,
    issuer,
    memory,
    oidc,
    pkcs11,
    relay,
    tokens,
    updates,
    xmlsig,
)
from bench.common import Figure
from issuer import CertificateAuthority
from tests.card_kit import hold_vpcd_ports

RESULTS = Path(__file__).parent / "results.json"
REPORT = Path(__file__).parent.parent / "docs" / "performance.md"


def _num(value: float) -> str:
    # three decimals for sub-millisecond figures, so a per-APDU 0.153 is not shown as 0.2
    return f"{value:>8.3f}" if abs(value) < 1 else f"{value:>8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="./dev bench")
    parser.add_argument("--runs", type=int, default=15, help="repetitions per timed figure")
    parser.add_argument("--rounds", type=int, default=500, help="orders for bridge overhead")
    parser.add_argument("--orders", type=int, default=1000, help="orders for the memory figure")
    parser.add_argument("--enrolments", type=int, default=200, help="enrolments per database")
    parser.add_argument(
        "--flood-seconds", type=float, default=10.0, help="how long each flood lasts"
    )
    parser.add_argument(
        "--fuzz-cases", type=int, default=1000, help="generated bridge requests (at least)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="GROUP",
        choices=[
            "tokens",
            "bridge",
            "cards",
            "updates",
            "issuer",
            "desktop",
            "installer",
            "floods",
            "fuzz",
            "relay",
            "oidc",
            "pkcs11",
            "xmlsig",
            "memory",
        ],  # below
        help="run only this group (repeatable); results.json is then not written",
    )
    args = parser.parse_args()
    groups = [
        "tokens",
        "bridge",
        "cards",
        "updates",
        "issuer",
        "desktop",
        "installer",
        "floods",
        "fuzz",
        "relay",
        "oidc",
        "pkcs11",
        "xmlsig",
        "memory",
    ]
    wanted = set(args.only or groups)
    if wanted & {"cards", "pkcs11"}:
        # vpcd's fixed ports lie in the ephemeral range: a benchmark's server on port 0
        # given one left the next pcscd without its reader (the PIV figure failed so)
        hold_vpcd_ports()
    logging.getLogger("tufup").setLevel(logging.ERROR)  # it narrates at WARNING
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.create("Bench", now - dt.timedelta(days=1))
    with tempfile.TemporaryDirectory() as tmp:
        figures: list[Figure] = []
        if "tokens" in wanted:
            figures += [
                tokens.bench_kdf(ca, now, args.runs),
                tokens.bench_sign(ca, now, Path(tmp) / "sign"),
                tokens.bench_list(ca, now, Path(tmp) / "list", args.runs),
            ]
        if "bridge" in wanted:
            figures += bridge.run(ca, now, Path(tmp), rounds=args.rounds, orders=args.orders)
        if "cards" in wanted:
            figures += cards.run(ca, Path(tmp), runs=args.runs)
        if "updates" in wanted:
            figures += updates.run(Path(tmp), runs=args.runs)
        if "issuer" in wanted:
            figures += issuer.run(Path(tmp), enrolments=args.enrolments)
        if "desktop" in wanted:
            figures += desktop.run(ca, now, Path(tmp), runs=args.runs)
        if "installer" in wanted:
            figures += installer.run(Path(tmp), runs=min(args.runs, 5))
        if "floods" in wanted:
            figures += floods.run(Path(tmp), seconds=args.flood_seconds)
        if "fuzz" in wanted:
            figures += fuzz.run(Path(tmp), cases=args.fuzz_cases)
        if "relay" in wanted:
            figures += relay.run(ca, now, Path(tmp))
        if "oidc" in wanted:
            figures += oidc.run(ca, now, Path(tmp))
        if "pkcs11" in wanted:
            figures += pkcs11.run(ca, Path(tmp), runs=args.runs)
        if "xmlsig" in wanted:
            figures += xmlsig.run(ca, now, runs=args.runs)
        if "memory" in wanted:
            figures += memory.run()
    width = max(len(f.name) for f in figures)
    print(f"{'figure':<{width}}  {'median':>11}  {'baseline':>11}  {'ratio':>7}  target")
    for f in figures:
        print(
            f"{f.name:<{width}}  {_num(f.median)} {f.unit:<3}{_num(f.baseline_median)} "
            f"{f.unit:<3} {f.ratio:>6.2f}×  {f.target} {'ok' if f.ok else 'MISSED'}"
        )
        print(f"{'':<{width}}  baseline: {f.baseline_name}" + (f"; {f.note}" if f.note else ""))
    if args.only:
        return 0 if all(f.ok for f in figures) else 1
    machine = _machine()
    RESULTS.write_text(
        json.dumps(
            {
                "when": now.isoformat(),
                "machine": machine,
                "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
            },
            indent=2,
        )
        + "\n"
    )
    REPORT.write_text(_report(figures, machine, now, args.runs), encoding="utf-8")
    print(f"\nwritten to {RESULTS} and {REPORT}")
    return 0 if all(f.ok for f in figures) else 1


def _machine() -> dict[str, object]:
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    except OSError:
        pass
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _lines("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": model,
        "memoryMiB": memory,
        "platform": platform.platform(),
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _report(figures: list[Figure], machine: dict[str, object], now: dt.datetime, runs: int) -> str:
    """The Markdown report: written by ./dev bench, not by hand."""
    rows = [
        "# Performance",
        "",
        f"Written by `./dev bench` on {now:%Y-%m-%d %H:%M} UTC — {machine['cpus']} × "
        f"{machine['cpu']}, {machine['memoryMiB']} MiB, Python {machine['python']}, "
        f"{machine['platform']}. Each figure is a median (of {runs} runs where it is "
        "timed) with its baseline measured in the same run; how each is measured and why "
        "a target is missed: [benchmarks.md](benchmarks.md). Raw: `bench/results.json`.",
        "",
        "| figure | median | baseline | ratio | target | |",
        "| --- | ---: | --- | ---: | --- | --- |",
    ]
    for f in figures:
        ratio = "—" if f.ratio != f.ratio else f"{f.ratio:.2f}×"  # NaN: no baseline value
        rows.append(
            f"| {f.name} | {_num(f.median).strip()} {f.unit} | "
            f"{_num(f.baseline_median).strip()} {f.unit} ({f.baseline_name}) | {ratio} | "
            f"{f.target} | {'ok' if f.ok else '**missed**'} |"
        )
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join([*rows, "", "Notes:", *notes, ""])


if __name__ == "__main__":
    raise SystemExit(main())
