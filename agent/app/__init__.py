"""The composition root: ``daemon`` (``eid-agent run``: builds the store, the order
service, the bridge, the desktop and the updater, and says which thread owns what),
``instance`` (one agent per person, and its pid file) and ``selftest`` (what a freshly
installed version must pass before it is switched to).

Only the command line imports it.
"""

from agent.app.daemon import PortTaken, RunConfig, SelfTestFailed, UpdateSettings, serve
from agent.app.instance import AlreadyRunning, pid_file, stop_running
from agent.app.orders import OrderSettings, running_orders
from agent.app.selftest import self_test

__all__ = [
    "AlreadyRunning",
    "OrderSettings",
    "PortTaken",
    "RunConfig",
    "SelfTestFailed",
    "UpdateSettings",
    "pid_file",
    "running_orders",
    "self_test",
    "serve",
    "stop_running",
]
