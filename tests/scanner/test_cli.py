"""The ``aptic-terminal scanner`` commands, as a user runs them, and the virtual douchette behind ``type``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from aptic.passnumber import build, hmac_authenticator
from terminal.scanner import keymaps as k
from terminal.scanner.reader import ReaderConfig, ScannerReader
from terminal.scanner.typist import type_text
from terminal.scanner.virtual import VirtualDouchette, send

PASS = build(2026, 1234, 7, hmac_authenticator(b"test"))
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "terminal.cli"]


def event_lines(events, device: str | None = None) -> str:
    keys = ("t", "type", "code", "value")
    return "".join(json.dumps(dict(zip(keys, e, strict=True)) | ({"device": device} if device else {})) + "\n"
                   for e in events)  # fmt: skip


def run_cli(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=30)


def test_decode_writes_one_json_line_per_read() -> None:
    stdin = event_lines(type_text(PASS, "fr")) + event_lines(type_text("123", "us", start=1.0, terminator=None))
    stdin += event_lines(type_text(PASS, "us", "keypad", start=2.0))
    out = run_cli("scanner", "decode", stdin=stdin)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"code": PASS, "layout": "fr"},
        {"discarded": "123", "reason": "timeout"},
        {"code": PASS, "layout": "keypad"},
    ]


def test_decode_with_a_fixed_layout_and_devices() -> None:
    stdin = event_lines(type_text("12", "fr", start=0.0), "a") + event_lines(type_text("12", "fr", start=0.001), "b")
    out = run_cli("scanner", "decode", "--layout", "us", stdin=stdin)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(lines, key=lambda d: d["device"]) == [
        {"device": "a", "code": "!@", "layout": "us"},
        {"device": "b", "code": "!@", "layout": "us"},
    ]


def test_decode_ends_a_pending_read_at_end_of_input_and_reports_bad_lines() -> None:
    stdin = "not json\n" + event_lines(type_text("77", "us", terminator=None))
    out = run_cli("scanner", "decode", stdin=stdin)
    assert out.returncode == 1 and "line 1" in out.stderr
    assert json.loads(out.stdout) == {"discarded": "77", "reason": "end_of_input"}


def test_decode_without_terminator_keys_and_flush_on_idle() -> None:
    stdin = event_lines(type_text(PASS, "us", terminator=k.KEY_TAB))
    stdin += event_lines(type_text("99", "us", start=5.0, terminator=None))
    out = run_cli("scanner", "decode", "--terminators", "", "--flush-on-idle", stdin=stdin)
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"code": PASS, "layout": "us"},
        {"code": "99", "layout": "us"},
    ]


def test_list_json_on_a_machine_without_input_devices(tmp_path: Path) -> None:
    # A state file of its own: a daemon running on this machine must not show up here.
    out = run_cli("scanner", "list", "--json", "--input-dir", str(tmp_path), "--state", str(tmp_path / "s.json"))
    assert out.returncode == 0 and json.loads(out.stdout) == {"devices": [], "reader": None}


def test_virtual_douchette_goes_through_the_reader(tmp_path: Path) -> None:
    got = []
    done = threading.Event()

    def on_read(r) -> None:
        got.append((r.device, r.text, r.layout))
        if len(got) == 3:
            done.set()

    douchette = VirtualDouchette(str(tmp_path / "v.sock"), layout="fr")
    reader = ScannerReader(on_read, config=ReaderConfig(input_dir=str(tmp_path / "none")))
    douchette.attach(reader)
    douchette.start()
    with reader:
        started = time.monotonic()
        send(PASS, douchette.socket_path)  # the server's layout, fr
        typing = time.monotonic() - started
        send(PASS, douchette.socket_path, layout="us", style="altnum", interval=0.002)
        send("AB-12", douchette.socket_path, layout="fr")
        assert done.wait(5)
        assert [d["why"] for d in reader.devices()] == ["virtual douchette"]
    douchette.stop()
    assert got == [("virtual", PASS, "fr"), ("virtual", PASS, "altnum"), ("virtual", "QB6!@", "us")]
    assert typing > 18 * 0.008  # keys are typed in real time, like a scanner


def test_listen_and_type_end_to_end(tmp_path: Path) -> None:
    sock = str(tmp_path / "s.sock")
    env = {**os.environ, "APTIC_SCANNER_SOCKET": sock, "APTIC_SCANNER_STATE": str(tmp_path / "state.json")}
    listen = subprocess.Popen([*CLI, "scanner", "listen", "--virtual", "--input-dir", str(tmp_path)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            assert time.monotonic() < deadline and listen.poll() is None, listen.stderr.read()
            time.sleep(0.05)
        typed = run_cli("scanner", "type", PASS, "--layout", "fr", env=env)
        assert typed.returncode == 0, typed.stderr
        assert json.loads(listen.stdout.readline()) == {"device": "virtual", "code": PASS, "layout": "fr"}
    finally:
        listen.terminate()
        assert listen.wait(10) == 0


def test_type_without_a_listener_says_what_to_run(tmp_path: Path) -> None:
    out = run_cli("scanner", "type", "123", "--socket", str(tmp_path / "nobody.sock"))
    assert out.returncode == 1 and "scanner listen --virtual" in out.stderr


def test_device_option_takes_an_optional_layout() -> None:
    from terminal.cli import build_parser
    from terminal.scanner.cli import reader_config

    args = build_parser().parse_args(
        ["scanner", "listen", "--device", "0c2e:0b61=fr", "--device", "QEMU USB Keyboard", "--device", "a=b"]
    )
    cfg = reader_config(args)
    assert cfg.devices == ("0c2e:0b61", "QEMU USB Keyboard", "a=b")
    assert cfg.layouts == (("0c2e:0b61", "fr"),)


def test_virtual_douchette_refuses_what_its_layout_cannot_type(tmp_path: Path) -> None:
    import pytest

    douchette = VirtualDouchette(str(tmp_path / "v.sock"), layout="us")
    douchette.start()
    try:
        with pytest.raises(RuntimeError, match="cannot type"):
            send("€", douchette.socket_path)
        send("€", douchette.socket_path, layout="fr")  # AltGr+E on AZERTY
    finally:
        douchette.stop()
