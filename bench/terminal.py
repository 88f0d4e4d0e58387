"""Terminal store benchmarks (issues 5 and 10): durable record time against history and outbox size,
start-up, memory.

Figures printed, no asserts (``make bench``). Targets:

- durable record of one scan (``Terminal.submit`` of a one-pass entry, fsync'd): the median with 50,000
  scans in history over the median with none must stay under 1.5;
- the same with 10,000 scans pending in the outbox (a week offline) over none pending: at most 1.5 (the
  outbox journal appends one line per record, whatever it holds);
- start-up to ready (a new process opening the store and building the Terminal): under 1.5 s;
- daemon resident memory after 10,000 scans: under 80 MB.

- catch-up: 10,000 queued scans pushed to the real central on loopback (``aptic-central serve``, SQLite)
  by the sync worker, batches of 500, results filed in history: under 20 s.

Files go to a temporary directory on the machine's disk (``$TMPDIR``), so fsync
costs what it costs there: a Pi's SD card is slower.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from terminal.clock import Clock
from terminal.store import Store, months_before, open_db
from terminal.terminal import Terminal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "terminal"))

from terminal_fixtures import POINT, make_snapshot, pass_number  # noqa: E402

RECORDS = 200
HISTORY_SIZES = (0, 10_000, 50_000)
PENDING_SIZES = (0, 10_000)
CURRENT_MONTH = "2026-11"


def history_row(n: int, month: str) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "entry_id": str(uuid.uuid4()),
        "pass_number": pass_number(200_000 + n // 10, n % 10 + 1),
        "service": 12,
        "point": POINT,
        "organisation_id": 1,
        "place_name": "Bus numérique",
        "scanned_at": f"{month}-10T10:00:00.000+01:00",
        "clock_synced": True,
        "boot_id": "6a0d7a2c-0000-4000-8000-000000000001",
        "monotonic": 1000.0 + n,
        "seq": n + 1,
        "submitted_at": f"{month}-10T10:00:05+01:00",
        "submitted_monotonic": 1005.0 + n,
        "offline_reason": "ok",
        "offline_message": "Pass valable",
        "device": "douchette",
        "status": "accepted",
        "reason": "ok",
        "message": "Accepté",
        "synced_at": f"{month}-10T10:05:00+01:00",
        "filed_month": month,
    }


def fill(directory: Path, history: int, pending: int = 0) -> None:
    """A data directory with ``history`` synced scans over 12 months and ``pending`` scans in the outbox."""
    store = Store(directory)
    store.save_snapshot(make_snapshot())
    store.update_state(point_id=POINT, last_seq=history)
    months = [months_before(CURRENT_MONTH, m) for m in range(12)]
    for i, month in enumerate(months):
        rows = [history_row(n, month) for n in range(i, history, len(months))]
        if rows:
            db = open_db(directory / f"history-{month}.json")
            db.table("scans").insert_multiple(rows)
            db.close()
    if pending:
        store.record([{**history_row(history + n, CURRENT_MONTH), "seq": history + n + 1} for n in range(pending)])
    store.close()


def record_times(directories: list[Path], count: int = RECORDS) -> list[list[float]]:
    """Seconds per ``submit()`` of a one-pass entry, ``count`` times in each directory.

    The directories take turns, one record each, so that a disk that is slower for a while (other work on
    the machine) weighs on every series alike and the ratio compares like with like.
    """
    terminals = [Terminal(Store(d), clock=Clock()) for d in directories]
    times: list[list[float]] = [[] for _ in directories]
    for n in range(count):
        for terminal, series in zip(terminals, times, strict=True):
            terminal.start_entry(service=12)
            terminal.handle_code(pass_number(300_000 + n))
            started = time.perf_counter()
            terminal.submit()
            series.append(time.perf_counter() - started)
    for terminal in terminals:
        terminal.store.close()
    return times


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def bench_record(base: Path) -> None:
    print(f"durable record of one scan (Terminal.submit, {RECORDS} times; target: 50k/0 ratio < 1.5)")
    directories = []
    for size in HISTORY_SIZES:
        directories.append(base / f"record-{size}")
        fill(directories[-1], size)
    medians = {}
    for size, times in zip(HISTORY_SIZES, record_times(directories), strict=True):
        medians[size] = statistics.median(times)
        print(f"  history {size:>6}: median {medians[size] * 1000:6.2f} ms   p99 {p99(times) * 1000:6.2f} ms")
    ratio = medians[HISTORY_SIZES[-1]] / medians[HISTORY_SIZES[0]]
    verdict = "OK" if ratio < 1.5 else "OVER TARGET"
    print(f"  ratio {HISTORY_SIZES[-1]}/{HISTORY_SIZES[0]}: {ratio:.2f} ({verdict})")

    print(f"durable record of one scan with scans waiting in the outbox ({RECORDS} times; target: "
          f"{PENDING_SIZES[-1]:,}/{PENDING_SIZES[0]} pending ratio <= 1.5)")  # fmt: skip
    pending_dirs = []
    for pending in PENDING_SIZES:
        pending_dirs.append(base / f"pending-{pending}")
        fill(pending_dirs[-1], 0, pending=pending)
    medians = {}
    for pending, times in zip(PENDING_SIZES, record_times(pending_dirs), strict=True):
        medians[pending] = statistics.median(times)
        print(f"  pending {pending:>6}: median {medians[pending] * 1000:6.2f} ms   p99 {p99(times) * 1000:6.2f} ms")
    ratio = medians[PENDING_SIZES[-1]] / medians[PENDING_SIZES[0]]
    verdict = "OK" if ratio <= 1.5 else "OVER TARGET"
    print(f"  ratio {PENDING_SIZES[-1]}/{PENDING_SIZES[0]}: {ratio:.2f} ({verdict})")


STARTUP = textwrap.dedent(
    """
    import sys, time
    from terminal.store import Store
    from terminal.terminal import Terminal
    store = Store(sys.argv[1])
    terminal = Terminal(store)
    assert terminal.place is not None
    print("ready", flush=True)
    """
)

MEMORY = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from terminal_fixtures import pass_number
    from terminal.store import Store
    from terminal.terminal import Terminal
    terminal = Terminal(Store(sys.argv[1]))
    for n in range(10_000):
        terminal.start_entry(service=12)
        terminal.handle_code(pass_number(400_000 + n))
        terminal.submit()
        if terminal.store.pending_count() >= 500:  # what the sync worker does when online
            terminal.apply_results({"id": s["id"], "status": "accepted", "reason": "ok", "message": ""}
                                   for s in terminal.store.pending())
    rss = [line for line in open("/proc/self/status") if line.startswith("VmRSS")][0].split()[1]
    print(int(rss) / 1024)
    """
)


