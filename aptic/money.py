"""Money, always in integer cents: a pass's face value, the 4 % fee and what the place is paid.

A 10 € pass pays the place 9,60 €: the scheme keeps 4 % of face value ("frais contributifs aval").
The fee is computed per pass, so statement lines always add up to the statement's totals.

>>> fee_cents(1000), net_cents(1000)
(40, 960)
>>> format_euros(123456)
'1\\u202f234,56\\xa0€'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FACE_VALUE_CENTS = 1000
FEE_PERCENT = 4
NET_PER_PASS_CENTS = FACE_VALUE_CENTS - FACE_VALUE_CENTS * FEE_PERCENT // 100  # 960


def fee_cents(value_cents: int) -> int:
    """The 4 % fee on one pass, rounded half up to the cent."""
    return (value_cents * FEE_PERCENT + 50) // 100


def net_cents(value_cents: int) -> int:
    """What the place receives for one pass of this face value."""
    return value_cents - fee_cents(value_cents)


@dataclass(frozen=True, slots=True)
class Totals:
    """Passes counted and their gross, fee and net amounts: one statement line, or a whole statement."""

    passes: int = 0
    gross_cents: int = 0
    fee_cents: int = 0
    net_cents: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.passes + other.passes,
            self.gross_cents + other.gross_cents,
            self.fee_cents + other.fee_cents,
            self.net_cents + other.net_cents,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "passes": self.passes,
            "gross_cents": self.gross_cents,
            "fee_cents": self.fee_cents,
            "net_cents": self.net_cents,
        }


def totals(face_values_cents: Iterable[int]) -> Totals:
    """Totals for accepted passes given their face values."""
    result = Totals()
    for value in face_values_cents:
        fee = fee_cents(value)
        result = result + Totals(1, value, fee, value - fee)
    return result


def format_euros(cents: int) -> str:
    """French notation: ``10,00 €``, thousands split by a narrow no-break space, a no-break space before €."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    grouped = f"{euros:,}".replace(",", "\u202f")
    return f"{sign}{grouped},{rest:02d}\u00a0€"
