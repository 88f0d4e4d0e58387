"""Douchette reader: how late it reads while the terminal is busy (issue 10: the reader must never stall).

The figure: for each read, (time the reader's read() returned) - (the event's stamp), both on
CLOCK_MONOTONIC, as the reader's :class:`~terminal.scanner.stall.StallMeter` keeps it; p99.9 and max. The
kernel keeps ~64 events per reader, 21 reports at 1 kHz: a reader late by ~20 ms loses a scan. Target: p99.9
and max under 5 ms.

The terminal: the real daemon (``aptic-terminal run``, kiosk included) on a data directory with 10,000 scans
pending; a médiateur records one-pass entries through the kiosk's API in a loop (each rewrites the outbox) while
a page polls ``/api/state`` every 100 ms (tests/system/busy.py). The douchette: this machine has no
/dev/uinput, so scans come through the reader's ``event_pipe``, a FIFO of ``struct input_event`` records that
a process of this bench writes like the kernel would: one report (MSC_SCAN, EV_KEY, SYN) every millisecond, each stamped
with ``time.monotonic()`` as it is written, Alt+numpad pass numbers one after another.

Two rounds: the reader as threads of the daemon (``[scanner] process = false``: the design before issue 10)
and in its own process (the default).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from terminal.scanner.keymaps import KEY_ENTER  # noqa: E402
from terminal.scanner.reader import INPUT_EVENT, read_state  # noqa: E402
from terminal.scanner.stall import TARGET_S  # noqa: E402
from terminal.scanner.typist import events_for, key_transitions  # noqa: E402
from tests.system.busy import KioskLoad, pass_for, prepare  # noqa: E402

SECONDS = 20.0
PENDING = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def type_scans(fifo: Path, seconds: float) -> int:
    """Alt+numpad scans into ``fifo``, one report per ms stamped as written, for ``seconds``; returns the count.

    Run in a process of its own at a real-time priority when permitted (``--type``): it stands for the
    kernel, which stamps an event in the interrupt that brings it, so its own lateness must not count.
    """
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(20))
    fd = os.open(fifo, os.O_WRONLY)
    scans = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            transitions = [*key_transitions(pass_for(900_000 + scans), "us", "altnum"), (KEY_ENTER, 1), (KEY_ENTER, 0)]
            due = time.monotonic()
            for i in range(0, len(transitions)):
                due += 0.001
                while (left := due - time.monotonic()) > 0:
                    time.sleep(min(left, 0.0005))
                now = time.monotonic()
                sec, usec = divmod(round(now * 1e6), 1_000_000)
                os.write(fd, b"".join(INPUT_EVENT.pack(sec, usec, *ev[1:]) for ev in events_for([transitions[i]])))
            scans += 1
            time.sleep(0.05)
    finally:
        os.close(fd)
    return scans


def run_round(base: Path, process: bool) -> dict:
    data = base / ("process" if process else "thread")
    data.mkdir()
    fifo = data / "events"
    os.mkfifo(fifo)
    port = free_port()
    settings = prepare(data, PENDING, {"event_pipe": str(fifo), "input_dir": str(data / "no-input"),
                                       "process": process}, port=port)  # fmt: skip
    state = data / "scanner.json"
    env = {**os.environ, "APTIC_TERMINAL_CONFIG": str(settings), "APTIC_SCANNER_STATE": str(state),
           "GPIOZERO_PIN_FACTORY": "mock", "PYTHONPATH": str(REPO)}  # fmt: skip
    log = (data / "daemon.log").open("w+")
    daemon = subprocess.Popen([sys.executable, "-m", "terminal.cli", "run"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while "Terminal ready" not in (data / "daemon.log").read_text():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start: {(data / 'daemon.log').read_text()[-2000:]}")
            time.sleep(0.1)
        load = KioskLoad(port, [pass_for(n) for n in range(100_000)])
        load.start()
        load.wait_recorded(1, 120)
        started = time.monotonic()
        typist = subprocess.run([sys.executable, "-m", "bench.reader", "--type", str(fifo), str(SECONDS)], cwd=REPO,
                                capture_output=True, text=True, check=True)  # fmt: skip
        recorded = load.recorded
        load.stop()
        time.sleep(1.5)  # the reader refreshes its state file every second
        stall = (read_state(str(state)) or {}).get("stall") or {}
        text = (data / "daemon.log").read_text()
        discards = text.count("read discarded")
        priority = re.search(r"douchette reader running \(pid \d+, ([^)]*)\)", text)
        return {"stall": stall, "scans": int(typist.stdout), "priority": priority[1] if priority else "daemon's",
                "recorded": recorded, "polls": load.polls, "seconds": time.monotonic() - started,
                "discards": discards, "errors": load.errors[:3]}  # fmt: skip
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()


def main() -> None:
    if sys.argv[1:2] == ["--type"]:
        print(type_scans(Path(sys.argv[2]), float(sys.argv[3])))
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    target = TARGET_S * 1000
    with tempfile.TemporaryDirectory(prefix="aptic-bench-reader-") as tmp:
        for process in (False, True):
            name = "own process (default)" if process else "thread of the daemon (before issue 10)"
            r = run_round(Path(tmp), process)
            s = r["stall"]
            if not s:
                print(f"reader as {name}: no figures ({r})")
                continue
            print(f"reader as {name}, {r['seconds']:.0f} s busy ({PENDING:,} pending, {r['recorded']} entries "
                  f"recorded, {r['polls']} page polls, load {os.getloadavg()[0]:.2f}), {r['scans']} Alt+numpad "
                  f"scans at 1 report/ms, {s['count']} reads; reader priority {r['priority']}):")  # fmt: skip
            print(f"  read lateness p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, p99.9 {s['p999_ms']} ms, "
                  f"max {s['max_ms']} ms; {s['over_target']} reads later than {target:g} ms; "
                  f"target p99.9 and max < {target:g} ms: p99.9 x{target / max(s['p999_ms'], 0.001):.1f}, "
                  f"max x{target / max(s['max_ms'], 0.001):.2f}; scans discarded: {r['discards']}")  # fmt: skip
            if r["errors"]:
                print(f"  load errors: {r['errors']}")


if __name__ == "__main__":
    main()
