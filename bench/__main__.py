"""Run every benchmark; print a table; write bench/results.json."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from agent.personal_number import PersonalNumber, luhn_check_digit
from agent.tokens import KdfParams, KeyPurpose, TokenStore
from issuer import CertificateAuthority, Person, make_file_credential

RESULTS = Path(__file__).parent / "results.json"
PASSWORD = "benchmark password"


@dataclass
class Figure:
    name: str
    unit: str
    median: float
    baseline_name: str
    baseline_median: float
    target: str
    ok: bool

    @property
    def ratio(self) -> float:
        return self.median / self.baseline_median


def _median_time(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _per_op(fn: Callable[[], object], batch: int, batches: int) -> float:
    def run_batch() -> None:
        for _ in range(batch):
            fn()

    return _median_time(run_batch, batches) / batch


def bench_kdf(ca: CertificateAuthority, now: dt.datetime, runs: int) -> Figure:
    token = make_file_credential(ca, _person(0), PASSWORD, now)
    kdf = token.kdf
    ours = _median_time(lambda: token.open(PASSWORD), runs)
    bare = _median_time(
        lambda: Argon2id(
            salt=token.salt,
            length=32,
            iterations=kdf.iterations,
            lanes=kdf.lanes,
            memory_cost=kdf.memory_kib,
        ).derive(PASSWORD.encode()),
        runs,
    )
    ms = ours * 1000
    return Figure(
        name=f"unlock (Argon2id {kdf.memory_kib // 1024} MiB, t={kdf.iterations}, "
        f"p={kdf.lanes}) + AES-GCM + key checks",
        unit="ms",
        median=ms,
        baseline_name="bare Argon2id derive, same parameters",
        baseline_median=bare * 1000,
        target="150–400 ms",
        ok=150 <= ms <= 400,
    )


def bench_sign(ca: CertificateAuthority, now: dt.datetime, data_dir: Path) -> Figure:
    store = TokenStore(data_dir, kdf=_light_kdf())
    info = store.add(make_file_credential(ca, _person(1), PASSWORD, now, kdf=_light_kdf()))
    unlocked = store.unlock(info.id, PASSWORD)
    key = ec.generate_private_key(ec.SECP256R1())
    message = b'{"nonce":"' + b"x" * 64 + b'","origin":"https://bank.example","type":"sign"}'
    # Interleave the two so drift on a noisy machine hits both alike.
    ours_runs, bare_runs = [], []
    for _ in range(15):
        ours_runs.append(_per_op(lambda: unlocked.sign(KeyPurpose.SIGNATURE, message), 200, 1))
        bare_runs.append(_per_op(lambda: key.sign(message, ec.ECDSA(hashes.SHA256())), 200, 1))
    ours, bare = statistics.median(ours_runs) * 1e6, statistics.median(bare_runs) * 1e6
    return Figure(
        name="sign with a credential (ES256, raw r‖s)",
        unit="µs",
        median=ours,
        baseline_name="bare cryptography ECDSA P-256 sign",
        baseline_median=bare,
        target="≤ 1.2× baseline",
        ok=ours / bare <= 1.2,
    )


def bench_list(ca: CertificateAuthority, now: dt.datetime, data_dir: Path, runs: int) -> Figure:
    store = TokenStore(data_dir)
    for i in range(50):
        # the KDF setting does not matter to listing, which never runs the KDF
        store.add(make_file_credential(ca, _person(100 + i), PASSWORD, now, kdf=_light_kdf()))
    exe = str(Path(sys.executable).parent / "eid-agent")
    argv = [exe, "tokens", "list", "--data-dir", str(data_dir)]
    check = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert check.stdout.count("\n") == 51, check.stdout
    ours = _median_time(lambda: subprocess.run(argv, capture_output=True, check=True), runs)
    bare = _median_time(
        lambda: subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True),
        runs,
    )
    ms = ours * 1000
    return Figure(
        name="`eid-agent tokens list` with 50 credentials (wall)",
        unit="ms",
        median=ms,
        baseline_name="bare `python -c pass` (wall)",
        baseline_median=bare * 1000,
        target="< 300 ms",
        ok=ms < 300,
    )


def _light_kdf() -> KdfParams:
    return KdfParams(memory_kib=KdfParams.MIN_MEMORY_KIB, iterations=1, lanes=1)


def _person(i: int) -> Person:
    body = f"19800101{i:03d}"
    return Person(PersonalNumber.parse(body + str(luhn_check_digit(body[2:]))), "Bench", f"P{i}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="./dev bench")
    parser.add_argument("--runs", type=int, default=15, help="repetitions per figure")
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.create("Bench", now - dt.timedelta(days=1))
    with tempfile.TemporaryDirectory() as tmp:
        figures = [
            bench_kdf(ca, now, args.runs),
            bench_sign(ca, now, Path(tmp) / "sign"),
            bench_list(ca, now, Path(tmp) / "list", args.runs),
        ]
    name_width = max(len(f.name) for f in figures)
    print(f"{'figure':<{name_width}}  {'median':>10}  {'baseline':>10}  {'ratio':>6}  target")
    for f in figures:
        print(
            f"{f.name:<{name_width}}  {f.median:>8.1f}{f.unit:>2}  "
            f"{f.baseline_median:>8.1f}{f.unit:>2}  {f.ratio:>5.2f}×  "
            f"{f.target} {'ok' if f.ok else 'MISSED'}"
        )
        print(f"{'':<{name_width}}  baseline: {f.baseline_name}")
    RESULTS.write_text(
        json.dumps(
            {
                "when": now.isoformat(),
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS}")
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
