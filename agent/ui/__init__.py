"""User interfaces behind one port: the console UI now; the desktop UI later."""

from agent.ui.port import PinAnswer, PinRequest, Request, UiPort

__all__ = ["PinAnswer", "PinRequest", "Request", "UiPort"]