def bench_startup(base: Path) -> None:
    directory = base / "startup"
    fill(directory, 10_000, pending=1_000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", STARTUP, str(directory)], capture_output=True, text=True, env=env)
        runs.append(time.perf_counter() - started)
        assert out.stdout.strip() == "ready", out.stderr
    print(f"start-up to ready (new process, 10,000 in history, 1,000 pending; target < 1.5 s): "
          f"median {statistics.median(runs):.2f} s, max {max(runs):.2f} s")  # fmt: skip
    daemon = []
    for _ in range(3):
        daemon.append(daemon_ready_time(directory, base / "notify"))
    print(f"  whole daemon (aptic-terminal run --no-scanner: store, Terminal, LEDs, kiosk) to READY=1: "
          f"median {statistics.median(daemon):.2f} s")  # fmt: skip


def daemon_ready_time(directory: Path, notify_path: Path) -> float:
    """Seconds from starting ``aptic-terminal run`` to its READY=1 to systemd; then SIGTERM."""
    from central_server import free_port

    notify_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        env = {**os.environ, "PYTHONPATH": str(REPO), "APTIC_TERMINAL_DATA_DIR": str(directory),
               "APTIC_TERMINAL_CONFIG": "/nonexistent", "APTIC_TERMINAL_KIOSK_PORT": str(free_port()),
               "NOTIFY_SOCKET": str(notify_path), "GPIOZERO_PIN_FACTORY": "mock"}  # fmt: skip
        started = time.perf_counter()
        daemon = subprocess.Popen([sys.executable, "-m", "terminal.cli", "run", "--no-scanner"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            assert notify.recv(64) == b"READY=1"
            took = time.perf_counter() - started
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(15)
    return took


def bench_memory(base: Path) -> None:
    directory = base / "memory"
    fill(directory, 0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", MEMORY, str(directory), str(REPO / "tests" / "terminal")],
                         capture_output=True, text=True, env=env, check=True)  # fmt: skip
    took = time.perf_counter() - started
    print(f"resident memory after 10,000 scans recorded and filed (target < 80 MB): {float(out.stdout):.1f} MB "
          f"({took:.0f} s, {took / 10_000 * 1000:.1f} ms per scan including the simulated filing)")  # fmt: skip


def bench_catch_up(base: Path) -> None:
    from central_server import Central

    from provisioning.activation import activate
    from terminal.sync import CentralClient, SyncWorker

    central = Central(base / "central")
    central.directory.mkdir()
    central.start()
    try:
        organisation = central.add_organisation("Bench", "99999999999999")
        central.add_point(organisation, "Bus numérique")
        kit, code = central.add_kit(organisation)
        passes = central.issue(10_000, "--territory", "33")[::5]  # one pass per carnet: all accepted
        terminal = Terminal(Store(base / "catch-up"))
        activate(terminal, central.url, kit, code)
        place = terminal.place
        assert place is not None
        store = terminal.store
        now = Clock().now().isoformat(timespec="milliseconds")
        store.record(
            [
                {"id": str(uuid.uuid4()), "entry_id": str(uuid.uuid4()), "pass_number": number, "service": 12,
                 "point": place.point_id, "organisation_id": organisation, "scanned_at": now, "clock_synced": True,
                 "seq": store.next_seq(), "boot_id": "bench", "monotonic": 1.0, "submitted_at": now,
                 "offline_reason": "ok"}
                for number in passes
            ]
        )  # fmt: skip
        worker = SyncWorker(terminal, CentralClient(central.url, token=store.token))
        started = time.perf_counter()
        report = worker.sync_once()
        took = time.perf_counter() - started
        verdict = "OK" if took < 20 and report.pushed == 10_000 and report.rejected == 0 else "OVER TARGET"
        print(f"catch-up: {report.pushed} queued scans pushed to the central on loopback and filed in "
              f"{took:.1f} s, {report.rejected} rejected (target < 20 s: {verdict})")  # fmt: skip
    finally:
        central.stop()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="aptic-bench-") as tmp:
        base = Path(tmp)
        bench_record(base)
        bench_startup(base)
        bench_memory(base)
        bench_catch_up(base)


if __name__ == "__main__":
    main()
