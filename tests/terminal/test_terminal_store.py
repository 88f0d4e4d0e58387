"""The store: atomic files, quarantine of unreadable ones, the bounded outbox and its journal, history by month."""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import sys
import threading
import uuid
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from terminal_fixtures import FakeTime

from terminal.store import OutboxFull, ReadOnly, Store, months_before


def scan(store: Store, **fields: object) -> dict[str, object]:
    return {"id": str(uuid.uuid4()), "pass_number": "126000000101234567", "seq": store.next_seq(), **fields}


def journal_lines(directory: Path) -> list[dict[str, object]]:
    """The outbox journal's changes, read by the format's definition: ``<crc32 hex> <json>\\n`` per line."""
    changes = []
    for line in (directory / "outbox.journal").read_bytes().split(b"\n")[:-1]:
        crc, body = line.split(b" ", 1)
        assert len(crc) == 8 and int(crc, 16) == zlib.crc32(body), line
        changes.append(json.loads(body))
    return changes


def test_recorded_scans_are_on_disk_when_record_returns(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first, second = scan(store), scan(store)
    store.record([first, second])
    # One entry's scans are one line of the journal: all of them or none after a power cut.
    assert journal_lines(tmp_path) == [{"op": "add", "scans": [first, second]}]
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
    with caplog.at_level(logging.ERROR, logger="terminal"):
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

    monkeypatch.setattr("terminal.outbox._sync", disk_full)
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


# -- the outbox journal ----------------------------------------------------------------------------------


def record_one(store: Store, **fields: object) -> dict[str, object]:
    s = scan(store, **fields)
    store.record([s])
    return s


@pytest.mark.parametrize("tear", ["half", "one byte", "all but the newline", "bad checksum"])
def test_a_torn_last_write_is_ignored_and_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  tear: str) -> None:  # fmt: skip
    store = Store(tmp_path)
    a, b = record_one(store), record_one(store)
    journal = tmp_path / "outbox.journal"
    whole = journal.read_bytes()
    record_one(store)  # the write a power cut tears
    last = journal.read_bytes()[len(whole) :]
    store.close()
    torn = {
        "half": last[: len(last) // 2],
        "one byte": last[:1],
        "all but the newline": last[:-1],
        "bad checksum": last[:30] + bytes([last[30] ^ 0x01]) + last[31:],
    }[tear]
    journal.write_bytes(whole + torn)
    with caplog.at_level(logging.WARNING, logger="terminal"):
        store = Store(tmp_path)
    assert [s["id"] for s in store.pending()] == [a["id"], b["id"]]
    assert "cut short" in caplog.text and not list(tmp_path.glob("*.corrupt-*"))
    assert journal.read_bytes() == whole, "the torn line must be cut off before anything is appended after it"
    d = record_one(store)
    assert [s["id"] for s in Store(tmp_path).pending()] == [a["id"], b["id"], d["id"]]


def test_a_read_only_store_reads_a_torn_journal_without_cutting_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a = record_one(store)
    journal = tmp_path / "outbox.journal"
    journal.write_bytes(journal.read_bytes() + b'0badc0de {"op":"add","sc')  # the daemon mid-write
    before = journal.read_bytes()
    assert [s["id"] for s in Store(tmp_path, readonly=True).pending()] == [a["id"]]
    assert journal.read_bytes() == before


def test_damage_before_the_last_line_is_copied_aside_and_the_readable_lines_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path)
    a, _b, c = record_one(store), record_one(store), record_one(store)
    store.close()
    journal = tmp_path / "outbox.journal"
    damaged = bytearray(journal.read_bytes())
    second_line = damaged.index(b"\n") + 1
    damaged[second_line + 40] ^= 0x20  # a bit flipped on the card, inside b's line
    journal.write_bytes(bytes(damaged))
    with caplog.at_level(logging.ERROR, logger="terminal"):
        store = Store(tmp_path)
    assert [s["id"] for s in store.pending()] == [a["id"], c["id"]]
    assert "unreadable lines [2]" in caplog.text
    [copy] = tmp_path.glob("outbox.journal.corrupt-*")
    assert copy.read_bytes() == bytes(damaged), "the damaged bytes are kept for a human"
    assert [len(change["scans"]) for change in journal_lines(tmp_path)] == [1, 1], "rewritten clean"
    assert [s["id"] for s in Store(tmp_path).pending()] == [a["id"], c["id"]]


def test_a_failed_append_leaves_no_partial_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    a = record_one(store)
    journal = tmp_path / "outbox.journal"
    before = journal.read_bytes()

    def half_then_disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("terminal.outbox._write_all", half_then_disk_full)
    with pytest.raises(OSError):
        store.record([scan(store)])
    monkeypatch.undo()
    assert journal.read_bytes() == before and store.pending_count() == 1
    b = record_one(store)
    assert [s["id"] for s in Store(tmp_path).pending()] == [a["id"], b["id"]]


