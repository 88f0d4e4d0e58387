"""Start building the terminal's image as soon as the suite knows it will boot it.

The build (images/build, about 2 minutes with the packages cached, more without) then runs while the tests
before tests/system do, instead of after them; the image fixture waits for it (machine.built_image holds a
lock). A build that failed in the background is tried again, in the foreground, by the fixture.
"""

from __future__ import annotations

import contextlib
import threading

import pytest

from .machine import built_image
from .qemu import QemuUnavailable


def _build() -> None:
    with contextlib.suppress(QemuUnavailable, OSError, RuntimeError):  # the fixture builds again, and says why
        built_image("amd64")


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.path.name == "test_image_qemu.py" for item in session.items):
        threading.Thread(target=_build, name="image-build", daemon=True).start()
