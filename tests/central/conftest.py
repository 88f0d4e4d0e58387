"""Fixtures for the central's tests.

* ``pg_server`` (session, in ``tests/conftest.py``): the suite's PostgreSQL cluster.
* ``db_url``: parametrized over ``sqlite`` and ``postgres`` (marked ``postgres``); a fresh database each.
* ``clock``: the injectable time of the app and of the admin services.
* ``central``: the app served by waitress on a loopback port, with a migrated database and helpers to make
  organisations, kits, carnets and activated devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from central_fixtures import SECRET, Central, Clock, LiveServer

from central.app import create_app
from central.config import Settings
from central.db import make_engine, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.db'}"
    return request.getfixturevalue("pg_server").new_database()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 10, 10, 0, tzinfo=UTC))  # a Tuesday in March 2026


@pytest.fixture
def central(db_url: str, clock: Clock, tmp_path: Path) -> Iterator[Central]:
    settings = Settings(tmp_path, db_url, SECRET)
    engine = make_engine(db_url)
    migrate(engine)
    live = LiveServer(create_app(settings, now=clock, engine=engine))
    try:
        yield Central(live.base, engine, settings, clock)
    finally:
        live.close()
        engine.dispose()
