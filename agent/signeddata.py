"""The bytes a credential signs for an order (specified in docs/signed-data.md). Pure.

The verifier never rebuilds these bytes: it parses what was signed and compares origin,
nonce, type and time with its own values. So the only requirement on the encoding is that
it is unambiguous JSON; it is canonical anyway (sorted keys, no whitespace) so two agents
produce identical bytes for identical input.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

from agent.orders import Order

__all__ = ["SIGNED_DATA_VERSION", "b64url", "build_signed_data"]

SIGNED_DATA_VERSION = 1


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _digest(data: bytes) -> str:
    return b64url(hashlib.sha256(data).digest())


def build_signed_data(order: Order, now: dt.datetime, agent_version: str) -> bytes:
    request = order.request
    doc: dict[str, object] = {
        "v": SIGNED_DATA_VERSION,
        "type": request.kind.value,
        "origin": request.origin,
        "nonce": b64url(request.nonce),
        "time": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "orderRef": order.ref,
        "agent": f"eid-agent/{agent_version}",
    }
    if request.user_visible_data is not None:
        doc["userVisibleData"] = {
            "format": request.user_visible_format,
            "sha256": _digest(request.user_visible_data.encode("utf-8")),
        }
    if request.user_non_visible_data is not None:
        doc["userNonVisibleData"] = {"sha256": _digest(request.user_non_visible_data)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
