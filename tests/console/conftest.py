"""Fixtures of the console's tests.

* ``site``: the central's app on a migrated database (SQLite; ``pg_site`` for PostgreSQL), a settable clock,
  argon2's cheapest profile (the real one costs ~0.4 s a hash), two organisations each with an admin and a
  member; Flask's test client for the HTTP-level tests (``site.client(email)`` logs in).
* ``live``: the same app served by waitress on a loopback port, for the browser tests.
* ``page``: a fresh context of Debian's headless Chromium in which every request to another host than the
  loopback is aborted (no CDN, no map tiles: the pages must work without them) and console errors are
  collected (a CSP violation fails the test).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles
from console_fixtures import Site, serve_site
from playwright.sync_api import Browser, Page

from central.services import accounts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "central"))
from central_fixtures import Clock, LiveServer


@pytest.fixture(autouse=True, scope="session")
def cheap_hashes() -> Iterator[None]:
    accounts.use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
    yield


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 10, 10, 0, tzinfo=UTC))  # a Tuesday in March 2026


@pytest.fixture
def site(clock: Clock, tmp_path: Path) -> Iterator[Site]:
    yield from serve_site(f"sqlite:///{tmp_path / 'central.db'}", clock, tmp_path)


@pytest.fixture
def live(site: Site) -> Iterator[str]:
    server = LiveServer(site.app)
    try:
        yield server.base
    finally:
        server.close()



@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    blocked: list[str] = []

    def only_loopback(route, request) -> None:  # type: ignore[no-untyped-def]
        if request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            blocked.append(request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = errors  # type: ignore[attr-defined]
    page.blocked_requests = blocked  # type: ignore[attr-defined]
    yield page
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
