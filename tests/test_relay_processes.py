"""``eid-relay serve`` as an organisation runs it: a real process over HTTPS, on SQLite, and
two processes on one PostgreSQL database (an order started at one is fetched, reported and
collected at the other; a token fetched twice is refused at both)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.credentials import CredentialStore
from issuer import CertificateAuthority
from tests.agent_process import BIN
from tests.conftest import ANNA, PASSWORD, MakeToken
from tests.issuer_kit import postgres_cluster
from tests.relay_kit import RETURN, completion_for, unlocked
from tests.relay_process_kit import CA, RelayProcess, write_config

pytestmark = pytest.mark.slow

IP = "198.51.100.7"


@pytest.fixture
def relays(tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path]) -> Iterator[Any]:
    started: list[RelayProcess] = []

    def start(db: str) -> RelayProcess:
        relay = RelayProcess(write_config(tmp_path / "relay", ca), db, tls)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        if relay.proc.poll() is None:
            said = relay.stop()
            assert "Traceback" not in said, said


def _whole_order(
    start_at: RelayProcess,
    agent_at: RelayProcess,
    collect_at: RelayProcess,
    store: CredentialStore,
    make_token: MakeToken,
) -> None:
    status, started = start_at.call("/rp/v6.0/auth", {"endUserIp": IP, "returnUrl": RETURN})
    assert status == 200, started
    token = {"autoStartToken": started["autoStartToken"]}
    status, order = agent_at.call("/agent/v1/order", token, party=None)
    assert status == 200, order
    for relay in (start_at, agent_at, collect_at):  # one token, one fetch, wherever
        assert relay.call("/agent/v1/order", token, party=None)[0] == 404
    ref = {"orderRef": started["orderRef"]}
    assert collect_at.call("/rp/v6.0/collect", ref)[1]["hintCode"] == "started"
    credential = unlocked(store, make_token(ANNA), PASSWORD)
    done = {
        **ref,
        "agentSecret": order["agentSecret"],
        "completionData": completion_for(order, credential),
    }
    assert start_at.call("/agent/v1/complete", done, party=None)[0] == 200
    collected = collect_at.call("/rp/v6.0/collect", ref)[1]
    assert collected["status"] == "complete", collected
    assert set(collected["completionData"]) >= {"user", "device", "signature"}


def test_a_relay_process_over_https_on_sqlite(
    relays: Any, tmp_path: Path, store: CredentialStore, make_token: MakeToken
) -> None:
    relay = relays(f"sqlite:///{tmp_path / 'relay.db'}")
    _whole_order(relay, relay, relay, store, make_token)
    assert relay.call("/rp/v6.0/auth", {"endUserIp": IP}, party=None)[0] == 401
    said = relay.stop()
    assert "Traceback" not in said


def test_two_relay_processes_on_one_postgresql(
    relays: Any, store: CredentialStore, make_token: MakeToken
) -> None:
    with postgres_cluster() as pg:
        db = pg.new_database()
        first, second = relays(db), relays(db)
        _whole_order(first, second, second, store, make_token)
        _whole_order(second, first, second, store, make_token)
        first.stop()
        second.stop()


def test_starts_for_one_person_at_once_on_postgresql_never_leave_two_pending() -> None:
    """BankID's alreadyInProgress across relay processes: three stores (three connection
    pools, as three processes have) start orders for the same person at the same
    instant, two threads each, again and again; never are two left pending (there is no
    row to lock before the first insert: a transaction-scoped advisory lock orders
    them)."""
    import datetime as dt
    import secrets
    import threading

    from eidcore.signeddata import OrderKind
    from relay import rules
    from relay.rules import Event, RelayOrder
    from relay.store import OrderStore

    def order(number: str, now: dt.datetime) -> RelayOrder:
        return RelayOrder(
            ref=secrets.token_hex(8),
            party="shop",
            kind=OrderKind.AUTH,
            nonce=secrets.token_bytes(32),
            token_hash=secrets.token_hex(32),
            created=now,
            end_user_ip=IP,
            personal_number=number,
        )

    def start(store: OrderStore, new: RelayOrder, barrier: threading.Barrier) -> None:
        now = new.created
        barrier.wait()
        store.add_alone(new, lambda o: rules.advance(o, Event.RP_CANCEL, now), now)

    with postgres_cluster() as pg:
        url = pg.new_database()
        stores = [OrderStore(url) for _ in range(3)]
        try:
            for round_ in range(30):
                number, now = f"19811218{round_:04d}", dt.datetime.now(dt.UTC)
                barrier = threading.Barrier(6)
                orders = [order(number, now) for _ in range(6)]
                threads = [
                    threading.Thread(target=start, args=(s, o, barrier))
                    for s, o in zip(stores * 2, orders, strict=True)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=30)
                kept = [stores[0].get(o.ref, now) for o in orders]
                pending = [o.ref for o in kept if o is not None and o.phase.pending]
                assert len(pending) <= 1, (round_, pending)
        finally:
            for store in stores:
                store.close()


def test_what_the_command_line_says_when_it_cannot_run(
    tmp_path: Path, ca: CertificateAuthority, tls: tuple[Path, Path]
) -> None:
    def run(*argv: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "eid-relay"), "--lang", lang, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    bad = tmp_path / "bad.toml"
    bad.write_text('origin = "ftp://x"\n')
    for lang, words in (("en", "cannot be used"), ("sv", "går inte att använda")):
        result = run("serve", "--config", str(bad), lang=lang)
        assert result.returncode == 1 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    config = write_config(tmp_path / "relay", ca)
    result = run("serve", "--config", str(config), "--tls-cert", str(tls[0]))
    assert result.returncode == 2 and "go together" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        tls_args = ("--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
        client_ca = ("--client-ca", str(config.parent / CA))
        result = run("serve", "--config", str(config), "--port", str(port), *tls_args, *client_ca)
        assert result.returncode == 1 and "cannot listen" in result.stderr, result.stderr
    # parties are known by their client certificates only: no --client-ca, no relay
    result = run("serve", "--config", str(config), *tls_args)
    assert result.returncode == 2 and "client certificates" in result.stderr, result.stderr
    assert run("party-token").returncode == 2  # bearer tokens are gone (ADR 0020)
