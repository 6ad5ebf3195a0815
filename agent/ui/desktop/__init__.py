"""The desktop UI: GTK dialogs in a helper process of their own (ADR 0010)."""

from agent.ui.desktop.client import DesktopUi, HelperUnavailable

__all__ = ["DesktopUi", "HelperUnavailable"]
