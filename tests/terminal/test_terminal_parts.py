"""Smaller parts of the terminal: the clock, the event bus, the snapshot model, the settings."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from terminal_fixtures import POINT, carnet, make_snapshot, pass_number

from terminal import config
from terminal.clock import Clock
from terminal.events import EventBus
from terminal.snapshot import SnapshotError, from_json

# -- clock -------------------------------------------------------------------------------------------------


def test_clock_follows_the_timesyncd_marker_and_reads_the_boot_id(tmp_path: Path) -> None:
    marker, boot = tmp_path / "synchronized", tmp_path / "boot_id"
    boot.write_text("f00dfeed-1234\n")
    paris = timezone(timedelta(hours=2))
    clock = Clock(sync_marker=marker, boot_id_path=boot, now=lambda: datetime(2026, 7, 1, 8, 5, 3, tzinfo=paris),
                  monotonic=lambda: 42.5)  # fmt: skip
    unsynced = clock.stamp(1)
    marker.touch()
    synced = clock.stamp(2)
    assert (unsynced.clock_synced, synced.clock_synced) == (False, True)
    assert synced.as_dict() == {
        "scanned_at": "2026-07-01T08:05:03.000+02:00",
        "clock_synced": True,
        "boot_id": "f00dfeed-1234",
        "monotonic": 42.5,
        "seq": 2,
    }


def test_clock_without_a_kernel_boot_id_uses_one_per_process(tmp_path: Path) -> None:
    clock = Clock(boot_id_path=tmp_path / "missing")
    assert len(clock.boot_id) == 36 and clock.boot_id == clock.boot_id
    assert Clock(boot_id_path=tmp_path / "missing").boot_id != clock.boot_id


def test_clock_reads_the_real_boot_id_on_linux() -> None:
    real = Path("/proc/sys/kernel/random/boot_id")
    if not real.exists():
        pytest.skip("no /proc boot id here")
    assert Clock().boot_id == real.read_text().strip()
    assert Clock().now().tzinfo is not None


# -- event bus ---------------------------------------------------------------------------------------------


def test_event_ids_grow_and_a_stream_resumes_after_the_last_id_seen() -> None:
    bus = EventBus(keep=3, first_id=10)
    ids = [bus.publish("scan", n=n).id for n in range(5)]
    assert ids == [10, 11, 12, 13, 14]
    assert [e.data["n"] for e in bus.since(12)] == [3, 4]
    assert [e.id for e in bus.since(11)] == [12, 13, 14]  # only the last 3 are kept
    assert bus.since(10) is None and bus.since(99) is None  # 11 is gone; an id of another run: reload
    assert bus.since(14) == []
    assert bus.since(13)[0].sse() == 'id: 14\nevent: scan\ndata: {"n":4}\n\n'


def test_a_new_bus_starts_above_the_previous_runs_ids() -> None:
    earlier = EventBus()
    earlier.publish("scan")
    time.sleep(0.002)
    assert EventBus().last_id >= earlier.last_id


def test_wait_blocks_until_an_event_arrives_or_times_out() -> None:
    bus = EventBus(first_id=1)
    assert bus.wait_since(bus.last_id, timeout=0.05) == []
    threading.Timer(0.05, lambda: bus.publish("late_rejection", pass_number="1")).start()
    started = time.monotonic()
    events = bus.wait_since(bus.last_id, timeout=5)
    assert [e.kind for e in events] == ["late_rejection"]
    assert time.monotonic() - started < 2


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: object) -> None:
        raise RuntimeError("LED unplugged")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda e: seen.append(e.kind))
    bus.publish("scan")
    unsubscribe()
    bus.publish("scan")
    assert seen == ["scan"]
    assert "LED unplugged" in caplog.text


# -- snapshot ----------------------------------------------------------------------------------------------


def test_snapshot_finds_the_order_of_a_carnet_at_the_range_edges() -> None:
    snapshot = from_json(make_snapshot())
    assert snapshot.order_for(carnet(1)).commanditaire == "Département de la Gironde"
    assert snapshot.order_for(carnet(999_999)).commanditaire == "Département de la Gironde"
    assert snapshot.order_for(carnet(1_000_000)).commanditaire == "Ville de Paris"
    assert snapshot.order_for(carnet(1_001_000)) is None
    assert snapshot.order_for(pass_number(5, millesime=2025)[:10]) is None
    assert carnet(666) in snapshot.order_for(carnet(1)).blocked_carnets


def test_a_position_beyond_the_carnets_size_was_never_issued() -> None:
    data = make_snapshot()
    data["orders"][1]["carnets"][0]["size"] = 5  # Ville de Paris hands out carnets of 5
    snapshot = from_json(data)
    assert snapshot.order_for(carnet(1_000_000), 5).commanditaire == "Ville de Paris"
    assert snapshot.order_for(carnet(1_000_000), 6) is None  # as the central says: unknown_pass
    assert snapshot.order_for(carnet(1), 10).commanditaire == "Département de la Gironde"  # size 10 by default


def test_snapshot_places_inherit_the_catalogue() -> None:
    snapshot = from_json(make_snapshot(organisation={"id": 1, "name": "O", "qualified": False, "catalogue": [5]}))
    bus = snapshot.place(POINT)
    assert bus.catalogue == frozenset({5}) and not bus.qualified and bus.typologies == {"ITINERANT"}
    assert len(from_json(make_snapshot()).place(POINT).catalogue) == 129  # default: the whole référentiel


def test_snapshot_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(SnapshotError):
        from_json(make_snapshot(orders=[{"millesime": 2026}]))
    with pytest.raises(SnapshotError, match="bad carnet range"):
        from_json(
            make_snapshot(orders=[{"commanditaire": "X", "millesime": 2026, "carnets": [{"first": "9", "last": "1"}]}])
        )


# -- settings ----------------------------------------------------------------------------------------------


def test_settings_come_from_defaults_then_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('data_dir = "/srv/t"\ncentral_url = "http://127.0.0.1:5000"\nbatch_size = 100\n[kiosk]\nzoom = 2\n')
    settings = config.load(path, env={"APTIC_TERMINAL_BATCH_SIZE": "50"})
    assert settings.data_dir == Path("/srv/t") and settings.central_url == "http://127.0.0.1:5000"
    assert settings.batch_size == 50 and settings.check_timeout == 1.5 and settings.outbox_limit == 50_000
    assert settings.extra == {"kiosk": {"zoom": 2}}
    json_file = tmp_path / "c.json"
    json_file.write_text('{"point_id": 3}')
    assert config.load(env={"APTIC_TERMINAL_CONFIG": str(json_file)}).point_id == 3
    assert config.load(tmp_path / "missing.toml", env={}).data_dir == Path("/var/lib/aptic-terminal")


def test_settings_typos_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("outbox_limt = 10\n")
    with pytest.raises(config.ConfigError, match="unknown setting 'outbox_limt'"):
        config.load(path, env={})
    with pytest.raises(config.ConfigError, match="outbox_limit"):
        config.load(tmp_path / "none.toml", env={"APTIC_TERMINAL_OUTBOX_LIMIT": "many"})
