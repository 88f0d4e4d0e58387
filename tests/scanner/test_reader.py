"""The reader against a fake kernel input layer: discovery, grab, hotplug, unplug, errors, delivery."""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import evdev
import pytest

from aptic.passnumber import build, hmac_authenticator
from terminal.scanner import keymaps as k
from terminal.scanner.reader import ReaderConfig, ScanDiscard, ScannerReader, ScanRead
from terminal.scanner.typist import type_text

from .fakekernel import Collector, FakeKernel

PASS = build(2026, 1234, 7, hmac_authenticator(b"test"))
OTHER = build(2026, 99, 10, hmac_authenticator(b"test"))


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    fake = FakeKernel(tmp_path)
    monkeypatch.setattr(evdev, "InputDevice", fake.input_device)
    return fake


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def start(kernel: FakeKernel, collector: Collector) -> Iterator:
    readers: list[ScannerReader] = []

    def _start(**kw) -> ScannerReader:
        kw.setdefault("rescan_interval", 0.1)
        reader = ScannerReader(collector, collector, ReaderConfig(input_dir=str(kernel.root), **kw))
        reader.start()
        readers.append(reader)
        return reader

    yield _start
    for r in readers:
        r.stop()


def wait_until(cond, timeout: float = 3.0) -> float:
    started = time.monotonic()
    while not cond():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


def test_douchette_is_grabbed_and_read_keyboard_is_left_alone(kernel, start, collector) -> None:
    scanner = kernel.plug("USB Barcode Scanner", port="usb-1")
    keyboard = kernel.plug("Logitech USB Keyboard", port="usb-2")
    reader = start()
    wait_until(lambda: scanner.grabbed_by is not None)
    kernel.type(keyboard, type_text("123", "us"))
    kernel.type(scanner, type_text(PASS, "fr"))
    [read] = collector.wait(1)
    assert (read.device, read.text, read.layout) == ("1a2c:2124@usb-1", PASS, "fr")
    assert keyboard.grabbed_by is None and keyboard.opens == []  # probed, closed, never grabbed
    listing = {d["path"]: d for d in reader.devices()}
    assert listing[scanner.path]["douchette"] and listing[scanner.path]["grabbed"]
    assert listing[scanner.path]["detected_layout"] == "fr"
    assert not listing[keyboard.path]["douchette"] and not listing[keyboard.path]["grabbed"]


def test_configured_keyboard_is_a_douchette(kernel, start, collector) -> None:
    keyboard = kernel.plug("QEMU QEMU USB Keyboard", vendor=0x0627, product=0x0001)
    start(devices=("0627:0001",))
    wait_until(lambda: keyboard.grabbed_by is not None)
    kernel.type(keyboard, type_text(PASS, "us"))
    assert collector.wait(1)[0].text == PASS


def test_time_of_the_terminating_key_event(kernel, start, collector) -> None:
    scanner = kernel.plug("Barcode Scanner")
    start()
    wait_until(lambda: scanner.grabbed_by is not None)
    events = type_text("42", "us", start=-0.5)  # typed half a second ago; Enter down at -0.484
    wall, mono = time.time(), time.monotonic()
    kernel.type(scanner, events)
    [read] = collector.wait(1)
    assert read.wall == pytest.approx(wall - 0.484, abs=0.01)
    assert read.monotonic == pytest.approx(mono - 0.484, abs=0.01)


def test_hotplugged_douchette_works_within_2_seconds(kernel, start, collector) -> None:
    start(rescan_interval=0.5)  # the default
    time.sleep(0.3)
    scanner = kernel.plug("Honeywell 1900", vendor=0x0C2E, product=0x0B61)
    took = wait_until(lambda: scanner.grabbed_by is not None)
    assert took < 2.0
    kernel.type(scanner, type_text(PASS, "us"))
    assert collector.wait(1)[0].text == PASS


def test_unplug_mid_scan_discards_drops_the_descriptor_and_goes_on(kernel, start, collector) -> None:
    a = kernel.plug("Barcode Scanner A", port="usb-1")
    b = kernel.plug("Barcode Scanner B", port="usb-2")
    reader = start()
    wait_until(lambda: a.grabbed_by is not None and b.grabbed_by is not None)
    kernel.type(a, type_text(PASS[:7], "us", terminator=None))
    time.sleep(0.05)
    kernel.unplug(a)
    [discard] = collector.wait(1)
    assert isinstance(discard, ScanDiscard)
    assert (discard.device, discard.text, discard.reason) == ("1a2c:2124@usb-1", PASS[:7], "unplugged")
    # The dead descriptor stays readable, as a hung-up evdev node does: the reader must not spin on it.
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(1.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime) < 0.2
    assert reader._thread is not None and reader._thread.is_alive()
    kernel.type(b, type_text(OTHER, "fr"))
    assert [(r.device, r.text) for r in collector.wait(2)[1:]] == [("1a2c:2124@usb-2", OTHER)]
    # Plugged back, on the same port: grabbed again, the same device id.
    a2 = kernel.plug("Barcode Scanner A", port="usb-1")
    wait_until(lambda: a2.grabbed_by is not None)
    kernel.type(a2, type_text(PASS, "us"))
    assert [(r.device, r.text) for r in collector.wait(3)[2:]] == [("1a2c:2124@usb-1", PASS)]


