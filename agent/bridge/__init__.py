"""The localhost HTTP bridge websites call (identification and signing)."""

from agent.bridge.app import API_VERSION, BridgeConfig, build_app
from agent.bridge.errors import BridgeError, ErrorCode
from agent.bridge.listener import KEEPALIVE_SECONDS, GuardedSite, bridge_gate, raise_file_limit
from agent.bridge.security import DEFAULT_PORT, HOSTS, OriginPolicy

__all__ = [
    "API_VERSION",
    "DEFAULT_PORT",
    "HOSTS",
    "KEEPALIVE_SECONDS",
    "BridgeConfig",
    "BridgeError",
    "ErrorCode",
    "GuardedSite",
    "OriginPolicy",
    "bridge_gate",
    "build_app",
    "raise_file_limit",
]
