"""Subprocess of the power-cut test against the central: records scans while its sync worker pushes them.

Takes the data directory (already activated) and a JSON file of pass numbers to use in order. Prints
``ready``, then ``<scan id>`` after each ``submit()`` returns. Killed with SIGKILL at a random moment: while
recording, while filing results, while pulling the snapshot.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from terminal.clock import Clock
from terminal.store import Store
from terminal.sync import Backoff, CentralClient, SyncWorker
from terminal.terminal import Terminal


def main(data_dir: str, passes_file: str) -> None:
    passes = json.loads(Path(passes_file).read_text())
    store = Store(data_dir)
    terminal = Terminal(store, clock=Clock(sync_marker=Path(data_dir).parent / "synchronized"))
    client = CentralClient(store.state()["central_url"], token=store.token, timeout=(1.0, 5.0))
    worker = SyncWorker(terminal, client, batch_size=5, interval=0.05, backoff=Backoff(base=0.05, cap=0.2))
    worker.start()
    used = {s["pass_number"] for s in [*store.pending(), *store.iter_history()]}
    fresh = (p for p in passes if p not in used)
    print("ready", flush=True)
    for number in fresh:
        terminal.start_entry(service=12)
        result = terminal.handle_code(number)
        assert result.added, result.as_dict()
        receipt = terminal.submit()
        print(receipt.scan_ids[0], flush=True)
        time.sleep(0.001)  # a douchette is not a firehose: keeps a run to tens of scans on a fast machine
    print("exhausted", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
