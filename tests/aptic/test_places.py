"""Places: territory codes as INSEE writes them."""

from __future__ import annotations

import pytest

from aptic.places import departement_of, is_commune, is_departement, territory_label, typologie_label


@pytest.mark.parametrize(("insee", "dep"), [("33063", "33"), ("01001", "01"), ("2B033", "2B"), ("97411", "974")])
def test_departement_of_a_commune(insee: str, dep: str) -> None:
    assert departement_of(insee) == dep
    assert is_commune(insee) and is_departement(dep)


@pytest.mark.parametrize("bad", ["3306", "330631", "2C004", "ABCDE", ""])
def test_not_a_commune_code(bad: str) -> None:
    with pytest.raises(ValueError):
        departement_of(bad)


def test_labels() -> None:
    assert territory_label("33") == "département 33"
    assert territory_label("33063") == "commune 33063"
    assert typologie_label("BIB") == "bibliothèque ou médiathèque"
    assert typologie_label("XYZ") == "XYZ"  # an unknown code is shown as it is