def test_claims_cancellations_and_results_replay_after_a_restart(tmp_path: Path, fake_time: FakeTime) -> None:
    store = Store(tmp_path, now=fake_time.now)
    a, b, c, d = (record_one(store) for _ in range(4))
    assert [s["id"] for s in store.claim(2)] == [a["id"], b["id"]]
    store.unclaim([b["id"]])
    store.cancel([c["id"]])
    store.file_results([{"id": a["id"], "status": "accepted"}])
    assert [change["op"] for change in journal_lines(tmp_path)] == ["add"] * 4 + ["sent", "unsent", "done", "done"]
    again = Store(tmp_path, now=fake_time.now)
    assert again.pending() == store.pending() == [b, d]
    assert {r["id"]: r["status"] for r in again.iter_history()} == {c["id"]: "cancelled", a["id"]: "accepted"}


def run_store_child(data_dir: Path, rng: random.Random) -> list[list[str]]:
    from terminal_fixtures import run_and_kill

    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent.parent)])}
    command = [sys.executable, str(here / "crash_store_child.py"), str(data_dir)]
    lines = run_and_kill(command, env=env, after=rng.uniform(0, 0.15), log=data_dir.parent / "child-stderr.txt")
    return [line.split() for line in lines]


def test_kill_9_between_records_claims_cancellations_results_and_compactions(tmp_path: Path) -> None:
    from outbox_check import assert_journal_whole

    rng = random.Random(20261123)
    data_dir = tmp_path / "data"
    recorded: list[str] = []
    sent: set[str] = set()
    filed: set[str] = set()
    cancelled: set[str] = set()
    kills = compactions = 0
    while kills < 25 or compactions < 5 or len(recorded) < 150:
        assert kills < 200, f"{compactions} compactions and {len(recorded)} scans after {kills} kills"
        kills += 1
        inode = (data_dir / "outbox.journal").stat().st_ino if data_dir.exists() else None
        for word, *ids in run_store_child(data_dir, rng):
            {"recorded": recorded.extend, "sent": sent.update, "filed": filed.update,
             "cancelled": cancelled.update}[word](ids)  # fmt: skip
        assert_journal_whole(data_dir)  # at most a torn last line
        compactions += (data_dir / "outbox.journal").stat().st_ino != inode
    assert filed and cancelled and sent

    store = Store(data_dir)
    pending = {s["id"]: s for s in store.pending()}
    history = [(r["id"], r["status"]) for r in store.iter_history()]
    in_history = dict(history)
    assert len(in_history) == len(history), "a scan was filed twice"
    assert not set(pending) & set(in_history), "a scan is both pending and filed"
    assert all(i in pending or i in in_history for i in recorded), "an acknowledged scan was lost"
    assert all(in_history[i] == "accepted" for i in filed) and all(in_history[i] == "cancelled" for i in cancelled)
    assert all(pending[i].get("sent") for i in sent if i in pending), "a sent mark was lost"
    assert len({s["seq"] for s in pending.values()} | {r["seq"] for r in store.iter_history()}) == len(pending) + len(
        history
    ), "a sequence number was reused"


def test_compaction_keeps_every_pending_scan_and_its_sent_mark(tmp_path: Path, fake_time: FakeTime) -> None:
    store = Store(tmp_path, now=fake_time.now, compact_min_bytes=1024)
    scans = [record_one(store) for _ in range(40)]
    store.claim(15)
    store.unclaim([s["id"] for s in scans[10:15]])
    journal = tmp_path / "outbox.journal"
    inode, size = journal.stat().st_ino, journal.stat().st_size
    done = scans[5:30]  # some sent, some not
    kept = [s for s in store.pending() if s not in [{**d, "sent": True} for d in done] and s not in done]
    assert len(kept) == 15 and sum(bool(s.get("sent")) for s in kept) == 5
    store.file_results({"id": s["id"], "status": "accepted"} for s in done)
    assert journal.stat().st_ino != inode and journal.stat().st_size < size / 2, "it was not compacted"
    assert [len(change["scans"]) for change in journal_lines(tmp_path)] == [1] * 15
    assert store.pending() == kept
    assert Store(tmp_path, now=fake_time.now).pending() == kept
    assert sorted(r["id"] for r in store.iter_history()) == sorted(s["id"] for s in done)


