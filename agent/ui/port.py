"""The UI port: what the core asks of any user interface (console, desktop, tests).

The core calls these coroutines from its event loop; an implementation that owns a thread
(a desktop toolkit) hands the call over and awaits the answer. The UI never calls into the
core (it implements the core's interface, not the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from agent.credentials import CredentialInfo
from agent.credentials.card import PinRef
from agent.notices import Notice
from agent.ui.settings import SettingsForm
from eidcore.messages import Language
from eidcore.signeddata import OrderKind


class DialogBlocked(Exception):
    """A dialog never became visible, or never got the keyboard, because another program
    holds it (seed: "another program blocks the password dialogs"). ``reason`` is for
    the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Request:
    """What the person is shown: who asks, for what, with which credentials."""

    order_ref: str
    kind: OrderKind
    origin: str  # the same string that goes into signedData
    text: str | None  # userVisibleData, shown verbatim
    text_format: str
    choices: tuple[CredentialInfo, ...]
    party_name: str | None = None  # an order relay's requesting party, beside ``origin``
    call_initiator: str | None = None  # a phone order: who called whom, said to the person


@dataclass(frozen=True)
class PinRequest:
    """Change a PIN (``unblock`` False: the current PIN and a new one) or unblock it with
    the PUK (``unblock`` True: the PUK, and a new PIN unless ``keep``)."""

    pin: PinRef  # always named to the person: a card has two PINs
    card: CredentialInfo
    unblock: bool = False
    keep: bool = False


@dataclass(frozen=True)
class PinAnswer:
    secret: str  # the current PIN, or the PUK
    new: str | None  # the new PIN, already typed twice and equal; None to keep it


@dataclass(frozen=True)
class EnrolmentAnswer:
    """What ordering a BankID on file asks: the personal number as typed, the activation
    code, and the new password (typed twice and equal)."""

    personal_number: str
    activation_code: str
    password: str


class UiPort(Protocol):
    async def choose(self, request: Request) -> CredentialInfo | None:
        """The credential the person picks (without asking when there is one); None if
        they cancel. Raises: DialogBlocked."""
        ...

    async def ask_secret(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> str | None:
        """The password or PIN for ``credential``; ``problem`` (e.g. wrong password,
        tries left) is shown with the question. None if they cancel.
        Raises: DialogBlocked."""
        ...

    async def confirm_pin_pad(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> bool:
        """For a credential behind a PIN pad: the same question as ``ask_secret`` with no
        field, saying that the PIN is typed on the reader once the person goes on. False
        if they cancel. Raises: DialogBlocked."""
        ...

    async def ask_pins(self, request: PinRequest, problem: Notice | None) -> PinAnswer | None:
        """The secrets for a PIN change or unblock; None if the person cancels."""
        ...

    async def ask_enrolment(self, problem: Notice | None) -> EnrolmentAnswer | None:
        """Personal number, activation code and a new password (the password rule is
        shown with the question); ``problem`` says what was wrong last time. None if the
        person cancels."""
        ...

    async def tell(self, notice: Notice) -> None:
        """Show a message; does not wait for it to be dismissed."""
        ...

    async def close(self, order_ref: str) -> None:
        """The order ended (done, expired, cancelled by the page): close its dialog."""
        ...


@dataclass(frozen=True)
class Presentation:
    """How dialogs are shown (Settings → Advanced)."""

    raise_dialogs: bool = False  # force them to the front and take the keyboard
    plain_window: bool = False  # plain windows instead of dialogs over other windows


# What the person picked, by its id: a tray menu item, a notice's button, a button in
# My BankIDs. Run as its own task, so a handler may ask further questions.
Chosen = Callable[[str], Coroutine[Any, Any, None]]


class DesktopPort(UiPort, Protocol):
    """What the desktop's controllers (tray menu, My BankIDs, PIN management, Settings)
    need beyond the order questions: a tray icon, windows of their own, notifications.
    The composition root hands the same object to the order service (as a UiPort) and to
    the controllers (as this)."""

    language: Language  # the Settings window may change it at run time
    presentation: Presentation
    on_menu: Chosen | None
    on_action: Chosen | None
    on_manager: Chosen | None

    @property
    def dialogs_blocked(self) -> bool:
        """The last password dialog could not be used (another program held it)."""
        ...

    async def tray(self, state: str, tooltip: str, items: list[tuple[str, str, bool]]) -> bool:
        """Show or update the tray icon (state: ready, busy, update, problem) and its menu
        of (id, label, enabled). False: no tray here."""
        ...

    async def manager(self, rows: list[tuple[str, list[tuple[str, str]]]]) -> None:
        """My BankIDs: (text, [(button id, label)]) per BankID; buttons come back through
        ``on_manager``."""
        ...

    async def ask_password(
        self, credential: CredentialInfo, problem: Notice | None, why: str | None = None
    ) -> str | None:
        """The password of a BankID on file, or the identification PIN of one on a card
        or token, outside an order (to revoke it, to look for orders waiting; ``why``:
        what it is asked for, said above the BankID's name)."""
        ...

    async def ask_password_change(
        self, credential: CredentialInfo, problem: Notice | None
    ) -> tuple[str, str] | None:
        """The current password and the new one (typed twice and equal)."""
        ...

    async def settings(
        self,
        form: SettingsForm,
        update_info: str,
        problem: Notice | None = None,
        focus: str | None = None,
    ) -> SettingsForm | None:
        """The Settings window filled from ``form``; what the person saved, or None."""
        ...

    async def ask_token_enrolment(
        self, label: str, problem: Notice | None, *, replaces: bool
    ) -> EnrolmentAnswer | None:
        """Personal number, activation code and the PIN of the security key ``label`` (in
        ``password``), for a BankID ordered onto it; ``replaces``: a BankID on it is
        overwritten (a PIV card's two slots). None if the person cancels."""
        ...

    async def confirm(
        self, heading: str, body: str, check: str | None, ok: str
    ) -> tuple[bool, bool]:
        """(yes, the check box ticked); the safe answer (Cancel) is the default."""
        ...

    async def report(self, title: str, text: str) -> None:
        """A report with a button that copies it (diagnostics for support)."""
        ...

    async def info(self, title: str, body: str) -> None:
        """A plain window with text (about, diagnostics); no message code."""
        ...

    async def notify(self, notice: Notice) -> bool:
        """A desktop notification; False where no notification service runs."""
        ...

    async def aclose(self) -> None:
        """Close every window and the tray icon."""
        ...
