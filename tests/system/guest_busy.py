"""Runs *inside* the QEMU guest (see qemu.py): the real daemon, busy, reads a douchette at full speed, whole.

``aptic-terminal run`` (kiosk included) starts on a copy of the data directory the host prepared
(``$APTIC_BUSY_DATA``: 10,000 scans pending, médiateur PIN), with the uinput device that
tests/system/injector.py makes as its douchette, and the reader in its own process
(``$APTIC_TEST_READER_MODE=thread`` runs it as threads of the daemon instead, the design before issue 10, for
comparison). A médiateur records one-pass entries through the kiosk's API in a loop while a page polls it
(tests/system/busy.py). The injector, at ``SCHED_FIFO``, first checks its pace on a device nobody grabs (the
kernel's stamps of one scan, read back), then types ``$APTIC_TEST_SCANS`` passes of a carnet in Alt+numpad
mode, one HID report per millisecond, 300 ms between passes: as fast as a real USB douchette.

This script reports with ``GUEST: RESULT {json}``: the codes the douchette's reads gave the Terminal (from the
kiosk's event stream), the reads the daemon discarded, the injector's pace, where the guest's CPU went during
the scans (the reader's threads, from schedstats), the reader's lateness (from its state file), the entries
recorded meanwhile, and whether the reader process outlived the daemon.
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

from tests.system.busy import KioskLoad, carnet_passes, pass_for  # noqa: E402

MODE = os.environ.get("APTIC_TEST_READER_MODE", "process")
SCANS = int(os.environ.get("APTIC_TEST_SCANS", "10"))
UINPUT_DOUCHETTE = "0c2e:0b61"  # the injector's device (a Honeywell's ids), one report per millisecond
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
    Path("/proc/sys/kernel/sched_schedstats").write_text("1")  # per-thread wait and block maxima
    data = Path("/var/tmp/busy")
    shutil.copytree(os.environ["APTIC_BUSY_DATA"], data)
    settings = data / "terminal.json"
    settings.write_text(json.dumps({"data_dir": str(data), "kiosk_port": PORT, "scanner": {
        "devices": [UINPUT_DOUCHETTE], "heuristics": False, "process": MODE == "process"}}))  # fmt: skip
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
    RESULT["daemon_ready_s"] = round(time.monotonic() - started, 1)
    load = KioskLoad(PORT, [pass_for(n) for n in range(10_000)], poll_interval=0.1)
    load.start()
    load.wait_recorded(1, 300)  # the médiateur is recording: the terminal is busy
    passes = carnet_passes(SCANS)
    injector = subprocess.Popen([sys.executable, str(Path(__file__).with_name("injector.py")), "--check",
                                 "--vidpid", UINPUT_DOUCHETTE, *passes], cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert injector.stdin is not None and injector.stdout is not None
    RESULT["pace_check"] = json.loads(expect(injector, "CHECK"))
    node = expect(injector, "READY")
    wait_log(f"grabbed {node} ")  # the uinput douchette is grabbed by the reader ("grabbed PATH (NAME) as ...")
    reader_pid = json.loads(Path(STATE).read_text())["pid"]  # the reader's state file says who holds it
    recorded_before = load.recorded
    watcher = Watcher(get("/api/updates")["last_id"])
    watcher.start()
    faults = page_faults(reader_pid)
    before = {t["tid"]: float(t["sum_exec_runtime"] or 0) for t in threads(reader_pid)}
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    injector.stdin.write("go\n")
    injector.stdin.flush()
    RESULT["pace"] = json.loads(expect(injector, "DONE"))
    # Where the guest's CPU went meanwhile: the reader's threads (CPU used, longest wait for the CPU while
    # runnable, from schedstats), its major page faults, the guest's idle time.
    RESULT["reader_faults_during_scans"] = {k: v - faults[k] for k, v in page_faults(reader_pid).items()}
    RESULT["reader_threads"] = [
        {"tid": t["tid"], "policy": t["policy"], "wait_max_ms": t["wait_max"],
         "cpu_ms_during_scans": round(float(t["sum_exec_runtime"] or 0) - before.get(t["tid"], 0), 1)}
        for t in threads(reader_pid)
    ]  # fmt: skip
    cpu_after = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(b) - int(a) for a, b in zip(cpu, cpu_after, strict=True)]
    RESULT["guest_idle_during_scans"] = f"{ticks[3]} of {sum(ticks)} ticks"
    expected = {UINPUT_DOUCHETTE: passes}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not watcher.error:
        # Every device is settled: its last pass arrived, or it lost something and has been quiet for 4 s.
        if all(watcher.reads[d][-1:] == expected[d][-1:] or (watcher.discarded[d] and watcher.quiet() > 4)
               for d in expected):  # fmt: skip
            break
        time.sleep(0.1)
    watcher.stop()
    if watcher.error:
        raise SystemExit(watcher.error)
    reads, discarded = watcher.reads, watcher.discarded
    mark = time.time()
    RESULT["reads"] = reads
    RESULT["discarded"] = discarded
    RESULT["recorded_during"] = load.recorded - recorded_before
    RESULT["polls"] = load.polls
    RESULT["load_errors"] = load.errors[:3]
    load.stop()
    RESULT["stall"] = fresh_stall(mark)
    RESULT["discards"] = [line.strip()[24:] for line in log if "read discarded" in line]
    RESULT["priority"] = [line.strip()[24:] for line in log if "douchette reader" in line][:3]
    injector.stdin.close()  # the injector removes its device and exits
    RESULT["injector_exit"] = injector.wait(60)
    daemon.send_signal(signal.SIGTERM)
    RESULT["daemon_exit"] = daemon.wait(120)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{reader_pid}").exists() and reader_pid != daemon.pid and time.monotonic() < deadline:
        time.sleep(0.1)
    RESULT["reader_outlived_daemon"] = reader_pid != daemon.pid and Path(f"/proc/{reader_pid}").exists()
    RESULT["seconds"] = round(time.monotonic() - started, 1)
    say("RESULT " + json.dumps(RESULT))


class Watcher(threading.Thread):
    """Follows the kiosk's event stream, as the page does, from ``last`` on: what each douchette's reads and
    discards gave. A thread of its own from before the scans, so that the recording load's events never
    push the scans out of the kiosk's buffer (a gap is an error)."""

    def __init__(self, last: int) -> None:
        super().__init__(daemon=True)
        self.last = last
        self.reads: dict[str, list[str]] = {UINPUT_DOUCHETTE: []}
        self.discarded: dict[str, list[str]] = {UINPUT_DOUCHETTE: []}
        self.error = ""
        self.seen = time.monotonic()
        self._done = threading.Event()

    def quiet(self) -> float:
        """Seconds since the last read or discard of a douchette."""
        return time.monotonic() - self.seen

    def stop(self) -> None:
        self._done.set()
        self.join(30)

    def run(self) -> None:
        while not self._done.is_set():
            answer = get(f"/api/updates?after={self.last}&wait=1")
            if answer.get("gap"):
                self.error = "the kiosk's event buffer overflowed: scans may have been missed"
                return
            events = answer["events"]
            self.last = events[-1]["id"] if events else self.last
            for event in events:
                data = event["data"].get("result", event["data"]) if event["kind"] in ("scan", "discarded") else {}
                vidpid = str(data.get("device", "")).split("@")[0]
                if vidpid in self.reads:
                    self.seen = time.monotonic()
                    if event["kind"] == "scan":
                        self.reads[vidpid].append(data.get("code"))
                    else:
                        self.discarded[vidpid].append(data.get("reason"))


