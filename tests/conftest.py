"""Fixtures shared by several test folders.

* ``browser`` (session): Debian's headless Chromium through Playwright (the kiosk's and the console's tests).
* ``pg_server`` (session): a throw-away PostgreSQL cluster from Debian's ``postgresql`` on a free port, one
  for the whole run (the central's and the console's tests share it). As root, ``initdb``/``pg_ctl`` run as
  the ``postgres`` user. If it cannot start, the PostgreSQL tests fail with the server's log; they are never
  skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from central.pgtemp import PostgresUnavailable, TempCluster


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempCluster]:
    """The session's PostgreSQL cluster; a clear failure (never a skip) if it cannot start."""
    try:
        cluster = TempCluster.start()
    except PostgresUnavailable as error:
        pytest.fail(str(error))
    try:
        yield cluster
    finally:
        cluster.stop()


def pytest_configure(config: pytest.Config) -> None:
    # Registered here rather than in pyproject.toml, whose change would rebuild the QEMU image (an input of it).
    config.addinivalue_line(
        "markers", "image: boots the terminal's own amd64 image in QEMU (the longest part: scripts/test runs it apart)"
    )


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright (never its own downloaded browser), one for the run."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/bootstrap test)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield browser
        browser.close()
