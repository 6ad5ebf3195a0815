"""Benchmarks of BankID on file: unlock, sign, list."""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from agent.credentials import CredentialStore, KdfParams, KeyPurpose
from bench.common import Figure, median_time, per_op
from eidcore.personal_number import PersonalNumber, luhn_check_digit
from issuer import CertificateAuthority, Person, make_file_credential

RESULTS = Path(__file__).parent / "results.json"
PASSWORD = "benchmark password"


def bench_kdf(ca: CertificateAuthority, now: dt.datetime, runs: int) -> Figure:
    token = make_file_credential(ca, person(0), PASSWORD, now)
    kdf = token.kdf
    ours = median_time(lambda: token.open(PASSWORD), runs)
    bare = median_time(
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
    store = CredentialStore(data_dir, kdf=light_kdf())
    info = store.add(make_file_credential(ca, person(1), PASSWORD, now, kdf=light_kdf()))
    unlocked = store.unlock(info.id, PASSWORD)
    key = ec.generate_private_key(ec.SECP256R1())
    message = b'{"nonce":"' + b"x" * 64 + b'","origin":"https://bank.example","type":"sign"}'
    # Interleave the two so drift on a noisy machine hits both alike.
    ours_runs, bare_runs = [], []
    for _ in range(15):
        ours_runs.append(per_op(lambda: unlocked.sign(KeyPurpose.SIGNATURE, message), 200, 1))
        bare_runs.append(per_op(lambda: key.sign(message, ec.ECDSA(hashes.SHA256())), 200, 1))
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
    store = CredentialStore(data_dir)
    for i in range(50):
        # the KDF setting does not matter to listing, which never runs the KDF
        store.add(make_file_credential(ca, person(100 + i), PASSWORD, now, kdf=light_kdf()))
    exe = str(Path(sys.executable).parent / "eid-agent")
    argv = [exe, "credentials", "list", "--data-dir", str(data_dir)]
    check = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert check.stdout.count("\n") == 51, check.stdout
    ours = median_time(lambda: subprocess.run(argv, capture_output=True, check=True), runs)
    bare = median_time(
        lambda: subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True),
        runs,
    )
    ms = ours * 1000
    return Figure(
        name="`eid-agent credentials list` with 50 credentials (wall)",
        unit="ms",
        median=ms,
        baseline_name="bare `python -c pass` (wall)",
        baseline_median=bare * 1000,
        target="< 300 ms",
        ok=ms < 300,
    )


def light_kdf() -> KdfParams:
    return KdfParams(memory_kib=KdfParams.MIN_MEMORY_KIB, iterations=1, lanes=1)


def person(i: int) -> Person:
    body = f"19800101{i:03d}"
    return Person(PersonalNumber.parse(body + str(luhn_check_digit(body[2:]))), "Bench", f"P{i}")