def test_grab_is_retried_while_another_program_holds_it(kernel, start, collector) -> None:
    scanner = kernel.plug("Barcode Scanner")
    other_program = kernel.input_device(scanner.path)
    other_program.grab()
    reader = start()
    wait_until(lambda: any(d["busy"] for d in reader.devices()))
    kernel.type(scanner, type_text("12", "us"))  # goes to the other program only
    time.sleep(0.3)
    assert collector.items == []
    other_program.close()
    wait_until(lambda: scanner.grabbed_by is not None and scanner.grabbed_by is not other_program)
    kernel.type(scanner, type_text(PASS, "us"))
    assert [r.text for r in collector.wait(1)] == [PASS]


def test_permission_error_names_the_fix(kernel, start, caplog) -> None:
    caplog.set_level(logging.WARNING, "terminal.scanner")
    scanner = kernel.plug("Barcode Scanner", denied=True)
    reader = start()
    wait_until(lambda: any("error" in d for d in reader.devices()))
    [entry] = reader.devices()
    assert "group 'input'" in entry["error"] and "udev" in entry["error"]
    assert any(scanner.path in r.message and 'GROUP="input"' in r.message for r in caplog.records)


def test_every_node_of_the_usb_device_is_grabbed_and_read(kernel, start, collector) -> None:
    kbd = kernel.plug("ACME Barcode Scanner", port="usb-3", interface=0)
    keypad = kernel.plug("ACME Barcode Scanner Keypad", port="usb-3", interface=1,
                         keys=[*k.KEYPAD_DIGIT_KEYS, k.KEY_KPENTER, k.KEY_NUMLOCK])  # fmt: skip
    start()
    wait_until(lambda: kbd.grabbed_by is not None and keypad.grabbed_by is not None)
    kernel.type(keypad, type_text(PASS, "us", "keypad", terminator=k.KEY_KPENTER))
    [read] = collector.wait(1)
    assert (read.device, read.text, read.layout) == ("1a2c:2124@usb-3", PASS, "keypad")


def test_missing_terminator_is_discarded_on_time_without_further_events(kernel, start, collector) -> None:
    scanner = kernel.plug("Barcode Scanner")
    reader = start(rescan_interval=10.0)  # so only the decoder's deadline can wake the loop
    wait_until(lambda: scanner.grabbed_by is not None)
    assert reader.rescans == 1
    typed = time.monotonic()
    kernel.type(scanner, type_text("126", "us", terminator=None))
    [discard] = collector.wait(1, timeout=1.0)
    assert (discard.text, discard.reason) == ("126", "timeout")
    assert time.monotonic() - typed < 0.2 + 0.3  # idle timeout plus a little


def test_a_failing_callback_does_not_kill_the_reader(kernel, tmp_path) -> None:
    got: list[str] = []

    def on_read(r: ScanRead) -> None:
        got.append(r.text)
        if len(got) == 1:
            raise RuntimeError("terminal bug")

    scanner = kernel.plug("Barcode Scanner")
    reader = ScannerReader(on_read, config=ReaderConfig(input_dir=str(kernel.root), rescan_interval=0.1))
    with reader:
        wait_until(lambda: scanner.grabbed_by is not None)
        kernel.type(scanner, type_text("1", "us"))
        wait_until(lambda: len(got) == 1)
        kernel.type(scanner, type_text("2", "us"))
        wait_until(lambda: len(got) == 2)
    assert got == ["1", "2"]


def test_stop_releases_devices_and_discards_pending_reads(kernel, start, collector) -> None:
    scanner = kernel.plug("Barcode Scanner")
    reader = start()
    wait_until(lambda: scanner.grabbed_by is not None)
    kernel.type(scanner, type_text("12", "us", terminator=None))
    time.sleep(0.05)
    reader.stop()
    assert [(d.text, d.reason) for d in collector.items] == [("12", "stopped")]
    assert scanner.grabbed_by is None and scanner.opens == []


