"""The localhost HTTP bridge websites call (identification and signing)."""

from agent.bridge.app import API_VERSION, BridgeConfig, build_app
from agent.bridge.errors import BridgeError, ErrorCode
from agent.bridge.security import OriginPolicy

__all__ = ["API_VERSION", "BridgeConfig", "BridgeError", "ErrorCode", "OriginPolicy", "build_app"]
