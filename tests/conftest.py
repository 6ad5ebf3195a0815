"""Shared fixtures. Time is fixed; keys and certificates are real.

Most tests use a light Argon2id setting (the minimum the format accepts) so the suite
stays fast; the real default parameters are exercised by the tests marked ``slow`` and
measured by ``./dev bench``. Same code path, other numbers.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from agent.credentials import CredentialFile, CredentialStore, KdfParams
from eidcore.personal_number import PersonalNumber
from issuer import CertificateAuthority, Person, make_file_credential
from tests.watchdog import Watchdog

if TYPE_CHECKING:
    from tests.bridge_kit import Bridge

# One fixed instant per run, near the real clock: the running bridge and agent use the real
# clock, so credentials made at NOW must be valid for them, on any day the suite runs.
pytest_plugins = [
    "tests.card_kit",  # pcscd and the card
    "tests.desktop_kit",  # the screen
    "tests.piv_kit",  # a PIV card through OpenSC
    "tests.softhsm_kit",  # a PKCS#11 token
    "tests.relay_process_kit",  # a relay process and its TLS certificate
    "tests.door_kit",  # the person and the relay their settings name
    "tests.oidc_kit",  # the OpenID Provider in front of a relay
    "tests.browser_kit",  # Chromium
    "tests.parallel",  # the groups of the parallel run
]

# Hypothesis's per-example deadline (200 ms) is wall-clock time: on a 2-core machine
# running three workers and their servers, one example of the strict-JSON property took
# 605 ms once and 0.12 ms on the replay (a CI run failed so). Slowness is measured by
# ./dev bench, not by a property's clock.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
FAST_KDF = KdfParams(memory_kib=KdfParams.MIN_MEMORY_KIB, iterations=1, lanes=1)
PASSWORD = "correct horse"
ANNA = Person(PersonalNumber.parse("198112189876"), "Anna", "Andersson")
BERTIL = Person(PersonalNumber.parse("194910112384"), "Bertil", "Berg")


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Test", NOW - dt.timedelta(days=400))


MakeToken = Callable[..., CredentialFile]


@pytest.fixture(scope="session")
def make_token(ca: CertificateAuthority) -> MakeToken:
    def make(
        person: Person = ANNA,
        password: str = PASSWORD,
        *,
        now: dt.datetime = NOW,
        days: int = 365,
    ) -> CredentialFile:
        return make_file_credential(ca, person, password, now, days=days, kdf=FAST_KDF)

    return make


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    return CredentialStore(tmp_path / "data", kdf=FAST_KDF)


@pytest.fixture
def token_file(tmp_path: Path, make_token: MakeToken) -> Path:
    from agent.credentials import fileformat

    path = tmp_path / "anna.eidtoken"
    path.write_bytes(fileformat.dumps(make_token()))
    os.chmod(path, 0o600)
    return path


@pytest.fixture
async def bridge(tmp_path: Path, make_token: MakeToken) -> AsyncIterator[Bridge]:
    """A running bridge over a store holding Anna's credential."""
    from tests.bridge_kit import running_bridge

    store = CredentialStore(tmp_path / "data", kdf=FAST_KDF)
    store.add(make_token(ANNA))
    async with running_bridge(tmp_path / "data", store=store) as b:
        yield b


_watchdog: list[Watchdog] = []


def pytest_configure(config: pytest.Config) -> None:
    # Not in pytest-xdist's workers: the tests that call into pcsc-lite and OpenSC, whose
    # hangs pytest-timeout cannot end, run in the serial part (tests/watchdog.py).
    if getattr(config, "workerinput", None) is None:
        _watchdog.append(Watchdog())


def pytest_unconfigure(config: pytest.Config) -> None:
    while _watchdog:
        _watchdog.pop().close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    for watchdog in _watchdog:
        watchdog.arm()
    try:
        yield
    finally:
        for watchdog in _watchdog:
            watchdog.disarm()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every file the run left behind — logs of the agents (run with debug logging) and
    the issuers, configs, databases, credential files — holds none of the secrets the
    tests typed. A hit fails the run."""
    from tests.secrets_kit import scan

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or getattr(session.config, "workerinput", None) is not None:
        return
    try:
        root = factory.getbasetemp()
    except (OSError, ValueError):
        return
    report = scan(root)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"secrets scan: {report.files} files, {report.bytes / 1e6:.1f} MB, "
        f"{report.secrets} secrets: {len(report.hits)} hits"
    )
    if reporter is not None:
        reporter.write_line(line)
        for hit in report.hits[:20]:
            reporter.write_line(f"  secret found in {hit}")
    if report.hits and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
