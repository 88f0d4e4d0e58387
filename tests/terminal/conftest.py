"""Fixtures for the terminal's tests: pass numbers, an offline snapshot, a clock that tests can move."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from terminal_fixtures import FakeTime, make_snapshot

from terminal.clock import Clock
from terminal.events import EventBus
from terminal.store import Store
from terminal.terminal import Terminal


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime(datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=1))))


@pytest.fixture
def clock(fake_time: FakeTime, tmp_path: Path) -> Clock:
    boot = tmp_path / "boot_id"
    boot.write_text("6a0d7a2c-0000-4000-8000-000000000001\n")
    return Clock(sync_marker=tmp_path / "synchronized", boot_id_path=boot, now=fake_time.now,
                 monotonic=fake_time.monotonic)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, fake_time: FakeTime) -> Store:
    s = Store(tmp_path / "data", now=fake_time.now)
    yield s
    s.close()


@pytest.fixture
def bus() -> EventBus:
    return EventBus(first_id=1)


@pytest.fixture
def terminal(store: Store, clock: Clock, bus: EventBus) -> Terminal:
    store.save_snapshot(make_snapshot())
    return Terminal(store, clock=clock, bus=bus)


@pytest.fixture
def today() -> date:
    return date(2026, 11, 20)
