"""Pass numbers: reading what a person or a scanner typed, and refusing every misread."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aptic.passnumber import (
    AZERTY_TOP_ROW,
    PassNumberError,
    authentic,
    build,
    check_digits,
    format_pass,
    hmac_authenticator,
    is_well_formed,
    masked,
    normalise,
    parse,
)

AUTH = hmac_authenticator(b"test key")
EXAMPLE = "126000123407582112"  # the example of docs/contracts.md: payload 1260001234075821, check digits 12

passes = st.builds(
    lambda m, s, p: build(m, s, p, AUTH),
    st.integers(2000, 2099),
    st.integers(0, 9_999_999),
    st.integers(1, 10),
)


def test_design_example_reads_field_by_field() -> None:
    p = parse("1 26 0001234 07 5821 12")
    assert (p.version, p.millesime, p.serial, p.position) == (1, 2026, 1234, 7)
    assert (p.authenticator, p.check_digits, p.carnet) == ("5821", "12", "1260001234")
    assert p.digits == EXAMPLE
    assert p.printed == "1 26 0001234 07 5821 12"
    assert check_digits("1260001234075821") == "12"


@pytest.mark.parametrize("typed", ["1.26.0001234.07.5821.12", "1-26-0001234-07-5821-12", " 126000123407582112\t"])
def test_separators_are_ignored(typed: str) -> None:
    assert parse(typed).digits == EXAMPLE
    assert not parse(typed).azerty_mapped


def test_azerty_top_row_maps_back_and_says_so() -> None:
    # A US-configured scanner on an AZERTY host types the unshifted top row: 1->&, 2->é, ... 6->-, 0->à.
    to_azerty = {v: k for k, v in AZERTY_TOP_ROW.items()}
    typed = "".join(to_azerty[d] for d in EXAMPLE)
    assert typed == "&é-ààà&é\"'àè(_é&&é"
    p = parse(typed)
    assert p.digits == EXAMPLE and p.azerty_mapped


def test_azerty_hyphen_is_a_six_only_among_azerty_characters() -> None:
    assert normalise("&-é").digits == "162"
    assert normalise("1-2").digits == "12"


@pytest.mark.parametrize(
    ("typed", "part"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("12600012340758211", "length"),
        ("1260001234075821123", "length"),
        ("12600012340758211X", "characters"),
        ("1260001234075821¹2", "characters"),
        ("226000123407582112", "version"),
        ("126000123407582113", "check_digits"),
    ],
)
def test_errors_name_the_wrong_part(typed: str, part: str) -> None:
    with pytest.raises(PassNumberError) as caught:
        parse(typed)
    assert caught.value.part == part
    assert caught.value.message_fr  # every refusal can be said on screen
    assert not is_well_formed(typed)


@pytest.mark.parametrize("position", [0, 11, 99])
def test_position_outside_the_carnet_is_refused(position: int) -> None:
    payload = f"126000123{4:01d}{position:02d}5821"
    with pytest.raises(PassNumberError) as caught:
        parse(payload + check_digits(payload))
    assert caught.value.part == "position"
    assert f"{position:02d}" in caught.value.message_fr


def test_french_messages_are_specific() -> None:
    with pytest.raises(PassNumberError) as caught:
        parse("1260001234")
    assert caught.value.message_fr == "Le numéro a 10 chiffres au lieu de 18."
    with pytest.raises(PassNumberError) as caught:
        parse("126000123407582113")
    assert "Clé de contrôle incorrecte" in caught.value.message_fr


@given(passes, st.integers(0, 17), st.integers(1, 9))
def test_every_single_wrong_digit_is_rejected(number: str, index: int, shift: int) -> None:
    wrong = number[:index] + str((int(number[index]) + shift) % 10) + number[index + 1 :]
    assert not is_well_formed(wrong)


@given(passes, st.integers(0, 16))
def test_every_swap_of_neighbouring_digits_is_rejected(number: str, index: int) -> None:
    a, b = number[index], number[index + 1]
    swapped = number[:index] + b + a + number[index + 2 :]
    assert swapped == number or not is_well_formed(swapped)


def test_swap_09_90_is_caught() -> None:
    # Luhn misses 09 <-> 90; MOD 97-10 does not. Find a built number holding "09" and swap it.
    for serial in range(1000):
        number = build(2026, serial, 9, AUTH)
        i = number.find("09")
        if i >= 0:
            break
    swapped = number[:i] + "90" + number[i + 2 :]
    assert is_well_formed(number) and not is_well_formed(swapped)


@given(passes)
def test_built_numbers_validate_and_format_round_trips(number: str) -> None:
    p = parse(number)
    assert p.digits == number
    assert parse(format_pass(number)).digits == number
    assert format_pass(number).replace(" ", "") == number
    assert authentic(p, AUTH)


@given(passes, st.lists(st.sampled_from([" ", ".", "-"]), min_size=18, max_size=18))
def test_normalise_ignores_any_separators(number: str, seps: list[str]) -> None:
    typed = "".join(d + s for d, s in zip(number, seps, strict=True))
    assert parse(typed).digits == number


def test_authenticator_depends_on_the_key() -> None:
    number = build(2026, 42, 3, AUTH)
    other_key = hmac_authenticator(b"another key")
    assert authentic(parse(number), AUTH)
    # The same first 12 digits with another key give another authenticator (for this example).
    assert not authentic(parse(number), other_key)
    forged = build(2026, 42, 3, other_key)
    assert is_well_formed(forged) and not authentic(parse(forged), AUTH)


@pytest.mark.parametrize(("m", "s", "p"), [(1999, 1, 1), (2026, 10_000_000, 1), (2026, 1, 0), (2026, 1, 11)])
def test_build_refuses_out_of_range_fields(m: int, s: int, p: int) -> None:
    with pytest.raises(ValueError):
        build(m, s, p, AUTH)


def test_masked_hides_what_makes_a_pass_pay() -> None:
    number = build(2026, 1234, 7, hmac_authenticator(b"k"))
    shown = masked(number)
    assert shown.startswith("1 26 0001234 07 ") and shown.endswith("**** **")
    assert number[12:] not in shown.replace(" ", "")
    assert masked(format_pass(number)) == shown  # the printed form too
    assert masked("hello") == "<5 characters>"  # not a pass: only its length
