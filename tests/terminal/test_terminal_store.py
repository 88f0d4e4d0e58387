"""The store: atomic files, quarantine of unreadable ones, the bounded outbox, history by month."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from terminal_fixtures import FakeTime

from terminal.store import OutboxFull, ReadOnly, Store, months_before


def scan(store: Store, **fields: object) -> dict[str, object]:
    return {"id": str(uuid.uuid4()), "pass_number": "126000000101234567", "seq": store.next_seq(), **fields}


def test_recorded_scans_are_on_disk_when_record_returns(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first, second = scan(store), scan(store)
    store.record([first, second])
    on_disk = json.loads((tmp_path / "outbox.json").read_text())
    assert sorted(d["id"] for d in on_disk["scans"].values()) == sorted([first["id"], second["id"]])
    # A new process (a new Store) sees them, in sequence order.
    assert [s["id"] for s in Store(tmp_path).pending()] == [first["id"], second["id"]]


def test_recording_does_not_touch_history_files(tmp_path: Path, fake_time: FakeTime) -> None:
    store = Store(tmp_path, now=fake_time.now)
    store.record([scan(store)])
    store.file_results([{"id": store.pending()[0]["id"], "status": "accepted", "reason": "ok", "message": ""}])
    history = tmp_path / "history-2026-11.json"
    before = history.stat().st_mtime_ns, history.read_bytes()
    store.record([scan(store)])
    assert (history.stat().st_mtime_ns, history.read_bytes()) == before


def test_orphan_temp_files_are_swept_at_start(tmp_path: Path) -> None:
    Store(tmp_path).record([{"id": "a", "seq": 1}])
    orphan = tmp_path / "outbox.json.k2j3h4.tmp"
    orphan.write_text('{"scans": {"1": {"id": "half-writ')
    store = Store(tmp_path)
    assert not orphan.exists()
    assert [s["id"] for s in store.pending()] == ["a"]


def test_unreadable_file_is_set_aside_and_the_store_keeps_working(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                 fake_time: FakeTime) -> None:  # fmt: skip
    (tmp_path / "outbox.json").write_text('{"scans": {"1": {"id": "a", "seq": 1}}}trailing garbage')
    (tmp_path / "state.json").write_bytes(b"\xff\xfe not json")
    with caplog.at_level(logging.ERROR, logger="terminal.store"):
        store = Store(tmp_path, now=fake_time.now)
    corrupt = sorted(p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name)
    assert [name.split(".corrupt-")[0] for name in corrupt] == ["outbox.json", "state.json"]
    assert "outbox.json is unreadable" in caplog.text and "moved aside" in caplog.text
    # The bad bytes are kept for a human to look at.
    assert (tmp_path / corrupt[0]).read_text().endswith("trailing garbage")
    assert store.pending_count() == 0
    store.record([scan(store)])
    assert Store(tmp_path).pending_count() == 1


def test_a_file_of_the_wrong_shape_is_quarantined_too(tmp_path: Path) -> None:
    (tmp_path / "outbox.json").write_text("[1, 2, 3]")
    assert Store(tmp_path).pending_count() == 0
    assert any(p.name.startswith("outbox.json.corrupt-") for p in tmp_path.iterdir())


def test_full_outbox_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    store = Store(tmp_path, outbox_limit=3)
    store.record([scan(store), scan(store)])
    with pytest.raises(OutboxFull) as refused:
        store.record([scan(store), scan(store)])
    assert refused.value.pending == 2 and refused.value.limit == 3
    assert "Rien n'a été enregistré" in refused.value.message_fr
    assert store.pending_count() == 2
    store.record([scan(store)])
    with pytest.raises(OutboxFull):
        store.record([scan(store)])
    assert Store(tmp_path, outbox_limit=3).pending_count() == 3


def test_a_scan_id_is_recorded_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = scan(store)
    store.record([first])
    with pytest.raises(ValueError, match="already pending"):
        store.record([{**first, "seq": store.next_seq()}])
    with pytest.raises(ValueError, match="own non-empty"):
        store.record([{"seq": 9}])
    assert store.pending_count() == 1


def test_sequence_numbers_never_go_back_across_restarts(tmp_path: Path) -> None:
    store = Store(tmp_path)
    scans = [scan(store) for _ in range(3)]
    store.record(scans)
    store.file_results([{"id": s["id"], "status": "accepted"} for s in scans])  # outbox now empty
    assert store.pending_count() == 0
    assert Store(tmp_path).next_seq() == 4
    store = Store(tmp_path)
    store.next_seq()  # handed out, never recorded: skipped, never a problem
    store.record([scan(store)])
    assert Store(tmp_path).next_seq() == 6


def test_results_move_scans_to_the_month_history_once(tmp_path: Path, fake_time: FakeTime) -> None:
    store = Store(tmp_path, now=fake_time.now)
    a, b = scan(store, pass_number="1"), scan(store, pass_number="2")
    store.record([a, b])
    rows = store.file_results([{"id": a["id"], "status": "rejected", "reason": "already_used", "message": "Déjà"}])
    assert [(r["id"], r["status"], r["reason"], r["filed_month"]) for r in rows] == [
        (a["id"], "rejected", "already_used", "2026-11")
    ]
    assert [s["id"] for s in store.pending()] == [b["id"]]
    # A replayed result for a scan no longer pending changes nothing.
    assert store.file_results([{"id": a["id"], "status": "accepted"}]) == []
    assert [r["id"] for r in store.history("2026-11")] == [a["id"]]
    assert store.find_history(a["id"])["message"] == "Déjà"


def test_a_scan_filed_again_after_a_crash_is_not_duplicated_in_history(tmp_path: Path, fake_time: FakeTime) -> None:
    store = Store(tmp_path, now=fake_time.now)
    a = scan(store)
    store.record([a])
    row = {**a, "status": "accepted", "reason": "ok", "message": "", "synced_at": "x", "filed_month": "2026-11"}
    store._file("2026-11", [row])  # the crash came after the history write, before the outbox removal
    fake_time.advance(timedelta(days=12).total_seconds())  # and the month turned before the retry
    Store(tmp_path, now=fake_time.now).file_results([{"id": a["id"], "status": "accepted"}])
    assert [r["id"] for r in Store(tmp_path).iter_history()] == [a["id"]]


def test_history_is_kept_thirteen_months(tmp_path: Path) -> None:
    months = [months_before("2026-11", n) for n in range(16)]
    for month in months:
        (tmp_path / f"history-{month}.json").write_text('{"scans": {}}')
    store = Store(tmp_path)
    removed = store.prune_history(date(2026, 11, 20))
    assert removed == ["2025-08", "2025-09", "2025-10"]
    assert store.history_files()[0] == "2025-11" and len(store.history_files()) == 13


def test_state_snapshot_and_token(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.update_state(device_id="d-1", status="activated")
    store.update_state(status=None, point_id=3)
    store.save_snapshot({"cursor": "c1", "orders": []})
    store.save_snapshot({"cursor": "c2"})
    store.save_token("secret-token")
    again = Store(tmp_path)
    assert again.state() == {"device_id": "d-1", "point_id": 3}
    assert again.snapshot() == {"cursor": "c2"}
    assert again.token() == "secret-token"
    assert stat.S_IMODE(os.stat(tmp_path / "token").st_mode) == 0o600
    again.delete_token()
    assert Store(tmp_path).token() is None


def test_threads_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ids: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                s = scan(store)
                store.record([s])
                ids.append(str(s["id"]))
                store.pending_count()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reopened = Store(tmp_path).pending()
    assert sorted(s["id"] for s in reopened) == sorted(ids)
    assert len({s["seq"] for s in reopened}) == 200


def test_a_failed_write_does_not_leave_a_ghost_scan_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.record([scan(store)])

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("terminal.store.atomic_write_bytes", disk_full)
    with pytest.raises(OSError):
        store.record([scan(store)])
    monkeypatch.undo()
    assert store.pending_count() == 1
    assert Store(tmp_path).pending_count() == 1


def test_oldest_pending(tmp_path: Path) -> None:
    store = Store(tmp_path, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    assert store.oldest_pending() is None
    first = scan(store)
    store.record([scan(store) | {"seq": 50}, first])
    assert store.oldest_pending()["id"] == first["id"]


def test_a_read_only_store_touches_nothing(tmp_path: Path) -> None:
    Store(tmp_path).record([{"id": "a", "seq": 1}])
    in_progress = tmp_path / "outbox.json.x1y2.tmp"  # the running daemon's write
    in_progress.write_text("{")
    (tmp_path / "state.json").write_text("not json")
    looker = Store(tmp_path, readonly=True)
    assert [s["id"] for s in looker.pending()] == ["a"] and looker.state() == {}
    assert in_progress.exists() and (tmp_path / "state.json").read_text() == "not json"
    with pytest.raises(ReadOnly):
        looker.record([{"id": "b", "seq": 2}])
    with pytest.raises(ReadOnly):
        looker.save_token("t")
    assert Store(tmp_path).pending_count() == 1


def test_a_scan_claimed_for_sending_cannot_be_cancelled_even_after_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a, b = scan(store), scan(store)
    store.record([a, b])
    assert [s["id"] for s in store.claim(1)] == [a["id"]]
    with pytest.raises(KeyError):
        Store(tmp_path).cancel([a["id"]])
    store = Store(tmp_path)
    store.unclaim([a["id"]])  # the connection was refused: it never left
    assert [r["id"] for r in store.cancel([a["id"], b["id"]])] == [a["id"], b["id"]]
