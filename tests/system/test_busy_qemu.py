"""System test: a busy terminal reads a fast Alt+numpad scan whole, on a real kernel (QEMU guest).

The failure it guards against: the kernel keeps ~64 events per evdev reader; a douchette in Alt+numpad mode
sends ~110 reports (330 events) for one pass; a reader that the busy daemon delays loses events
(SYN_DROPPED) and the scan. Here the real daemon runs in the guest with 10,000 scans pending while a médiateur
records entries through the kiosk and a page polls it, and the host types the pass as fast as the guest's
USB keyboard reports (one report per ~8 ms: QEMU's usb-kbd gives no more). The scan must reach the Terminal
exactly, with no read discarded.

``APTIC_READER_MODE=thread`` runs the same test with the reader as threads of the daemon (the design before
issue 10): on this machine it loses the scan to SYN_DROPPED (see the report of issue 10).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from aptic.passnumber import build, hmac_authenticator
from terminal.scanner.keymaps import KEY_ENTER
from terminal.scanner.typist import key_transitions

from .busy import prepare
from .qemu import CACHE, Guest, QemuUnavailable

PASS = build(2026, 4_242_424, 3, hmac_authenticator(b"tests-only central key"))


@pytest.mark.system
@pytest.mark.timeout(600)
def test_a_fast_altnum_scan_is_read_whole_while_the_terminal_is_busy(tmp_path: Path) -> None:
    data = CACHE / f"busy-{os.getpid()}-{tmp_path.name}"  # on the host's root filesystem, which the guest mounts
    shutil.rmtree(data, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    try:
        prepare(data, pending=10_000)
        mode = os.environ.get("APTIC_READER_MODE", "process")
        try:
            guest = Guest(Path(__file__).with_name("guest_busy.py"), tmp_path,
                          env={"APTIC_BUSY_DATA": str(data), "APTIC_READER_MODE": mode})  # fmt: skip
            guest.start()
        except QemuUnavailable as e:
            pytest.fail(f"QEMU system test cannot run on this machine: {e}")
        try:
            started = time.monotonic()
            guest.wait_for("READY-SCAN", timeout=420)
            transitions = [*key_transitions(PASS, "us", "altnum"), (KEY_ENTER, 1), (KEY_ENTER, 0)]
            typing = time.monotonic()
            guest.press(transitions, interval=0.008)  # one report per ~8 ms: as fast as the guest takes them
            typed_s = time.monotonic() - typing
            result = json.loads(guest.wait_for("RESULT", timeout=300))
        finally:
            guest.stop(timeout=60)
        print(f"guest run {time.monotonic() - started:.0f} s; {len(transitions)} reports typed in {typed_s:.2f} s; "
              f"{result}")  # fmt: skip
        assert "error" not in result, f"{result}\n{guest.tail()}"
        assert result["recorded_during"] >= 1, f"the terminal was not busy during the scan: {result}"
        assert result["discards"] == [], f"a read was lost: {result}"
        assert result["scan"] is not None, f"the scan never reached the Terminal: {result}"
        assert result["scan"]["pass_number"] == PASS and result["scan"]["device"].startswith("0627:0001@")
        assert result["daemon_exit"] == 0 and not result["reader_outlived_daemon"], result
    finally:
        shutil.rmtree(data, ignore_errors=True)
