"""The UI port: what the core asks of any user interface (console, desktop, tests).

The core calls these coroutines from its event loop; an implementation that owns a thread
(a desktop toolkit) hands the call over and awaits the answer. The UI never calls into the
core (it implements the core's interface, not the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.notices import Notice
from agent.orders import OrderKind
from agent.tokens.card.errors import PinRef
from agent.tokens.model import CredentialInfo


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
