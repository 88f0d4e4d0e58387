"""System test: the real reader, inside a QEMU guest, reads an emulated USB keyboard typed through QMP.

What a user would notice, against a real kernel (evdev, EVIOCGRAB, USB unplug and replug): pass numbers typed
as a US and as an AZERTY scanner decode exactly; while our reader holds the grab, a second reader and a
program reading the device get nothing; unplugging mid-scan discards the partial read without a crash and
with the CPU idle; a keyboard plugged back is picked up within 2 s. When QEMU cannot run here, the test fails
and says why: it never passes without having run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aptic.passnumber import build, hmac_authenticator
from terminal.scanner.keymaps import KEY_ENTER
from terminal.scanner.typist import key_transitions

from .qemu import Guest, QemuUnavailable

AUTH = hmac_authenticator(b"test")
US_PASS = build(2026, 1234, 7, AUTH)
FR_PASS = build(2026, 987654, 2, AUTH)
PASS3 = build(2027, 42, 10, AUTH)
ENTER = [(KEY_ENTER, 1), (KEY_ENTER, 0)]


@pytest.fixture
def guest(tmp_path: Path):
    try:
        g = Guest(Path(__file__).with_name("guest_scanner.py"), tmp_path)
        g.start()
    except QemuUnavailable as e:
        pytest.fail(f"QEMU system test cannot run on this machine: {e}")
    yield g
    g.stop(timeout=10)


@pytest.mark.system
@pytest.mark.timeout(300)
def test_reader_in_a_real_kernel(guest: Guest) -> None:
    started = time.monotonic()
    guest.wait_for("READY-SCAN", timeout=180)
    guest.press(key_transitions(US_PASS, "us") + ENTER)
    guest.press(key_transitions(FR_PASS, "fr") + ENTER)
    guest.wait_for("READY-TIMEOUT", timeout=90)
    guest.press(key_transitions("4242", "us"))  # no Enter: a scanner that sends no terminator

    guest.wait_for("READY-UNPLUG", timeout=90)
    guest.press(key_transitions(US_PASS[:9], "us"))  # half a scan, no Enter
    time.sleep(0.5)  # read by the guest (a removed evdev node returns ENODEV, not what was queued)...
    guest.unplug()  # ...and then the scanner is pulled out, well within the reader's 1 s idle timeout

    guest.wait_for("READY-REPLUG", timeout=90)
    guest.replug()
    guest.wait_for("READY-SCAN3", timeout=90)
    guest.press(key_transitions(PASS3, "fr", "held_shift") + ENTER)
    guest.wait_for("READY-STALL", timeout=90)
    guest.press(key_transitions(FR_PASS, "fr") + ENTER)  # ~220 events: more than evdev buffers for a stalled reader
    guest.wait_for("READY-AFTER-STALL", timeout=90)
    guest.press(key_transitions(US_PASS, "us") + ENTER)

    result = json.loads(guest.wait_for("RESULT", timeout=90))
    print(f"guest run took {time.monotonic() - started:.0f} s: {result}")
    assert "error" not in result, f"{result}\n{guest.tail()}"
    device = result["scans"][0]["device"]
    assert device.startswith("0627:0001@usb-")
    # Decoded exactly, and the layout was found from the pass number.
    assert [{k: scan[k] for k in ("device", "code", "layout")} for scan in result["scans"]] == [
        {"device": device, "code": US_PASS, "layout": "us"},
        {"device": device, "code": FR_PASS, "layout": "fr"},
    ]
    # Times are those of the Enter key event, on the right clocks: the line arrives soon after (a wrong clock
    # would be off by years or by the uptime; the bound leaves room for a slow emulated CPU).
    for scan in result["scans"]:
        assert 0 <= scan["lag_wall"] < 2 and 0 <= scan["lag_monotonic"] < 2, scan
    # No terminator: discarded once the idle timeout (1 s here) has passed, without waiting for another key.
    timeout = result["timeout"]
    assert (timeout["discarded"], timeout["reason"]) == ("4242", "timeout")
    assert 0 <= timeout["lag_monotonic"] < 2, timeout
    # scanner list: the keyboard is no douchette unless configured; configured, it shows grabbed (by our reader).
    [plain] = result["list_unconfigured"]
    assert plain["douchette"] is False and plain["grabbed"] is False and plain["can_type_codes"]
    [configured] = result["list_configured"]
    assert configured["douchette"] and configured["grabbed"] and configured["id"] == device
    assert configured["reader_pid"] == result["a_pid"]
    # Nothing reached anyone else while our reader held the grab.
    assert result["b_log_busy"] and result["b_output"] == ""
    assert result["spied_keys"] == 0
    # Pulled out mid-scan: the partial read is discarded, the reader lives on, idle.
    unplug = {k: result["unplug"][k] for k in ("device", "discarded", "reason")}
    assert unplug == {"device": device, "discarded": US_PASS[:9], "reason": "unplugged"}
    assert result["a_alive_after_unplug"]
    assert result["cpu_after_unplug_s"] < 0.3, f"the reader is spinning after the unplug: {result}"
    # Plugged back: grabbed within 2 s of the node appearing, and it reads.
    assert result["replug_pickup_s"] is not None and result["replug_pickup_s"] < 2.0, result["replug_log"]
    assert result["scan3"]["code"] == PASS3 and result["scan3"]["layout"] == "fr"
    # The reader stalled while a scan came in: the kernel dropped events; the damaged scan is discarded, never
    # delivered truncated, and the next scan reads.
    assert result["stalled"], "nothing reported for the scan typed while the reader was stalled"
    assert all(line.get("reason") == "syn_dropped" for line in result["stalled"]), result["stalled"]
    assert result["after_stall"]["code"] == US_PASS
    assert result["a_exit"] == 0
