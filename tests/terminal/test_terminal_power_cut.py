"""Power cuts: a process recording scans is killed with SIGKILL at random moments, many times.

Every scan whose ``submit()`` returned before a kill must survive, exactly once, and no store file may ever
be unreadable (a quarantined file would mean scans lost); the outbox journal may end with one line cut
short, nothing worse. The kills fall between records, claims, filings and compactions of the journal.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

from outbox_check import assert_journal_whole
from terminal_fixtures import run_and_kill

from terminal.store import Store
from terminal.terminal import Terminal

HERE = Path(__file__).parent
MIN_KILLS = 50
MIN_SCANS = 300
MIN_COMPACTIONS = 5


def run_once(data_dir: Path, rng: random.Random) -> list[tuple[str, int]]:
    """Start the recorder, kill it with SIGKILL after a random time, return the scans it acknowledged."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent.parent)])}
    command = [sys.executable, str(HERE / "crash_child.py"), str(data_dir)]
    lines = run_and_kill(command, env=env, after=rng.uniform(0, 0.12), log=data_dir.parent / "child-stderr.txt")
    return [(line.split()[0], int(line.split()[1])) for line in lines]


def assert_every_file_readable(data_dir: Path) -> None:
    assert_journal_whole(data_dir)
    for path in data_dir.iterdir():
        if path.suffix == ".json":
            json.loads(path.read_bytes())


def test_scans_acknowledged_before_a_kill_survive_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    data_dir = tmp_path / "data"
    acknowledged: list[tuple[str, int]] = []
    kills = compactions = 0
    while kills < MIN_KILLS or len(acknowledged) < MIN_SCANS or compactions < MIN_COMPACTIONS:
        journal = data_dir / "outbox.journal"
        inode = journal.stat().st_ino if journal.exists() else None
        acknowledged += run_once(data_dir, rng)
        kills += 1
        compactions += journal.stat().st_ino != inode  # a compaction replaces the file
        assert_every_file_readable(data_dir)
        assert kills < 400, f"{len(acknowledged)} scans acknowledged and {compactions} compactions after {kills} kills"

    store = Store(data_dir)
    assert not list(data_dir.glob("*.tmp")), "orphan temporary files were not swept"
    assert_every_file_readable(data_dir)
    # Before sync: each acknowledged scan is pending or filed, and nowhere twice in one place.
    pending = Counter(s["id"] for s in store.pending())
    filed = Counter(r["id"] for r in store.iter_history())
    assert max(pending.values(), default=1) == 1 and max(filed.values(), default=1) == 1
    missing = [scan_id for scan_id, _ in acknowledged if scan_id not in pending and scan_id not in filed]
    assert not missing, f"{len(missing)} acknowledged scans lost"

    # Sync everything left: each acknowledged scan is then in history exactly once, with its own seq.
    Terminal(store).apply_results({"id": i, "status": "accepted"} for i in pending)
    assert store.pending_count() == 0
    rows = list(store.iter_history())
    counts = Counter(r["id"] for r in rows)
    assert all(counts[scan_id] == 1 for scan_id, _ in acknowledged)
    seqs = [r["seq"] for r in rows]
    assert len(set(seqs)) == len(seqs), "a sequence number was reused"
    by_id = {r["id"]: r["seq"] for r in rows}
    assert all(by_id[scan_id] == seq for scan_id, seq in acknowledged)
    passes = [r["pass_number"] for r in rows]
    assert len(set(passes)) == len(passes)
