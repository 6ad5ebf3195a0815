"""User interfaces behind two ports (``port``): ``UiPort``, what an order asks, and
``DesktopPort``, what the tray, My BankIDs and Settings need besides. Implemented by the
console (``console``) and the GTK dialogs (``desktop``); ``view`` and ``settings`` are the
pure rules of what a dialog and the Settings window show."""

from agent.ui.console import ConsoleUi
from agent.ui.port import (
    DesktopPort,
    DialogBlocked,
    EnrolmentAnswer,
    PinAnswer,
    PinRequest,
    Presentation,
    Request,
    UiPort,
)
from agent.ui.settings import SettingsInvalid, form_for, settings_from
from agent.ui.view import CALL_TERMS

__all__ = [
    "CALL_TERMS",
    "ConsoleUi",
    "DesktopPort",
    "DialogBlocked",
    "EnrolmentAnswer",
    "PinAnswer",
    "PinRequest",
    "Presentation",
    "Request",
    "SettingsInvalid",
    "UiPort",
    "form_for",
    "settings_from",
]
