"""The bridge against requests generated from its own OpenAPI document (schemathesis):
no 5xx, every answer as documented (status, content type, body schema), invalid input
refused, and the agent still up. ``EID_FUZZ_EXAMPLES`` cases per operation (the suite
runs a few dozen; ./dev stress and the benchmark run more); with ``EID_FUZZ_REPORT`` set,
the statuses answered are written there for the benchmark report."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
import queue
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from agent.credentials import CredentialStore
from tests.agent_process import AgentProcess
from tests.bridge_kit import running_bridge
from tests.conftest import ANNA, FAST_KDF, MakeToken

pytestmark = pytest.mark.slow

OPENAPI = Path(__file__).parent.parent / "docs" / "openapi.json"
EXAMPLES = int(os.environ.get("EID_FUZZ_EXAMPLES", "40"))
SITE = "https://bank.example"

schema = schemathesis.openapi.from_path(OPENAPI)
ANSWERED: Counter[int] = Counter()  # status -> how many generated requests got it


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, make_token: MakeToken
) -> Iterator[AgentProcess]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    CredentialStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    with AgentProcess(data, "--no-cards", "--order-ttl", "2") as process:
        yield process.ready()
        alive = process.proc.poll() is None
        if os.environ.get("EID_FUZZ_REPORT"):
            Path(os.environ["EID_FUZZ_REPORT"]).write_text(
                json.dumps(
                    {"answered": {str(k): v for k, v in sorted(ANSWERED.items())}, "alive": alive}
                )
            )
        assert alive, "the agent ended under fuzzing"


# A request the schema allows may still be refused by design: one order at a time (409),
# per-site rate limits (429), an order that ended (404). So "valid data is accepted" is
# not a property of this API; every other default check applies.
_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def unthrottled(tmp_path_factory: pytest.TempPathFactory, make_token: MakeToken) -> Iterator[int]:
    """The bridge app in this process (its own thread and loop) on a clock that jumps a
    minute at every reading: the rate buckets are always full, so generated bodies reach
    validation and the order machine instead of a 429. Orders last a second, so starts
    are not all refused as one already in progress."""
    data = tmp_path_factory.mktemp("fuzz-unthrottled") / "data"
    CredentialStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    clock = itertools.count(step=60.0)
    ready: queue.Queue[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = queue.Queue()

    async def serve() -> None:
        stop = asyncio.Event()
        async with running_bridge(
            data, ttl=dt.timedelta(seconds=1), monotonic=lambda: float(next(clock))
        ) as bridge:
            ready.put((asyncio.get_running_loop(), stop, bridge.port))
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    loop, stop, port = ready.get(timeout=30)
    yield port
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    assert not thread.is_alive()


def _call(case: schemathesis.Case[Any], port: int, headers: dict[str, str] | None = None) -> int:
    """Send the case, check the answer against the schema, count it; its status."""
    answer = case.call_and_validate(
        base_url=f"http://127.0.0.1:{port}",
        headers=headers,
        excluded_checks=[positive_data_acceptance],
    )
    ANSWERED[answer.status_code] += 1
    return answer.status_code


@schema.parametrize()
@_SETTINGS
def test_generated_requests(case: schemathesis.Case[Any], agent: AgentProcess) -> None:
    """Headers as generated too: the Host, Origin and X-Eid-Agent gates are fuzzed."""
    _call(case, agent.port)


@schema.parametrize()
@_SETTINGS
def test_generated_requests_from_an_allowed_site(
    case: schemathesis.Case[Any], agent: AgentProcess
) -> None:
    """With the gates passed, the bodies reach validation and the order machine."""
    _call(case, agent.port, {"Origin": SITE, "X-Eid-Agent": "1"})


@schema.parametrize()
@_SETTINGS
def test_generated_bodies_past_the_rate_limits(
    case: schemathesis.Case[Any], unthrottled: int
) -> None:
    assert _call(case, unthrottled, {"Origin": SITE, "X-Eid-Agent": "1"}) != 429
