"""The bridge against requests generated from its own OpenAPI document (schemathesis):
no 5xx, every answer as documented (status, content type, body schema), invalid input
refused, and the agent still up. ``EID_FUZZ_EXAMPLES`` cases per operation (the suite
runs a few dozen; ./dev stress and the benchmark run more)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from agent.tokens import TokenStore
from tests.agent_process import AgentProcess
from tests.conftest import ANNA, FAST_KDF, MakeToken

pytestmark = pytest.mark.slow

OPENAPI = Path(__file__).parent.parent / "docs" / "openapi.json"
EXAMPLES = int(os.environ.get("EID_FUZZ_EXAMPLES", "40"))
SITE = "https://bank.example"

schema = schemathesis.openapi.from_path(OPENAPI)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, make_token: MakeToken
          ) -> Iterator[AgentProcess]:  # fmt: skip
    data = tmp_path_factory.mktemp("fuzz") / "data"
    TokenStore(data, kdf=FAST_KDF).add(make_token(ANNA))
    with AgentProcess(data, "--no-cards", "--order-ttl", "2") as process:
        yield process.ready()
        assert process.proc.poll() is None, "the agent ended under fuzzing"


# A request the schema allows may still be refused by design: one order at a time (409),
# per-site rate limits (429), an order that ended (404). So "valid data is accepted" is
# not a property of this API; every other default check applies.
_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                     suppress_health_check=list(HealthCheck))  # fmt: skip


@schema.parametrize()
@_SETTINGS
def test_generated_requests(case: schemathesis.Case[Any], agent: AgentProcess) -> None:
    """Headers as generated too: the Host, Origin and X-Eid-Agent gates are fuzzed."""
    case.call_and_validate(base_url=f"http://127.0.0.1:{agent.port}",
                           excluded_checks=[positive_data_acceptance])  # fmt: skip


@schema.parametrize()
@_SETTINGS
def test_generated_requests_from_an_allowed_site(case: schemathesis.Case[Any],
                                                 agent: AgentProcess) -> None:  # fmt: skip
    """With the gates passed, the bodies reach validation and the order machine."""
    case.call_and_validate(base_url=f"http://127.0.0.1:{agent.port}",
                           headers={"Origin": SITE, "X-Eid-Agent": "1"},
                           excluded_checks=[positive_data_acceptance])  # fmt: skip
