"""User interfaces behind one port: the console UI and the desktop UI."""

from agent.ui.port import (
    DialogBlocked,
    EnrolmentAnswer,
    PinAnswer,
    PinRequest,
    Request,
    UiPort,
)

__all__ = ["DialogBlocked", "EnrolmentAnswer", "PinAnswer", "PinRequest", "Request", "UiPort"]