def test_recording_appends_the_same_bytes_with_0_or_10000_scans_pending(tmp_path: Path) -> None:
    empty, full = Store(tmp_path / "empty"), Store(tmp_path / "full")
    full.record([{"id": str(uuid.uuid4()), "pass_number": f"{n:018d}", "seq": n + 1} for n in range(10_000)])
    grown = {}
    for name, store in (("empty", empty), ("full", full)):
        journal = store.directory / "outbox.journal"
        inode, before = journal.stat().st_ino, journal.read_bytes()
        store.record([{"id": str(uuid.uuid4()), "pass_number": "126000000101234567", "seq": 99_999}])
        after = journal.read_bytes()
        assert journal.stat().st_ino == inode and after.startswith(before), "recording rewrote the journal"
        grown[name] = len(after) - len(before)
    assert grown["empty"] == grown["full"] < 200


def test_an_outbox_json_from_before_the_journal_is_migrated(tmp_path: Path) -> None:
    a = {"id": str(uuid.uuid4()), "pass_number": "126000000101234567", "seq": 7, "sent": True}
    b = {"id": str(uuid.uuid4()), "pass_number": "126000000201234567", "seq": 8}
    old = json.dumps({"scans": {"1": a, "2": b}})  # TinyDB's format, as the terminal wrote it until now
    (tmp_path / "outbox.json").write_text(old)
    (tmp_path / "state.json").write_text(json.dumps({"state": {"1": {"last_seq": 6, "device_id": "d-1"}}}))
    looker = Store(tmp_path, readonly=True)  # ``aptic-terminal status`` before the daemon restarted
    assert looker.pending() == [a, b] and (tmp_path / "outbox.json").read_text() == old
    assert not (tmp_path / "outbox.journal").exists()

    store = Store(tmp_path)
    assert store.pending() == [a, b] and store.next_seq() == 9
    assert not (tmp_path / "outbox.json").exists()
    assert journal_lines(tmp_path) == [{"op": "add", "scans": [a]}, {"op": "add", "scans": [b]}]
    with pytest.raises(KeyError):
        store.cancel([a["id"]])  # sent before the update: still not cancellable
    store.close()
    # A power cut between the journal's write and outbox.json's deletion: the next start finds both.
    (tmp_path / "outbox.json").write_text(old)
    assert Store(tmp_path).pending() == [a, b]
    assert Store(tmp_path).pending() == [a, b] and not (tmp_path / "outbox.json").exists()


# -- history ---------------------------------------------------------------------------------------------


def test_history_reads_are_cached_and_a_write_shows_at_once(tmp_path: Path, fake_time: FakeTime,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import terminal.store

    store = Store(tmp_path, now=fake_time.now)
    a, b, c = record_one(store), record_one(store), record_one(store)
    store.file_results([{"id": a["id"], "status": "accepted"}])
    reads: list[Path] = []
    real_open_db = terminal.store.open_db

    def counting_open_db(path: Path, **kwargs: bool) -> object:
        reads.append(Path(path))
        return real_open_db(path, **kwargs)

    monkeypatch.setattr("terminal.store.open_db", counting_open_db)
    assert [r["id"] for r in store.history("2026-11")] == [a["id"]]
    store.history("2026-11")[0]["status"] = "changed by a caller"
    assert [r["status"] for r in store.history("2026-11")] == ["accepted"]
    assert len(reads) == 1, "the month was read again although nothing wrote it"
    store.file_results([{"id": b["id"], "status": "rejected"}])
    assert [(r["id"], r["status"]) for r in store.history("2026-11")] == [(a["id"], "accepted"), (b["id"], "rejected")]
    store.cancel([c["id"]])
    assert [r["status"] for r in store.history("2026-11")] == ["accepted", "rejected", "cancelled"]
    # A read-only store (another process) never caches: the daemon writes the files.
    looker = Store(tmp_path, readonly=True)
    looker.history("2026-11")
    store.file_results([])  # nothing
    assert len(looker.history("2026-11")) == 3


def test_a_cancellation_cut_short_by_a_power_cut_is_finished_at_start(tmp_path: Path, fake_time: FakeTime) -> None:
    store = Store(tmp_path, now=fake_time.now)
    a, b = record_one(store), record_one(store)
    row = {**b, "status": "cancelled", "reason": None, "message": "", "synced_at": None, "filed_month": "2026-11"}
    store._file("2026-11", [row])  # the cut came after the history write, before the outbox's
    store.close()
    again = Store(tmp_path, now=fake_time.now)
    assert [s["id"] for s in again.pending()] == [a["id"]], "a cancelled scan would be sent to the central"
    assert [r["status"] for r in again.iter_history()] == ["cancelled"]
    assert again.next_seq() == 3, "b's sequence number would be handed out again"


@pytest.mark.parametrize("module", ["terminal.outbox", "terminal.durable"])
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    failures, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0 and failures == 0
