"""The order relay against requests generated from its own OpenAPI document
(schemathesis): no 5xx, every answer as documented, invalid input refused. Once as anyone
on the network (no bearer token: the relying-party API answers 401), once as a registered
party (bodies reach validation, the order machine and the database). ``EID_FUZZ_EXAMPLES``
cases per operation and mode; the suite runs 60 (1200 in all), ./dev stress 250."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.specs.openapi.checks import ignored_auth, missing_required_header

from eidcore.ratelimit import RateLimiter
from issuer import CertificateAuthority
from relay import openapi
from tests.relay_kit import running_relay

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("EID_FUZZ_EXAMPLES", "60"))  # 10 operations, 2 modes: 1200
schema = schemathesis.openapi.from_path(openapi.OUTPUT)
ANSWERED: Counter[int] = Counter()
_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def test_the_openapi_document_is_current() -> None:
    assert openapi.OUTPUT.read_text("utf-8") == openapi.rendered(), (
        "run: python -m relay.openapi --write"
    )


@dataclass(frozen=True)
class Served:
    port: int
    server_cert: Path  # what a client trusts
    shop: tuple[Path, Path]  # the registered party's client certificate and key


@pytest.fixture(scope="module")
def relay_port(
    tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority
) -> Iterator[Served]:
    """A relay on loopback over TLS in its own thread and loop, SQLite in a temporary
    folder."""
    tmp = tmp_path_factory.mktemp("fuzz-relay")
    ready: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Event, Served]] = queue.Queue()

    async def serve() -> None:
        stop = asyncio.Event()
        # the agent API's budget per address is tried in test_relay.py; here every
        # generated request must reach validation, not the budget's 429
        unlimited = RateLimiter(1e9, 1e9, 1)
        async with running_relay(tmp, ca, agent_limiter=unlimited) as relay:
            folder = relay.tls.folder
            served = Served(
                relay.client.port or 0,
                folder / "dev-tls.crt",
                (folder / "certs" / "shop.pem", folder / "certs" / "shop.key"),
            )
            ready.put((asyncio.get_running_loop(), stop, served))
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    loop, stop, served = ready.get(timeout=30)
    yield served
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert 500 not in ANSWERED and 503 not in ANSWERED, ANSWERED


def _call(case: schemathesis.Case[Any], served: Served, party: bool = False) -> int:
    """``party``: with the registered party's client certificate (else with none)."""
    excluded = [positive_data_acceptance]
    if party:  # known by its certificate: the schema's own auth checks do not apply
        excluded += [missing_required_header, ignored_auth]
    answer = case.call_and_validate(
        base_url=f"https://127.0.0.1:{served.port}",
        excluded_checks=excluded,
        verify=str(served.server_cert),
        cert=tuple(map(str, served.shop)) if party else None,
    )
    ANSWERED[answer.status_code] += 1
    return answer.status_code


@schema.parametrize()
@_SETTINGS
def test_generated_requests(case: schemathesis.Case[Any], relay_port: Served) -> None:
    _call(case, relay_port)


@schema.parametrize()
@_SETTINGS
def test_generated_requests_from_a_registered_party(
    case: schemathesis.Case[Any], relay_port: Served
) -> None:
    status = _call(case, relay_port, party=True)
    assert status != 401 or not case.path.startswith("/rp/")


def test_the_fuzzing_reached_past_the_gates(relay_port: Served) -> None:
    """Runs after the generated cases: some were answered 200 and some refused as invalid,
    so the generator did not only knock at the door."""
    if not ANSWERED:
        pytest.skip("run with the generated tests")
    assert ANSWERED[200] > 0 and ANSWERED[400] > 0, ANSWERED
