"""The examples in the domain modules' docstrings run as written."""

from __future__ import annotations

import doctest

import pytest

from aptic import money, opening_hours, passnumber, pin, places, referentiel

MODULES = [money, opening_hours, passnumber, pin, places, referentiel]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
