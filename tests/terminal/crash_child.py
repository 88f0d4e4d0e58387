"""Subprocess of the power-cut test: records scans through the Terminal until killed.

Prints ``ready`` once the store is open, then one line ``<scan id> <seq>`` after each ``submit()`` returns
(that is, once the scan is acknowledged as recorded). Every fifth scan, it also files a central result for
the oldest pending scan, so the outbox shrinks and history and state are written too; every third, it
claims the two oldest (the sync worker's ``sent`` mark); and when more than 12 are pending, it files all
but the newest two, which leaves the journal mostly dead lines and so compacts it (the threshold is tiny
here).
"""

from __future__ import annotations

import sys
from pathlib import Path

from terminal_fixtures import POINT, make_snapshot, pass_number

from terminal.clock import Clock
from terminal.store import Store
from terminal.terminal import Terminal


def main(data_dir: str) -> None:
    store = Store(data_dir, compact_min_bytes=4096)
    if store.snapshot() is None:
        store.save_snapshot(make_snapshot())
    terminal = Terminal(store, clock=Clock(sync_marker=Path(data_dir) / "no-marker"), point_id=POINT)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        # Each pass is new: one serial past the highest recorded so far.
        recorded = [*store.iter_history(), *store.pending()]
        serial = max((int(s["pass_number"][3:10]) for s in recorded), default=10_000) + 1
        terminal.start_entry(service=12)
        result = terminal.handle_code(pass_number(serial))
        assert result.added, result
        receipt = terminal.submit()
        print(receipt.scan_ids[0], store.get_pending(receipt.scan_ids[0])["seq"], flush=True)
        if n % 3 == 0:
            store.claim(2)
        if n % 5 == 0:
            oldest = store.oldest_pending()
            terminal.apply_results([{"id": oldest["id"], "status": "accepted", "reason": "ok", "message": ""}])
        if store.pending_count() > 12:  # counted on disk, not per run: a run under load records only a few
            terminal.apply_results({"id": s["id"], "status": "accepted"} for s in store.pending()[:-2])


if __name__ == "__main__":
    main(sys.argv[1])
