"""Subprocess of the store's kill test: changes the outbox in every way until killed, and says what returned.

Prints ``ready`` once the store is open, then one line per call that returned (so is durable):

- ``recorded <id>`` after ``record()``;
- ``sent <id> <id>...`` after ``claim()`` marked scans sent;
- ``filed <id> <id>...`` after ``file_results()`` moved scans to history;
- ``cancelled <id>`` after ``cancel()`` of the scan just recorded (when it is not sent or filed already).

A tiny compaction threshold makes the journal compact often, between the other changes.
"""

from __future__ import annotations

import sys
import uuid

from terminal.store import Store


def main(data_dir: str) -> None:
    store = Store(data_dir, compact_min_bytes=2048)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        scan = {"id": str(uuid.uuid4()), "pass_number": f"{n:018d}", "seq": store.next_seq(), "pad": "x" * 100}
        store.record([scan])
        print("recorded", scan["id"], flush=True)
        if n % 3 == 0:
            claimed = [s["id"] for s in store.claim(2)]
            print("sent", *claimed, flush=True)
        if n % 4 == 0:
            oldest = [s["id"] for s in store.pending(2)]
            rows = store.file_results({"id": i, "status": "accepted", "reason": "ok", "message": ""} for i in oldest)
            print("filed", *(r["id"] for r in rows), flush=True)
        mine = store.get_pending(scan["id"])
        if n % 5 == 0 and mine and not mine.get("sent"):
            store.cancel([scan["id"]])
            print("cancelled", scan["id"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
