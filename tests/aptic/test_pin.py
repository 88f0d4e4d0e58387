"""The médiateur PIN's hash: what the central stores and sends, and the kiosk checks."""

from __future__ import annotations

import pytest

from aptic.pin import hash_pin, valid_pin, verify_pin


def test_right_and_wrong_pins() -> None:
    encoded = hash_pin("2468")
    assert verify_pin("2468", encoded)
    assert not verify_pin("2469", encoded)
    assert "2468" not in encoded


def test_each_hash_has_its_own_salt() -> None:
    assert hash_pin("2468") != hash_pin("2468")


@pytest.mark.parametrize("encoded", [None, "", "2468", "md5$1$x$y", "pbkdf2_sha256$abc$s$d", "pbkdf2_sha256$0$s$d"])
def test_malformed_hashes_never_match(encoded: str | None) -> None:
    assert not verify_pin("2468", encoded)


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4", "", "١٢٣٤"])
def test_a_pin_is_four_to_eight_ascii_digits(pin: str) -> None:
    assert not valid_pin(pin)
    with pytest.raises(ValueError):
        hash_pin(pin)
