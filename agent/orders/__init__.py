"""The order core: identification and signing orders as a pure state machine
(``machine``) and the driver that runs one on the asyncio loop (``service``).

The machine's names are exported here because every layer above speaks of orders; the
driver is imported as ``agent.orders.service`` by the composition root and the bridge.
"""

from agent.orders.machine import (
    DEFAULT_TTL,
    REPLACE_AFTER,
    AlreadyInProgress,
    Completion,
    Event,
    Hint,
    IllegalTransition,
    Order,
    OrderBook,
    OrderError,
    OrderKind,
    OrderRequest,
    Phase,
    Status,
    UnknownOrder,
    advance,
)
from agent.orders.service import OrderService

__all__ = [
    "DEFAULT_TTL",
    "REPLACE_AFTER",
    "AlreadyInProgress",
    "Completion",
    "Event",
    "Hint",
    "IllegalTransition",
    "Order",
    "OrderBook",
    "OrderError",
    "OrderKind",
    "OrderRequest",
    "OrderService",
    "Phase",
    "Status",
    "UnknownOrder",
    "advance",
]
