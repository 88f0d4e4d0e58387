"""Money in integer cents: a 10 € pass pays the place 9,60 €."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aptic.money import NET_PER_PASS_CENTS, Totals, fee_cents, format_euros, net_cents, totals


def test_a_ten_euro_pass() -> None:
    assert (fee_cents(1000), net_cents(1000), NET_PER_PASS_CENTS) == (40, 960, 960)


def test_statement_of_twelve_passes() -> None:
    t = totals([1000] * 12)
    assert t == Totals(passes=12, gross_cents=12_000, fee_cents=480, net_cents=11_520)
    assert t.as_dict() == {"passes": 12, "gross_cents": 12000, "fee_cents": 480, "net_cents": 11520}


def test_fee_rounds_half_up_per_pass() -> None:
    assert fee_cents(1012) == 40  # 40.48
    assert fee_cents(1013) == 41  # 40.52
    assert fee_cents(1250) == 50


@given(st.lists(st.integers(0, 100_000), max_size=50))
def test_lines_always_add_up(values: list[int]) -> None:
    whole = totals(values)
    by_halves = totals(values[: len(values) // 2]) + totals(values[len(values) // 2 :])
    assert whole == by_halves
    assert whole.gross_cents == whole.fee_cents + whole.net_cents


def test_french_amounts() -> None:
    assert format_euros(1000) == "10,00\u00a0€"
    assert format_euros(960) == "9,60\u00a0€"
    assert format_euros(5) == "0,05\u00a0€"
    assert format_euros(123_456_789) == "1\u202f234\u202f567,89\u00a0€"
    assert format_euros(-40) == "-0,40\u00a0€"
