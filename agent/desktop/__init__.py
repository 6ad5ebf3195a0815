"""The desktop's controllers: the tray menu (``tray``), My BankIDs (``mybankids``), PIN
management (``pins``) and the doctor (``doctor``). They speak to the person through the
desktop port (``agent.ui.port.DesktopPort``) and never import a toolkit.
"""

from agent.desktop.doctor import run_doctor
from agent.desktop.tray import SettingsHooks, Tray

__all__ = ["SettingsHooks", "Tray", "run_doctor"]
