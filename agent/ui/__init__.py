"""User interfaces behind one port: the console UI now; the desktop UI later."""

from agent.ui.port import Request, UiPort

__all__ = ["Request", "UiPort"]
