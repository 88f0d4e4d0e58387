"""A busy terminal, for the reader's lateness: a data directory with 10,000 scans pending, and a médiateur
recording entries through the kiosk's API while a page polls it.

Used by the QEMU system test (guest_busy.py) and by ``bench/reader.py``. Standard library only on the
client side (the guest runs it too). :func:`prepare` needs the terminal's packages.

- :func:`prepare`: the data directory (offline data, a point, the médiateur PIN ``1234``, ``pending`` scans
  in the outbox) and a settings file for ``aptic-terminal run`` with the given ``[scanner]`` section;
- :class:`KioskLoad`: threads that log in, then record one-pass entries in a loop (each one rewrites the
  outbox on disk, today) and poll ``/api/state`` as the page does; ``recorded`` counts the entries.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PIN = "1234"
SERVICE = 12


def prepare(data: Path, pending: int = 10_000, scanner: dict[str, Any] | None = None, port: int = 8080) -> Path:
    """Fill ``data`` and write ``data/terminal.json`` (settings for ``APTIC_TERMINAL_CONFIG``); return its path."""
    sys.path.insert(0, str(REPO / "tests" / "terminal"))
    sys.path.insert(0, str(REPO))
    from aptic.pin import hash_pin
    from bench.terminal import fill  # the terminal bench's own filler: snapshot, point, outbox
    from terminal.store import Store

    fill(data, 0, pending=pending)
    store = Store(data)
    store.update_state(mediateur_pin_hash=hash_pin(PIN))
    store.close()
    settings = data / "terminal.json"
    settings.write_text(json.dumps({"data_dir": str(data), "kiosk_port": port, "scanner": scanner or {}}))
    return settings


def pass_for(n: int) -> str:
    """A valid pass of its own carnet (so each entry is accepted and recorded)."""
    from aptic.passnumber import build, hmac_authenticator

    return build(2026, 700_000 + n, 1, hmac_authenticator(b"tests-only central key"))


def carnet_passes(count: int = 10, serial: int = 4_242_425) -> list[str]:
    """Passes 1..``count`` of one carnet the terminal does not know (each read gets a verdict, none is recorded):
    what a médiateur scans, pass after pass, from a carnet handed over."""
    from aptic.passnumber import build, hmac_authenticator

    return [build(2026, serial, position, hmac_authenticator(b"tests-only central key")) for position in
            range(1, count + 1)]  # fmt: skip


class KioskLoad:
    """A médiateur recording entries, and a page polling the state (see the module docstring)."""

    def __init__(self, port: int, passes: list[str], poll_interval: float = 0.1) -> None:
        self.port, self.passes, self.poll_interval = port, passes, poll_interval
        self.recorded = 0
        self.polls = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._csrf = ""

    def _request(self, method: str, path: str, body: dict | None = None, timeout: float = 120) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json", "X-CSRF-Token": self._csrf} if method == "POST" else {}
            conn.request(method, path, json.dumps(body or {}) if method == "POST" else None, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
            return json.loads(data)
        finally:
            conn.close()

    def start(self) -> None:
        self._csrf = self._request("GET", "/api/state")["csrf"]
        self._request("POST", "/api/mediateur/login", {"pin": PIN})
        for target in (self._record, self._poll):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_recorded(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.recorded < count:
            if self.errors or time.monotonic() > deadline:
                raise RuntimeError(f"{self.recorded} entries recorded; errors: {self.errors[:3]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(180)

    def _record(self) -> None:
        for number in self.passes:
            if self._stop.is_set():
                return
            try:
                self._request("POST", "/api/entry", {"service": SERVICE})
                self._request("POST", "/api/check", {"code": number})
                self._request("POST", "/api/entry/submit")
                self.recorded += 1
            except (OSError, RuntimeError) as error:
                self.errors.append(str(error))
                self._stop.wait(0.5)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._request("GET", "/api/state")
                self.polls += 1
            except (OSError, RuntimeError) as error:
                self.errors.append(str(error))