def threads(pid: int) -> list[dict[str, str]]:
    """Scheduler figures of each thread of ``pid`` (``/proc/PID/task/TID/sched``; schedstats on for the maxima)."""
    wanted = ("wait_max", "policy", "sum_exec_runtime")
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        try:
            lines = (task / "sched").read_text().splitlines()[2:]
        except FileNotFoundError:  # the thread just ended
            continue
        fields = (line.split(":", 1) for line in lines if ":" in line)
        sched = {key.strip().rsplit(".", 1)[-1]: value.strip() for key, value in fields}
        out.append({"tid": task.name, **{key: sched.get(key, "") for key in wanted}})
    return out


def page_faults(pid: int) -> dict[str, int]:
    """The minor and major page faults of process ``pid`` so far (a major one waits for the disk: here, 9p)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"minor": int(fields[7]), "major": int(fields[9])}


def expect(proc: subprocess.Popen[str], word: str) -> str:
    """The rest of the next line ``proc`` prints, which must start with ``word``."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(word + " "):
        raise SystemExit(f"injector: expected {word}, got {line!r} (exit status {proc.wait(30)})")
    return line[len(word) + 1 :].strip()


def fresh_stall(mark: float) -> object:
    """The reader's lateness from its state file, once written after ``mark`` (every read counted by then).

    The reader rewrites the file within ~1.5 s of a read (every second in its process; at its next rescan as
    a thread). If no rewrite comes within 5 s, none was due: the file already counts every read.
    """
    deadline = time.monotonic() + 5
    while True:
        state = json.loads(Path(STATE).read_text())
        if state.get("updated", 0) > mark or time.monotonic() > deadline:
            return state.get("stall")
        time.sleep(0.1)


if __name__ == "__main__":
    try:
        main()
    except BaseException as e:
        say(f"RESULT {json.dumps({'error': repr(e), **RESULT})}")
        raise
