"""Runs *inside* the QEMU guest (see qemu.py): the real daemon, busy, reads a fast Alt+numpad scan whole.

``aptic-terminal run`` (kiosk included) starts on a copy of the data directory the host prepared
(``$APTIC_BUSY_DATA``: 10,000 scans pending, médiateur PIN), with QEMU's keyboard configured as its douchette
and the reader in its own process (``$APTIC_READER_MODE=thread`` runs it as threads of the daemon instead, the
design before issue 10, for comparison). A médiateur records one-pass entries through the kiosk's API in a
loop while a page polls it (tests/system/busy.py). Then ``READY-SCAN``: the host types an Alt+numpad pass
number as fast as the guest's keyboard reports. This script reports with ``GUEST: RESULT {json}``: the
verdict the kiosk got for the scan, the reads the daemon discarded, the reader's lateness (from its state
file), the entries recorded meanwhile, and whether the reader process outlived the daemon.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.system.busy import KioskLoad, pass_for  # noqa: E402

MODE = os.environ.get("APTIC_READER_MODE", "process")
PORT = 8080
STATE = "/var/tmp/aptic-scanner.json"  # on the guest's tmpfs
RESULT: dict[str, object] = {"mode": MODE}


def say(msg: str) -> None:
    print(f"GUEST: {msg}", flush=True)


def loopback_up() -> None:
    """``ip link set lo up`` (the initramfs configures no network; the kernel gives lo 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))  # SIOCSIFFLAGS |= IFF_UP


def get(path: str, timeout: float = 60) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def main() -> None:
    started = time.monotonic()
    loopback_up()
    data = Path("/var/tmp/busy")
    shutil.copytree(os.environ["APTIC_BUSY_DATA"], data)
    settings = data / "terminal.json"
    settings.write_text(json.dumps({"data_dir": str(data), "kiosk_port": PORT, "scanner": {
        "devices": ["0627:0001"], "heuristics": False, "process": MODE == "process"}}))  # fmt: skip
    env = {**os.environ, "APTIC_TERMINAL_CONFIG": str(settings), "APTIC_SCANNER_STATE": STATE,
           "GPIOZERO_PIN_FACTORY": "mock"}  # fmt: skip
    daemon = subprocess.Popen([sys.executable, "-m", "terminal.cli", "run"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(daemon.stderr), daemon=True).start()  # type: ignore[arg-type]

    def wait_log(text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in log):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon: no {text!r} in its log: {log[-20:]}")
            time.sleep(0.1)

    wait_log("Terminal ready")
    wait_log("as douchette")  # the keyboard is grabbed
    RESULT["daemon_ready_s"] = round(time.monotonic() - started, 1)
    reader_pid = json.loads(Path(STATE).read_text())["pid"]
    load = KioskLoad(PORT, [pass_for(n) for n in range(10_000)], poll_interval=0.1)
    load.start()
    load.wait_recorded(1, 300)  # the médiateur is recording: the terminal is busy
    recorded_before = load.recorded
    last = get("/api/updates")["last_id"]
    say("READY-SCAN")
    scan = None
    deadline = time.monotonic() + 180
    while scan is None and time.monotonic() < deadline:
        events = get(f"/api/updates?after={last}&wait=2")["events"]
        last = events[-1]["id"] if events else last
        scans = [e["data"]["result"] for e in events if e["kind"] == "scan"]
        scan = next((s for s in scans if str(s.get("device", "")).startswith("0627:0001")), None)
        if any("read discarded" in line for line in log):
            time.sleep(1.0)  # a discarded scan sends no verdict: report the discard
            break
    RESULT["scan"] = scan and {k: scan.get(k) for k in ("code", "pass_number", "device", "reason")}
    RESULT["recorded_during"] = load.recorded - recorded_before
    RESULT["polls"] = load.polls
    RESULT["load_errors"] = load.errors[:3]
    load.stop()
    time.sleep(1.5)  # the reader refreshes its state file every second while reads come in
    RESULT["stall"] = json.loads(Path(STATE).read_text()).get("stall")
    RESULT["discards"] = [line.strip()[24:] for line in log if "read discarded" in line]
    RESULT["priority"] = [line.strip()[24:] for line in log if "douchette reader" in line][:3]
    daemon.send_signal(signal.SIGTERM)
    RESULT["daemon_exit"] = daemon.wait(120)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{reader_pid}").exists() and reader_pid != daemon.pid and time.monotonic() < deadline:
        time.sleep(0.1)
    RESULT["reader_outlived_daemon"] = reader_pid != daemon.pid and Path(f"/proc/{reader_pid}").exists()
    RESULT["seconds"] = round(time.monotonic() - started, 1)
    say("RESULT " + json.dumps(RESULT))


if __name__ == "__main__":
    try:
        main()
    except BaseException as e:
        say(f"RESULT {json.dumps({'error': repr(e), **RESULT})}")
        raise