def test_two_douchettes_typing_at_once(kernel, start, collector) -> None:
    a = kernel.plug("Barcode Scanner", port="usb-1")
    b = kernel.plug("Barcode Scanner", port="usb-2")
    start()
    wait_until(lambda: a.grabbed_by is not None and b.grabbed_by is not None)
    ea, eb = type_text(PASS, "us"), type_text(OTHER, "fr", "held_shift")
    for i in range(0, max(len(ea), len(eb)), 6):  # interleave small bursts from each
        kernel.type(a, ea[i : i + 6])
        kernel.type(b, eb[i : i + 6])
    got = {(r.device, r.text, r.layout) for r in collector.wait(2)}
    assert got == {("1a2c:2124@usb-1", PASS, "us"), ("1a2c:2124@usb-2", OTHER, "fr")}


def test_per_device_layout_is_the_fallback_for_codes_that_are_not_pass_numbers(kernel, start, collector) -> None:
    fr = kernel.plug("Barcode Scanner", port="usb-1")
    us = kernel.plug("Barcode Scanner", port="usb-2")
    reader = start(layouts=(("/dev/null-not-this", "us"), (fr.path, "fr")))
    wait_until(lambda: fr.grabbed_by is not None and us.grabbed_by is not None)
    kernel.type(fr, type_text("AB-12", "fr"))
    assert [(r.text, r.layout) for r in collector.wait(1)] == [("AB-12", "fr")]
    kernel.type(us, type_text("AB-12", "us"))
    assert [(r.text, r.layout) for r in collector.wait(2)[1:]] == [("AB-12", "us")]
    kernel.type(fr, type_text(PASS, "us"))  # a pass number is still recognised in any layout
    assert [(r.text, r.layout) for r in collector.wait(3)[2:]] == [(PASS, "us")]
    fallbacks = {d["path"]: d["fallback"] for d in reader.devices()}
    assert fallbacks == {fr.path: "fr", us.path: "us"}


def test_kernel_buffer_overflow_discards_the_damaged_scan(kernel, start, collector) -> None:
    scanner = kernel.plug("Barcode Scanner")
    start()
    wait_until(lambda: scanner.grabbed_by is not None)
    head = type_text(PASS[:8], "us", terminator=None)
    tail = type_text(PASS[12:], "us", start=0.07)  # the kernel dropped the keys in between
    kernel.type(scanner, [*head, (0.065, k.EV_SYN, k.SYN_DROPPED, 0), (0.066, k.EV_SYN, k.SYN_REPORT, 0), *tail])
    kernel.type(scanner, type_text(PASS, "us", start=0.5))  # scanned again
    got = collector.wait(2)
    assert [(type(r).__name__, r.text) for r in got] == [("ScanDiscard", PASS[:8]), ("ScanRead", PASS)]
    assert got[0].reason == "syn_dropped"


def test_scanner_list_shows_what_the_running_reader_knows(kernel, start, collector, tmp_path, capsys) -> None:
    import json
    import os

    from terminal.cli import build_parser
    from terminal.scanner.reader import read_state

    state = str(tmp_path / "state.json")
    scanner = kernel.plug("Barcode Scanner", port="usb-1")
    keyboard = kernel.plug("USB Keyboard", port="usb-2")
    reader = start(state_file=state)
    wait_until(lambda: scanner.grabbed_by is not None)
    kernel.type(scanner, type_text(PASS, "fr"))
    collector.wait(1)
    wait_until(lambda: (read_state(state) or {}).get("devices", [{}])[0].get("detected_layout") == "fr")

    args = build_parser().parse_args(["scanner", "list", "--json", "--input-dir", str(kernel.root), "--state", state])
    assert args.func(args) == 0
    listed = {d["path"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    assert listed[scanner.path]["douchette"] and listed[scanner.path]["grabbed"]
    assert listed[scanner.path]["reader_pid"] == os.getpid()
    assert listed[scanner.path]["detected_layout"] == "fr"
    assert not listed[keyboard.path]["douchette"] and not listed[keyboard.path]["grabbed"]
    reader.stop()
    assert read_state(state) is None  # a stopped reader leaves no state behind


def test_a_backlog_read_late_is_judged_on_event_times_not_on_the_clock(kernel, start, collector) -> None:
    """A reader that fell behind (busy machine) finds a whole scan queued, typed long ago, read 64 events at a
    time: the keys were 8 ms apart, so it is a good read, not an idle timeout."""
    scanner = kernel.plug("Barcode Scanner")
    start()
    wait_until(lambda: scanner.grabbed_by is not None)
    events = type_text(PASS, "fr", start=-3.0)
    assert len(events) > 3 * 64
    kernel.type(scanner, events)
    [read] = collector.wait(1)
    assert (read.text, read.layout) == (PASS, "fr")
