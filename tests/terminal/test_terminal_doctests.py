"""The examples in the terminal modules' docstrings run as written."""

from __future__ import annotations

import doctest

import pytest

from terminal import clock, config, control, durable, outbox, store, sync


@pytest.mark.parametrize("module", [clock, config, control, durable, outbox, store, sync], ids=lambda m: m.__name__)
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
