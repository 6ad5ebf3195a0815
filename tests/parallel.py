"""How the suite runs in parallel (pytest-xdist; ADR 0018). Tests that share something
only one may use at a time run in one worker, in groups named here; pytest-xdist's own
``xdist_group`` marks are not used because its ``loadgroup`` mode rewrites test ids in a
way this pytest no longer honours.

- **pcscd**: every test that uses the machine's pcscd (one virtual reader; some restart
  pcscd). ``./dev test`` runs them on their own, after the parallel run
  (``--part serial``), which leaves them out (``--part parallel``) and points its workers at
  no PC/SC service at all (``PCSCLITE_CSOCK_NAME``), so nothing else a test starts talks
  to pcscd while a card test runs. (Run beside the other tests in a worker of its own,
  a PIV test once waited forever in OpenSC's C_Finalize, two pcscd threads waiting on a
  lock: ADR 0018.) Without the option, in a parallel run they go to the first worker.
- **installed**: the files that install the agent system-wide on its documented port.
- every other file is a group of its own, so a module's fixtures are made once.
- schemathesis names every operation's test alike; xdist tells tests apart by id, so
  each gets its operation in its id (``…::test_generated_requests[POST /v1/auth]``) and
  they run in parallel like the rest. Any other test whose id is not unique runs in the
  serial part.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

__all__ = ["PCSCD", "GroupScheduling", "group_of"]

PCSCD = "pcscd"
PCSCD_WORKER = "gw0"
_SHARED = {
    "tests/test_card.py": PCSCD,
    "tests/test_card_orders.py": PCSCD,
    "tests/test_pins.py": PCSCD,
    "tests/test_piv.py": PCSCD,
    "tests/test_piv_browser.py": PCSCD,
    "tests/test_browser.py::test_login_with_a_card": PCSCD,
    "tests/test_fault_injection.py::test_kill_during_pin_change": PCSCD,
    "tests/test_installer.py": "installed",
    "tests/test_deb.py": "installed",
}
NO_PCSC = "/nonexistent/eid-agent-tests/pcscd.comm"
# The groups that take a minute or more (measured with --durations, 1,239 s of tests in
# all): they start first, so that no worker is left with one of them at the end while the
# others idle. xdist would order groups by their number of tests, which is a poor guess
# here (test_enrolment.py's 30 tests take 140 s, test_exports.py's 30 take none).
LONGEST_FIRST = (
    "tests/test_enrolment.py",
    "tests/test_update_attacks.py",
    "installed",
    "tests/test_release.py",
    "tests/test_relay_door.py",
    "tests/test_relay_browser.py",
    "tests/test_desktop.py",
    "tests/test_cli_e2e.py",
    "tests/test_update.py",
    "tests/test_daemon.py",
    "tests/test_browser.py",
)


def group_of(nodeid: str) -> str:
    """The group of a test id: a shared one, else its file."""
    path, _, rest = nodeid.partition("::")
    name = rest.split("[", 1)[0]
    return _SHARED.get(f"{path}::{name}") or _SHARED.get(path) or path


def _serial(items: list[pytest.Item]) -> set[str]:
    """The test ids of the serial part: the pcscd group, and tests whose ids are not
    unique: xdist keeps tests by id, so in a parallel run all but one of them would
    silently not run (28 schemathesis tests did not, before their ids named their
    operation)."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item.nodeid] = seen.get(item.nodeid, 0) + 1
    return {i for i, n in seen.items() if n > 1 or group_of(i) == PCSCD}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--part``: which tests run. A test that uses pcscd and is not in its group would
    run beside the others: the run stops."""
    strays = [
        item.nodeid
        for item in items
        if "pcscd" in getattr(item, "fixturenames", ()) and group_of(item.nodeid) != PCSCD
    ]
    if strays:
        raise pytest.UsageError(f"tests use pcscd outside its group (tests/parallel.py): {strays}")
    for item in items:
        operation = getattr(item, "operation_label", None)  # schemathesis's items
        if isinstance(operation, str) and "[" not in item.nodeid and item.parent is not None:
            # its name has the operation already; its id does not (pytest 9's node id)
            name = item.name if item.name.endswith("]") else f"{item.name}[{operation}]"
            item._id = item.parent.id.child(name)
    part = config.getoption("--part")
    if part != "all":
        serial = _serial(items)
        keep = [item for item in items if (item.nodeid in serial) == (part == "serial")]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
    """Whole groups to workers, the longest first; the pcscd group to ``gw0``."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)

    def _assign_work_unit(self, node: Any) -> None:
        longest = next((s for s in LONGEST_FIRST if s in self.workqueue), None)
        if longest is not None:
            self.workqueue.move_to_end(longest, last=False)
        if PCSCD in self.workqueue:
            mine = node.gateway.id == PCSCD_WORKER
            scope = next((s for s in self.workqueue if (s == PCSCD) == mine), None)
            if scope is not None:
                self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--part",
        choices=["all", "parallel", "serial"],
        default="all",
        help="all tests (default); those that may run in parallel; or the others",
    )


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> GroupScheduling:
    return GroupScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", {}).get("workerid")
    skipping = config.getoption("--part") == "parallel"
    if skipping or (worker is not None and worker != PCSCD_WORKER):
        os.environ["PCSCLITE_CSOCK_NAME"] = NO_PCSC  # before anything asks for PC/SC
