"""Runs *inside* the QEMU guest (see qemu.py): the real ``aptic-terminal scanner listen`` against a real kernel.

The host types on the guest's USB keyboard when this script prints a ``READY-...`` marker; this script
reports what the reader wrote with ``GUEST: LINE ...`` lines and a final ``GUEST: RESULT {json}``. The host
test (test_scanner_qemu.py) makes the assertions. Steps:

1. ``scanner list`` sees the keyboard and does not call it a douchette; start reader A (``scanner listen
   --device 0627:0001``: QEMU's keyboard configured as a douchette), wait until it has grabbed the keyboard;
   start reader B (the same command) and a plain evdev reader that does not grab (a "focused page"); B must
   report the device busy; ``scanner list --device ...`` shows it grabbed;
2. READY-SCAN: the host types a pass number as a US scanner, then one as an AZERTY scanner; READY-TIMEOUT:
   a few digits and no Enter, which A must discard after its idle timeout with no further event;
3. stop B and the spy, report what they got (nothing);
4. READY-UNPLUG: the host types half a pass number and unplugs the keyboard (``device_del``); A must
   discard the partial read as ``unplugged``, stay alive, and use no CPU;
5. READY-REPLUG: the host plugs a keyboard back (``device_add``); A must grab it within 2 s of its node
   appearing; READY-SCAN3: the host types a third pass number;
6. READY-STALL: A is stopped (SIGSTOP) while the host types a whole scan, more than the kernel buffers: A,
   continued, must discard it (``syn_dropped``), deliver nothing garbled, and read the next scan
   (READY-AFTER-STALL);
7. A is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import evdev  # noqa: E402

CLI = [sys.executable, "-m", "terminal.cli", "-v", "scanner", "listen", "--device", "0627:0001",
       "--idle-timeout", "1.0", "--no-heuristics", "--times"]  # fmt: skip
RESULT: dict[str, object] = {}


def say(msg: str) -> None:
    print(f"GUEST: {msg}", flush=True)


class Reader:
    """A ``scanner listen`` process, its stdout lines and its stderr log lines, with arrival times."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(CLI, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[tuple[float, str]] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._log), daemon=True).start()

    def _log(self, line: str) -> None:
        self.log.append((time.monotonic(), line))

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def wait_log(self, text: str, count: int = 1, timeout: float = 90) -> float:
        """Wait for the ``count``-th log line containing ``text``; return its arrival time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t, line in list(self.log) if text in line]
            if len(hits) >= count:
                return hits[count - 1]
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise SystemExit(f"reader {self.name}: no log line {text!r} (#{count}); log: {[line for _, line in self.log]}")

    def next_line(self, timeout: float = 60) -> dict:
        """The next JSON line, its times replaced by how long before its arrival they were (``lag_*``)."""
        line = self.lines.get(timeout=timeout)
        wall, mono = time.time(), time.monotonic()
        say(f"LINE {self.name} {line}")
        doc = json.loads(line)
        if "wall" in doc:
            doc["lag_wall"] = round(wall - doc.pop("wall"), 3)
            doc["lag_monotonic"] = round(mono - doc.pop("monotonic"), 3)
        return doc

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keyboard_path() -> str:
    for path in evdev.list_devices():
        if "QEMU USB Keyboard" in evdev.InputDevice(path).name:
            return path
    raise SystemExit("no QEMU USB Keyboard in /dev/input")


def spy(path: str, got: list, stop: threading.Event) -> None:
    """A program reading the device without grabbing it: it must receive nothing while A holds the grab."""
    device = evdev.InputDevice(path)
    while not stop.is_set():
        try:
            for ev in device.read():
                if ev.type == evdev.ecodes.EV_KEY:
                    got.append(ev.code)
        except BlockingIOError:
            time.sleep(0.02)
        except OSError:
            return
    device.close()


def scanner_list(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "terminal.cli", "scanner", "list", "--json", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"scanner list failed: {out.stderr}")
    return [d for d in json.loads(out.stdout)["devices"] if "QEMU USB Keyboard" in d["name"]]


def main() -> None:
    os.environ["APTIC_SCANNER_STATE"] = "/var/tmp/aptic-scanner.json"  # on the guest's tmpfs
    started = time.monotonic()
    path = keyboard_path()
    RESULT["list_unconfigured"] = scanner_list()  # a plain keyboard: not a douchette
    a = Reader("A")
    a.wait_log("as douchette")
    RESULT["a_ready_s"] = round(time.monotonic() - started, 1)
    b = Reader("B")
    b.wait_log("grabbed by another program")
    spied: list[int] = []
    stop_spy = threading.Event()
    threading.Thread(target=spy, args=(path, spied, stop_spy), daemon=True).start()

    RESULT["list_configured"] = scanner_list("--device", "0627:0001")  # douchette, grabbed (by A)
    RESULT["a_pid"] = a.proc.pid
    say("READY-SCAN")
    RESULT["scans"] = [a.next_line(), a.next_line()]
    say("READY-TIMEOUT")
    RESULT["timeout"] = a.next_line()
    time.sleep(0.5)
    stop_spy.set()
    b.proc.terminate()
    b_out, _ = b.proc.communicate(timeout=30)
    RESULT["b_output"] = b_out
    RESULT["b_log_busy"] = any("grabbed by another program" in line for _, line in b.log)
    RESULT["spied_keys"] = len(spied)

    say("READY-UNPLUG")
    RESULT["unplug"] = a.next_line()
    cpu = a.cpu_seconds()
    time.sleep(3.0)
    RESULT["cpu_after_unplug_s"] = round(a.cpu_seconds() - cpu, 3)
    RESULT["a_alive_after_unplug"] = a.proc.poll() is None

    before = {n for n in os.listdir("/dev/input") if n.startswith("event")}
    say("READY-REPLUG")
    appeared = None
    deadline = time.monotonic() + 60
    while appeared is None and time.monotonic() < deadline:
        if {n for n in os.listdir("/dev/input") if n.startswith("event")} - before:
            appeared = time.monotonic()
        time.sleep(0.01)
    grabbed = a.wait_log("as douchette", count=2)
    RESULT["replug_pickup_s"] = round(grabbed - appeared, 3) if appeared else None
    RESULT["replug_log"] = [f"{t - (appeared or 0):+.3f} {line[24:]}" for t, line in a.log[-6:]]

    say("READY-SCAN3")
    RESULT["scan3"] = a.next_line()

    # A stalled reader: the kernel's per-client buffer overflows and says so with SYN_DROPPED.
    a.proc.send_signal(signal.SIGSTOP)
    say("READY-STALL")
    time.sleep(4.0)  # the host types a whole scan meanwhile (under a second)
    a.proc.send_signal(signal.SIGCONT)
    stalled = []
    with contextlib.suppress(queue.Empty):
        while True:
            stalled.append(a.next_line(timeout=3.0))
    RESULT["stalled"] = stalled
    say("READY-AFTER-STALL")
    RESULT["after_stall"] = a.next_line()

    a.proc.send_signal(signal.SIGTERM)
    RESULT["a_exit"] = a.proc.wait(timeout=30)
    say("RESULT " + json.dumps(RESULT))


if __name__ == "__main__":
    try:
        main()
    except BaseException as e:
        say(f"RESULT {json.dumps({'error': repr(e), **RESULT})}")
        raise
