"""The reader process as the daemon runs it: reads handed over, devices and lateness reported, restarted when
it dies, gone when the daemon dies, and ``scanner list`` showing its virtual douchette."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aptic.passnumber import build, hmac_authenticator
from terminal.scanner.keymaps import KEY_ENTER
from terminal.scanner.process import ReaderProcess, reader_args
from terminal.scanner.reader import INPUT_EVENT, ScanRead, read_state
from terminal.scanner.typist import events_for, key_transitions
from terminal.scanner.virtual import send

from .fakekernel import Collector

PASS = build(2026, 1234, 7, hmac_authenticator(b"test"))
ROOT = Path(__file__).resolve().parents[2]


def wait_until(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    return {"sock": str(tmp_path / "v.sock"), "state": str(tmp_path / "state.json"), "inputs": str(tmp_path / "in")}


@pytest.fixture
def reader(paths: dict[str, str]) -> Iterator[tuple[ReaderProcess, Collector]]:
    got = Collector()
    args = ["--input-dir", paths["inputs"], "--state", paths["state"], "--virtual", paths["sock"],
            "--virtual-layout", "fr"]  # fmt: skip
    process = ReaderProcess(got, got, args, restart_delay=0.2)
    process.start()
    yield process, got
    process.stop()


def test_reads_devices_and_lateness_come_from_the_process(reader, paths) -> None:
    process, got = reader
    assert process.pid is not None and process.pid != os.getpid()
    assert process.priority  # what it obtained: SCHED_RR, a nice value, or normal priority
    send(PASS, paths["sock"])
    [read] = got.wait(1, timeout=10)
    assert (read.device, read.text, read.layout) == ("virtual", PASS, "fr")
    assert isinstance(read, ScanRead) and abs(read.monotonic - time.monotonic()) < 5
    wait_until(lambda: process.devices(), what="the device list")
    [virtual] = process.devices()
    assert virtual["virtual"] and virtual["grabbed"] and virtual["why"] == "virtual douchette"
    wait_until(lambda: process.stall().get("count", 0) > 0, what="the stall figures")
    stall = process.stall()
    assert stall["max_ms"] >= stall["p999_ms"] >= 0
    # The state file is the process's, and carries the same figures for `scanner list`.
    wait_until(lambda: (read_state(paths["state"]) or {}).get("stall", {}).get("count", 0) > 0, what="state")
    assert read_state(paths["state"])["pid"] == process.pid


def test_a_killed_reader_process_is_started_again(reader, paths) -> None:
    process, got = reader
    first = process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: process.pid not in (None, first) and process.devices(), what="a new reader process")
    assert process.restarts == 1
    send(PASS, paths["sock"])
    assert got.wait(1, timeout=10)[-1].text == PASS


def test_scanner_list_shows_the_running_virtual_douchette(reader, paths) -> None:
    process, _ = reader
    wait_until(lambda: read_state(paths["state"]) is not None, what="the state file")
    out = subprocess.run([sys.executable, "-m", "terminal.cli", "scanner", "list", "--json", "--input-dir",
                          paths["inputs"], "--state", paths["state"]], capture_output=True, text=True, cwd=ROOT,
                         timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    [entry] = doc["devices"]
    assert entry["douchette"] and entry["virtual"] and entry["reader_pid"] == process.pid
    assert doc["reader"]["pid"] == process.pid
    text = subprocess.run([sys.executable, "-m", "terminal.cli", "scanner", "list", "--input-dir",
                           paths["inputs"], "--state", paths["state"]], capture_output=True, text=True, cwd=ROOT,
                          timeout=30)  # fmt: skip
    assert "virtual douchette" in text.stdout, text.stdout


def test_kernel_like_events_from_a_fifo_are_read_and_timed(tmp_path: Path) -> None:
    """The bench's source: another program writes ``struct input_event`` records stamped on CLOCK_MONOTONIC."""
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    got = Collector()
    process = ReaderProcess(got, got, ["--input-dir", str(tmp_path / "in"), "--event-pipe", str(fifo)])
    process.start()
    try:
        fd = os.open(fifo, os.O_WRONLY)
        events = events_for([*key_transitions(PASS, "us", "altnum"), (KEY_ENTER, 1), (KEY_ENTER, 0)], interval=0.002,
                            start=time.monotonic())  # fmt: skip
        for t, *rest in events:  # one report per millisecond, as a douchette
            while time.monotonic() < t:
                time.sleep(0.0002)
            sec, usec = divmod(round(t * 1e6), 1_000_000)
            os.write(fd, INPUT_EVENT.pack(sec, usec, *rest))
        [read] = got.wait(1, timeout=10)
        assert (read.device, read.text, read.layout) == ("event-pipe", PASS, "altnum")
        wait_until(lambda: process.stall().get("count", 0) > 50, what="the stall figures")
        os.close(fd)
    finally:
        process.stop()


DAEMON = textwrap.dedent(
    """
    import sys, time
    from terminal.scanner.process import ReaderProcess
    reader = ReaderProcess(print, print, ["--input-dir", sys.argv[1], "--virtual", sys.argv[2]])
    reader.start()
    print("reader", reader.pid, flush=True)
    time.sleep(600)
    """
)


def test_the_reader_process_exits_when_the_daemon_dies(paths) -> None:
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, paths["inputs"], paths["sock"]], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = daemon.stdout.readline()
        assert line.startswith("reader "), line
        child = int(line.split()[1])
        os.kill(daemon.pid, signal.SIGKILL)  # no clean-up at all: only the socket closing tells the child
        daemon.wait(10)
        wait_until(lambda: not _alive(child), timeout=10, what="the orphaned reader to exit")
        assert not os.path.exists(paths["sock"])  # it stopped cleanly: the virtual douchette is unplugged
    finally:
        if daemon.poll() is None:
            daemon.kill()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return status != "Z"


def test_settings_become_reader_options() -> None:
    args = reader_args({"devices": ["0627:0001=fr", "Scanner"], "heuristics": False, "rt_priority": 0})
    assert args == ["--device", "0627:0001=fr", "--device", "Scanner", "--no-heuristics", "--rt-priority", "0"]
    with pytest.raises(ValueError, match="unknown \\[scanner\\] setting devise"):
        reader_args({"devise": ["x"]})
