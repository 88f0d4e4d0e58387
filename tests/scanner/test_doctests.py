"""The examples in the scanner modules' docstrings are true."""

from __future__ import annotations

import doctest

import pytest

from terminal.scanner import decoder, process, protocol, stall, typist


@pytest.mark.parametrize("module", [decoder, typist, stall, protocol, process])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
