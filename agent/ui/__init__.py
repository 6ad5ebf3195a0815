"""User interfaces behind one port: the console UI now; the desktop UI later."""

from agent.ui.port import EnrolmentAnswer, PinAnswer, PinRequest, Request, UiPort

__all__ = ["EnrolmentAnswer", "PinAnswer", "PinRequest", "Request", "UiPort"]
