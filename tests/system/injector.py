"""Runs *inside* the QEMU guest: a douchette on ``/dev/uinput`` that types at one HID report per millisecond.

Why. QEMU's emulated USB keyboard delivers at most one report per ~8 ms (see qemu.py), so a scan typed
through QMP lasts ~0.9 s and the kernel's 64-event buffer per reader (21 reports) covers ~170 ms of it: a
reader stalled for 100 ms still loses nothing, and a test typed that way cannot catch the defect of issue 10.
A real douchette reports every millisecond (USB full speed, ``bInterval`` 1): the buffer covers 21 ms. This
program is that douchette: a kernel input device made through uinput, typing the reports a USB keyboard
gives the kernel (``MSC_SCAN`` with the HID usage, ``EV_KEY``, ``SYN_REPORT``: one ``write`` each, so the
kernel stamps the three events together, as for a USB report), one report per millisecond on an absolute
``CLOCK_MONOTONIC`` schedule (``clock_nanosleep(TIMER_ABSTIME)``: no drift from late wake-ups), at
``SCHED_FIFO`` priority above the reader's ``SCHED_RR`` (the hardware does not wait for the host's CPU).

At most one report per millisecond: when the guest could not run it in time (QEMU's vCPU thread descheduled
by a busy host), the report goes out late and the schedule moves with it, instead of a burst of overdue
reports no USB device could send. ``late`` counts those; the gaps say what pace was achieved.

Protocol (stdin / stdout lines), for tests/system/guest_busy.py::

    python injector.py --vidpid 0c2e:0b61 --name NAME --phys PHYS [--check] PASS [PASS...]
    -> CHECK {json}     with --check: the kernel's stamps of one scan typed on a device nobody grabs
    -> READY /dev/input/eventN
    <- go
    -> DONE {json}      the pace: reports, median / p99 / max gap between reports (ms), late, seconds
    <- (end of input)   the device is removed, the program exits

Each pass is typed as a scanner in Alt+numpad mode types it (:func:`terminal.scanner.typist.key_transitions`),
then Enter; ``--pause-ms`` separates the scans (a médiateur scanning a carnet, pass after pass).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import gc
import itertools
import json
import os
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import evdev

from terminal.scanner import keymaps as k
from terminal.scanner.reader import EVIOCSCLOCKID, INPUT_EVENT
from terminal.scanner.typist import key_transitions

HID_USAGE: dict[int, int] = {
    **{code: 0x70059 + (d - 1) % 10 for d, code in enumerate(k.KEYPAD_DIGIT_KEYS)},  # KP1..KP9 0x59.., KP0 0x62
    **{code: 0x7001E + (d - 1) % 10 for d, code in enumerate(k.DIGIT_KEYS)},  # 1..9 0x1e.., 0 0x27
    k.KEY_ENTER: 0x70028, k.KEY_LEFTALT: 0x700E2, k.KEY_LEFTSHIFT: 0x700E1, k.KEY_NUMLOCK: 0x70053,
}  # fmt: skip
"""Linux key code -> the HID usage a USB keyboard reports with it (``MSC_SCAN``), for the keys typed here."""

CLOCK_MONOTONIC, TIMER_ABSTIME = 1, 1
PERIOD_NS = 1_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(None, use_errno=True)


def sleep_until(deadline_ns: int) -> None:
    """Sleep until ``deadline_ns`` on ``CLOCK_MONOTONIC`` (``time.monotonic_ns``), absolute: no drift."""
    ts = _Timespec(deadline_ns // 1_000_000_000, deadline_ns % 1_000_000_000)
    while (rc := _libc.clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ctypes.byref(ts), None)) == errno.EINTR:
        pass
    if rc:
        raise OSError(rc, os.strerror(rc))


def reports(passes: list[str]) -> list[list[bytes]]:
    """Each scan as its reports: one packed MSC_SCAN + EV_KEY + SYN_REPORT write per key transition."""
    scans = []
    for number in passes:
        transitions = [*key_transitions(number, "us", "altnum"), (k.KEY_ENTER, 1), (k.KEY_ENTER, 0)]
        scans.append([
            INPUT_EVENT.pack(0, 0, k.EV_MSC, k.MSC_SCAN, HID_USAGE[code])
            + INPUT_EVENT.pack(0, 0, k.EV_KEY, code, value)
            + INPUT_EVENT.pack(0, 0, k.EV_SYN, k.SYN_REPORT, 0)
            for code, value in transitions
        ])  # fmt: skip
    return scans


def make_device(name: str, vidpid: str, phys: str) -> evdev.UInput:
    vendor, product = (int(x, 16) for x in vidpid.split(":"))
    keys = sorted({*k.DIGIT_KEYS, *k.KEYPAD_DIGIT_KEYS, *HID_USAGE, k.KEY_KPENTER})
    return evdev.UInput({k.EV_KEY: keys, k.EV_MSC: [k.MSC_SCAN]}, name=name, vendor=vendor, product=product,
                        bustype=0x03, phys=phys)  # fmt: skip


def type_scans(fd: int, scans: list[list[bytes]], pause_ms: int, spy: evdev.InputDevice | None = None) -> dict:
    """Write the reports on the schedule (see the module docstring); the achieved pace, and what ``spy`` read."""
    written: list[list[int]] = []  # per scan, monotonic ns just after each write (the kernel stamps within it)
    stamps: list[int] = []  # with a spy: the kernel's stamp of each SYN_REPORT, ns
    late = 0
    gc.collect()
    gc.disable()
    t0 = time.monotonic_ns() + 5 * PERIOD_NS
    slot = 0
    previous = 0
    for scan in scans:
        times = []
        for report in scan:
            deadline = t0 + slot * PERIOD_NS
            if previous and deadline < previous + PERIOD_NS // 2:  # we ran late: no burst, move the schedule
                late += 1
                t0 += previous + PERIOD_NS - deadline
                deadline = previous + PERIOD_NS
            sleep_until(deadline)
            os.write(fd, report)
            previous = time.monotonic_ns()
            times.append(previous)
            slot += 1
            if spy is not None:
                stamps += [e.sec * 1_000_000_000 + e.usec * 1000 for e in _read_all(spy) if e.type == k.EV_SYN]
        written.append(times)
        slot += pause_ms
    gc.enable()
    gaps = [(b - a) / 1e6 for times in written for a, b in itertools.pairwise(times)]
    out = {"scans": len(scans), "reports": sum(map(len, written)), **_pace(gaps), "late": late,
           "seconds": round((written[-1][-1] - written[0][0]) / 1e9, 3)}  # fmt: skip
    if spy is not None:
        kernel = [(b - a) / 1e6 for a, b in itertools.pairwise(stamps)]
        flat = [t for times in written for t in times]
        lag = max(w - s for s, w in zip(stamps, flat, strict=False)) / 1e6  # kernel stamp -> write() returned
        out["kernel"] = {"stamps": len(stamps), **_pace(kernel), "stamp_to_write_return_max_ms": round(lag, 3)}
    return out


def _read_all(device: evdev.InputDevice) -> list[evdev.InputEvent]:
    try:
        return list(device.read())
    except BlockingIOError:
        return []


def _pace(gaps: list[float]) -> dict[str, float]:
    ordered = sorted(gaps)
    return {"gap_median_ms": round(statistics.median(ordered), 3),
            "gap_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
            "gap_max_ms": round(ordered[-1], 3), "gap_min_ms": round(ordered[0], 3)}  # fmt: skip


def realtime(priority: int) -> str:
    """``SCHED_FIFO`` at ``priority`` and memory locked (no page fault mid-scan); says what it got."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        got = f"SCHED_FIFO {priority}"
    except OSError as error:
        got = f"normal priority (SCHED_FIFO refused: {error.strerror})"
    if _libc.mlockall(3) != 0:  # MCL_CURRENT | MCL_FUTURE
        got += ", memory not locked"
    return got


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("passes", nargs="+")
    p.add_argument("--vidpid", default="0c2e:0b61")
    p.add_argument("--name", default="APTIC test douchette (uinput)")
    p.add_argument("--phys", default="usb-aptic-test-1/input0")
    p.add_argument("--pause-ms", type=int, default=300)
    p.add_argument("--priority", type=int, default=50)
    p.add_argument("--check", action="store_true", help="first, read back one scan's kernel stamps")
    args = p.parse_args()
    scans = reports(args.passes)
    priority = realtime(args.priority)
    if args.check:  # a device no reader selects (vendor 0001), read back at once by this process, not grabbed
        with make_device("APTIC pace check (uinput)", "0001:0001", "aptic-pace-check/input0") as check:
            spy = check.device
            spy.grab()  # only this process reads it
            fcntl.ioctl(spy.fd, EVIOCSCLOCKID, struct.pack("i", time.CLOCK_MONOTONIC))  # stamps as monotonic_ns
            result = type_scans(check.fd, scans[:1], 0, spy)
            print("CHECK " + json.dumps(result), flush=True)
    with make_device(args.name, args.vidpid, args.phys) as device:
        print(f"READY {device.device.path}", flush=True)
        device.device.close()
        if sys.stdin.readline().strip() != "go":
            return
        result = type_scans(device.fd, scans, args.pause_ms)
        result["priority"] = priority
        print("DONE " + json.dumps(result), flush=True)
        sys.stdin.read()  # the device stays until the guest script is done with it


if __name__ == "__main__":
    main()
