"""What a PKCS#11 module or token can say beyond what cards say already (wrong PIN, blocked,
removed: those are the card errors, so people read the same messages)."""

from __future__ import annotations

from agent.credentials.card.errors import CardError


class TokenFault(CardError):
    """The module answered with an error this agent does not expect (its name is logged)."""

    def __init__(self, what: str, during: str) -> None:
        super().__init__(f"the token answered {what} during {during}")
        self.what, self.during = what, during


class PinEntryCancelled(CardError):
    """The person cancelled on the card reader's PIN pad (or it timed out): nothing spent."""

    def __init__(self) -> None:
        super().__init__("PIN entry cancelled on the reader's PIN pad")


class ModuleUnusable(CardError):
    """A module that could not be loaded, or crashed or hung when it was (probe)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"PKCS#11 module {path}: {reason}")
        self.path, self.reason = path, reason


class CannotEnrolHere(CardError):
    """The token cannot be given keys from this computer: a PIV card, whose keys OpenSC's
    PKCS#11 module does not make, where OpenSC's piv-tool is not installed either."""

    def __init__(self, label: str) -> None:
        super().__init__(f"token {label!r} makes no keys through its PKCS#11 module")
        self.label = label


class ManagementKeyRefused(CardError):
    """A PIV card refused the management key it was given (none of its keys changed)."""

    def __init__(self, label: str) -> None:
        super().__init__(f"PIV card {label!r} refused the management key")
        self.label = label
