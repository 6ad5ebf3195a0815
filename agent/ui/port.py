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
from agent.tokens.model import CredentialInfo


@dataclass(frozen=True)
class Request:
    """What the person is shown: who asks, for what, with which credentials."""

    order_ref: str
    kind: OrderKind
    origin: str  # the same string that goes into signedData
    text: str | None  # userVisibleData, shown verbatim
    text_format: str
    choices: tuple[CredentialInfo, ...]


class UiPort(Protocol):
    async def choose(self, request: Request) -> CredentialInfo | None:
        """The credential the person picks (without asking when there is one); None if
        they cancel."""
        ...

    async def ask_secret(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> str | None:
        """The password or PIN for ``credential``; ``problem`` (e.g. wrong password,
        tries left) is shown with the question. None if they cancel."""
        ...

    async def tell(self, notice: Notice) -> None:
        """Show a message; does not wait for it to be dismissed."""
        ...

    async def close(self, order_ref: str) -> None:
        """The order ended (done, expired, cancelled by the page): close its dialog."""
        ...
