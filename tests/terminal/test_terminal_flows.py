"""The Terminal as the kiosk drives it: self-service test, médiateur entries, submit, cancel, late rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from terminal_fixtures import OTHER_POINT, POINT, FakeTime, carnet, make_snapshot, pass_number

from aptic.reasons import Reason
from terminal.clock import Clock
from terminal.events import Event, EventBus
from terminal.store import OutboxFull, Store
from terminal.terminal import CancelRefused, Mode, NoEntry, NotReady, Terminal


@pytest.fixture
def events(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.subscribe(seen.append)
    return seen


@pytest.fixture
def at_bus(terminal: Terminal) -> Terminal:
    terminal.set_point(POINT)
    return terminal


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def test_a_terminal_without_offline_data_says_it_is_not_ready(store: Store, clock: Clock) -> None:
    terminal = Terminal(store, clock=clock)
    with pytest.raises(NotReady) as refused:
        terminal.handle_code(pass_number(1))
    assert "pas prêt" in refused.value.message_fr
    # A bad check digit needs no offline data: it is refused as malformed, on screen too.
    number = pass_number(1)
    heard: list[Event] = []
    terminal.bus.subscribe(heard.append)
    result = terminal.handle_code(number[:-2] + f"{(int(number[-2:]) + 1) % 100:02d}")
    assert result.reason is Reason.MALFORMED and result.message.startswith("Pass non conforme")
    assert kinds(heard) == ["scan"] and heard[0].data["result"]["reason"] == "malformed"
    assert store.pending_count() == 0


def test_self_service_test_tells_validity_and_restrictions_and_records_nothing(at_bus: Terminal, store: Store) -> None:
    result = at_bus.handle_code("1 " + pass_number(12)[1:])
    assert at_bus.mode is Mode.TEST
    assert result.reason is Reason.OK and result.valid and result.provisional
    assert "Département de la Gironde" in result.message
    assert "Uniquement sur ce territoire : Gironde." in result.restrictions
    assert result.pass_info["carnet"] == carnet(12)
    assert not result.added and store.pending_count() == 0


@pytest.mark.parametrize(
    ("code", "reason", "words"),
    [
        (pass_number(500, 2), Reason.ALREADY_USED, "EPN de Talence"),
        (pass_number(666, 3), Reason.BLOCKED, "bloqué"),
        (pass_number(1_000_005), Reason.TERRITORY, "territoire"),
        (pass_number(5, millesime=2025), Reason.UNKNOWN_PASS, "n'a pas été émis"),
        ("1260000012015" + "00000", Reason.MALFORMED, "non conforme"),
    ],
)
def test_self_service_refusals_come_from_the_rules(at_bus: Terminal, code: str, reason: Reason, words: str) -> None:
    result = at_bus.handle_code(code)
    assert result.reason is reason
    assert words in result.message
    assert result.provisional


def test_an_entry_takes_valid_passes_and_refuses_duplicates_and_same_carnet(at_bus: Terminal,
                                                                           events: list[Event]) -> None:  # fmt: skip
    entry = at_bus.start_entry(service=12)
    assert at_bus.mode is Mode.ENTRY and entry.point_id == POINT
    first = at_bus.handle_code(pass_number(20, 1))
    assert first.added and first.service == 12
    again = at_bus.handle_code(pass_number(20, 1))
    assert again.reason is Reason.DUPLICATE_IN_ENTRY
    assert not again.added
    sibling = at_bus.handle_code(pass_number(20, 2))
    assert sibling.reason is Reason.SAME_CARNET and not sibling.added
    other = at_bus.handle_code(pass_number(21, 1), device="douchette-1")
    assert other.added and other.device == "douchette-1"
    assert at_bus.entry.passes == [pass_number(20, 1), pass_number(21, 1)]
    # Removed before submit, the sibling of the carnet may join.
    assert at_bus.remove(pass_number(20, 1))
    assert not at_bus.remove(pass_number(20, 1))
    assert at_bus.handle_code(pass_number(20, 2)).added
    assert "scan" in kinds(events) and "entry" in kinds(events)
    last_entry = [e for e in events if e.kind == "entry"][-1]
    assert [p["pass_number"] for p in last_entry.data["entry"]["passes"]] == [pass_number(21, 1), pass_number(20, 2)]


def test_submit_records_durably_then_the_pass_counts_as_used(at_bus: Terminal, store: Store, tmp_path: Path,
                                                            events: list[Event]) -> None:  # fmt: skip
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(40))
    at_bus.handle_code(pass_number(41))
    receipt = at_bus.submit()
    assert at_bus.mode is Mode.TEST and at_bus.entry is None
    assert len(receipt.scan_ids) == 2
    reopened = Store(store.directory).pending()
    assert [s["id"] for s in reopened] == list(receipt.scan_ids)
    scan = reopened[0]
    assert scan["pass_number"] == pass_number(40) and scan["service"] == 12 and scan["point"] == POINT
    assert scan["entry_id"] == receipt.entry_id and scan["offline_reason"] == "ok"
    assert scan["scanned_at"].startswith("2026-11-20T10:00:00") and scan["scanned_at"].endswith("+01:00")
    assert scan["clock_synced"] is False and scan["boot_id"].startswith("6a0d7a2c")
    assert [s["seq"] for s in reopened] == [1, 2]
    assert kinds(events)[-2:] == ["submitted", "mode"]
    # Recorded passes are used: offline, in the same terminal, in test mode and in a new entry.
    assert at_bus.handle_code(pass_number(40)).reason is Reason.ALREADY_USED
    at_bus.start_entry(service=12)
    assert at_bus.handle_code(pass_number(40, 2)).reason is Reason.SAME_CARNET
    at_bus.start_entry(service=13)
    assert at_bus.handle_code(pass_number(40, 2)).added  # another service, same day: allowed


def test_a_restarted_terminal_remembers_pending_scans(at_bus: Terminal, store: Store, clock: Clock) -> None:
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(50))
    at_bus.submit()
    again = Terminal(Store(store.directory), clock=clock)
    assert again.point_id == POINT  # saved by set_point
    assert again.handle_code(pass_number(50)).reason is Reason.ALREADY_USED


def test_submit_and_entry_actions_need_an_open_entry(at_bus: Terminal) -> None:
    with pytest.raises(NoEntry):
        at_bus.submit()
    with pytest.raises(NoEntry):
        at_bus.remove(pass_number(1))
    at_bus.start_entry(service=12)
    with pytest.raises(NoEntry, match="empty"):
        at_bus.submit()
    at_bus.handle_code(pass_number(60))
    at_bus.abandon_entry()
    assert at_bus.mode is Mode.TEST and at_bus.handle_code(pass_number(60)).valid


def test_cancel_within_fifteen_minutes(at_bus: Terminal, store: Store, fake_time: FakeTime) -> None:
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(70))
    receipt = at_bus.submit()
    fake_time.advance(14 * 60)
    rows = at_bus.cancel_entry(receipt.entry_id)
    assert [r["status"] for r in rows] == ["cancelled"]
    assert store.pending_count() == 0
    assert at_bus.handle_code(pass_number(70)).valid  # the pass is free again
    with pytest.raises(CancelRefused):
        at_bus.cancel_entry(receipt.entry_id)


def test_cancel_refused_after_fifteen_minutes_even_if_the_wall_clock_jumped(at_bus: Terminal, store: Store,
                                                                            fake_time: FakeTime) -> None:  # fmt: skip
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(71))
    receipt = at_bus.submit()
    fake_time.mono += 16 * 60  # NTP set the wall clock back meanwhile: only monotonic time counts
    with pytest.raises(CancelRefused) as refused:
        at_bus.cancel_entry(receipt.entry_id)
    assert "15 minutes" in refused.value.message_fr
    assert store.pending_count() == 1


def test_cancel_after_a_reboot_uses_the_wall_clock(at_bus: Terminal, store: Store, fake_time: FakeTime,
                                                   tmp_path: Path) -> None:  # fmt: skip
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(72))
    receipt = at_bus.submit()
    boot = tmp_path / "boot2"
    boot.write_text("another-boot")
    fake_time.mono = 5.0  # a new boot: the monotonic clock restarted
    fake_time.wall += timedelta(minutes=3)
    clock = Clock(sync_marker=tmp_path / "none", boot_id_path=boot, now=fake_time.now, monotonic=fake_time.monotonic)
    rebooted = Terminal(Store(store.directory), clock=clock)
    assert [r["pass_number"] for r in rebooted.cancel_entry(receipt.entry_id)] == [pass_number(72)]


def test_cancel_refused_once_synced(at_bus: Terminal) -> None:
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(73))
    receipt = at_bus.submit()
    at_bus.apply_results([{"id": receipt.scan_ids[0], "status": "accepted", "reason": "ok", "message": "Accepté"}])
    with pytest.raises(CancelRefused) as refused:
        at_bus.cancel_entry(receipt.entry_id)
    assert "déjà été transmise" in refused.value.message_fr


def test_a_late_rejection_is_published_and_listed(at_bus: Terminal, events: list[Event]) -> None:
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(80))
    at_bus.handle_code(pass_number(81))
    receipt = at_bus.submit()
    rejected, accepted = receipt.scan_ids
    at_bus.apply_results(
        [
            {"id": rejected, "status": "rejected", "reason": "already_used", "message": "Pass déjà utilisé le 19/11."},
            {"id": accepted, "status": "accepted", "reason": "ok", "message": "Accepté"},
        ]
    )
    late = [e for e in events if e.kind == "late_rejection"]
    assert len(late) == 1
    assert late[0].data["scan"]["pass_number"] == pass_number(80)
    assert late[0].data["scan"]["message"] == "Pass déjà utilisé le 19/11."
    assert [r["pass_number"] for r in at_bus.late_rejections()] == [pass_number(80)]
    assert events[-1].kind == "synced" and events[-1].data == {"count": 2, "rejected": 1, "pending": 0}
    # The accepted pass stays used; the rejected one is not counted as a use by this terminal.
    assert at_bus.handle_code(pass_number(81)).reason is Reason.ALREADY_USED
    assert at_bus.handle_code(pass_number(80)).valid


def test_a_full_outbox_refuses_new_entries_clearly(tmp_path: Path, clock: Clock, bus: EventBus,
                                                   events: list[Event]) -> None:  # fmt: skip
    store = Store(tmp_path / "small", outbox_limit=2)
    store.save_snapshot(make_snapshot())
    terminal = Terminal(store, clock=clock, bus=bus, point_id=POINT)
    terminal.start_entry(service=12)
    terminal.handle_code(pass_number(90))
    terminal.submit()
    terminal.start_entry(service=12)  # one place left
    terminal.handle_code(pass_number(91))
    terminal.handle_code(pass_number(92))
    with pytest.raises(OutboxFull):
        terminal.submit()  # two would not fit: nothing recorded, the entry stays open
    assert terminal.entry is not None and len(terminal.entry.passes) == 2
    assert store.pending_count() == 1
    terminal.remove(pass_number(92))
    terminal.submit()
    with pytest.raises(OutboxFull) as refused:
        terminal.start_entry(service=12)
    assert "Mémoire du terminal pleine" in refused.value.message_fr
    assert events[-1].kind == "refused" and "pleine" in events[-1].data["message"]
    assert store.pending_count() == 2


def test_scans_made_with_an_unsynced_clock_say_so(at_bus: Terminal, store: Store, clock: Clock) -> None:
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(100))
    at_bus.submit()
    clock.sync_marker.write_text("")  # timesyncd synchronised
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(101))
    at_bus.submit()
    assert [s["clock_synced"] for s in store.pending()] == [False, True]


def test_the_catalogue_and_funder_restrictions_of_the_point_apply(terminal: Terminal) -> None:
    terminal.set_point(OTHER_POINT)  # offers services 1-3 only
    terminal.start_entry(service=12)
    assert terminal.handle_code(pass_number(110)).reason is Reason.SERVICE_NOT_IN_CATALOGUE
    terminal.start_entry(service=2)
    assert terminal.handle_code(pass_number(110)).added
    with pytest.raises(NotReady):
        terminal.set_point(99)


def test_tolerance_month_accepts_with_a_warning(at_bus: Terminal, fake_time: FakeTime) -> None:
    fake_time.wall = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
    result = at_bus.handle_code(pass_number(120))
    assert result.valid and "tolérance" in result.warnings[0]
    fake_time.wall = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
    assert at_bus.handle_code(pass_number(120)).reason is Reason.EXPIRED


def test_status_summarises_for_the_kiosk(at_bus: Terminal, fake_time: FakeTime) -> None:
    at_bus.start_entry(service=12)
    at_bus.handle_code(pass_number(130))
    at_bus.submit()
    fake_time.advance(90)
    status = at_bus.status()
    assert status["mode"] == "test" and status["point"] == POINT and status["place"] == "Bus numérique"
    assert status["outbox"] == {"pending": 1, "limit": 50_000, "oldest_pending_age_s": 90.0}
    assert status["clock_synced"] is False and status["snapshot"]["cursor"] == "c1"
