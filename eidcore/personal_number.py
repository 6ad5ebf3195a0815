"""Swedish personal identity numbers (personnummer) in the 12-digit form YYYYMMDDNNNC.

Only the 12-digit form without separators is accepted. The 10-digit form and forms with a
hyphen, plus sign or spaces are refused with their own reason, because a person who typed
them needs to be told "12 digits, no hyphen" — the most common login failure in practice.
Co-ordination numbers (samordningsnummer: day of month + 60) are accepted.

Pure functions only: no I/O, no clock.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass

__all__ = ["InvalidPersonalNumber", "PersonalNumber", "Reason", "luhn_check_digit"]


class Reason(enum.StrEnum):
    FORMAT = "format"  # not 12 digits (10 digits, hyphen, spaces, letters, ...)
    DATE = "date"  # no such date (month 13, 30 February, day 0, ...)
    CHECK_DIGIT = "checkDigit"  # Luhn check digit does not match


class InvalidPersonalNumber(ValueError):
    """The text is not a valid 12-digit personal number; ``reason`` says why."""

    def __init__(self, reason: Reason) -> None:
        # The number itself is deliberately not part of the message: it is personal data
        # and exception texts end up in logs.
        super().__init__(f"invalid personal number ({reason})")
        self.reason = reason


def luhn_check_digit(nine_digits: str) -> int:
    """The Luhn check digit over YYMMDDNNN (the last ten digits minus the check digit)."""
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


@dataclass(frozen=True, order=True)
class PersonalNumber:
    """A validated personal number; ``str()`` gives the canonical 12 digits."""

    digits: str

    @classmethod
    def parse(cls, text: str) -> PersonalNumber:
        """Raises: InvalidPersonalNumber."""
        if len(text) != 12 or not text.isascii() or not text.isdigit():
            raise InvalidPersonalNumber(Reason.FORMAT)
        year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
        if day > 60:
            day -= 60  # co-ordination number
        try:
            _dt.date(year, month, day)
        except ValueError:
            raise InvalidPersonalNumber(Reason.DATE) from None
        if luhn_check_digit(text[2:11]) != int(text[11]):
            raise InvalidPersonalNumber(Reason.CHECK_DIGIT)
        return cls(text)

    @property
    def is_coordination_number(self) -> bool:
        return int(self.digits[6:8]) > 60

    @property
    def birth_date(self) -> _dt.date:
        day = int(self.digits[6:8])
        if day > 60:
            day -= 60
        return _dt.date(int(self.digits[0:4]), int(self.digits[4:6]), day)

    def __str__(self) -> str:
        return self.digits

    def masked(self) -> str:
        """For logs at info level and for screens that show many people: YYYYMMDD-****."""
        return f"{self.digits[:8]}-****"
