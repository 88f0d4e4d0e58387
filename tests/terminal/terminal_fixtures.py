"""Helpers shared by the terminal's tests and their subprocesses (no pytest needed here)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from aptic.passnumber import build, hmac_authenticator

REPO = Path(__file__).resolve().parents[2]
AUTHENTICATOR = hmac_authenticator(b"tests-only central key")
ORG = 1
POINT = 3
OTHER_POINT = 4


def pass_number(serial: int, position: int = 1, millesime: int = 2026) -> str:
    """The 18 digits of a pass the test central would have issued."""
    return build(millesime, serial, position, AUTHENTICATOR)


def carnet(serial: int, millesime: int = 2026) -> str:
    return pass_number(serial, 1, millesime)[:10]


def make_snapshot(**changes: Any) -> dict[str, Any]:
    """Offline data in the shape ``terminal.snapshot`` reads: one organisation in Gironde with two points,
    an order of 2026 carnets 1-9,999,999 without restrictions except where ``changes`` add some."""
    data: dict[str, Any] = {
        "cursor": "c1",
        "generated_at": "2026-11-20T09:00:00+01:00",
        "organisation": {"id": ORG, "name": "Médiathèque de Bègles", "qualified": True},
        "points_de_presence": [
            {"id": POINT, "name": "Bus numérique", "insee": "33039", "typologies": ["ITINERANT"]},
            {"id": OTHER_POINT, "name": "Médiathèque", "insee": "33039", "typologies": ["BIB"], "catalogue": [1, 2, 3]},
        ],
        "orders": [
            {
                "id": 7,
                "commanditaire": "Département de la Gironde",
                "millesime": 2026,
                "value_cents": 1000,
                "activated": True,
                "restrictions": {"territories": ["33"], "territory_label": "Gironde"},
                "carnets": [{"first": carnet(1), "last": carnet(999_999)}],
            },
            {
                "id": 8,
                "commanditaire": "Ville de Paris",
                "millesime": 2026,
                "restrictions": {"territories": ["75"], "services": [84, 85]},
                "carnets": [{"first": carnet(1_000_000), "last": carnet(1_000_999)}],
            },
        ],
        "blocked_carnets": [carnet(666)],
        "used_passes": [
            {
                "pass_number": pass_number(500, 2),
                "service": 12,
                "organisation_id": 9,
                "on": "2026-11-02",
                "place_name": "EPN de Talence",
            },
        ],
    }
    data.update(changes)
    return data


class FakeTime:
    """A wall clock and a monotonic clock that move only when a test says so."""

    def __init__(self, start: datetime) -> None:
        self.wall = start
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def run_and_kill(command: list[str], *, env: dict[str, str], after: float, log: Path) -> list[str]:
    """Run ``command``, wait for its ``ready`` line, SIGKILL it ``after`` seconds later; return the complete
    lines it printed after ``ready`` (what it acknowledged before dying). Its stderr goes to ``log``."""
    with log.open("a") as errors:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line == "ready\n":
                ready.set()
            elif line.endswith("\n"):
                lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read)
    reader.start()
    if not ready.wait(20):
        child.kill()
        raise AssertionError("the child did not start: " + log.read_text())
    time.sleep(after)
    if child.poll() is not None:
        raise AssertionError(f"the child ended by itself ({child.returncode}): " + log.read_text())
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join(10)
    return lines


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``probe()``'s first truthy answer; a server not answering yet (connection refused) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if answer := probe():
                return answer
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextlib.contextmanager
def running_daemon(data_dir: Path, kiosk_port: int, **env: str) -> Iterator[subprocess.Popen[str]]:
    """``aptic-terminal run --no-scanner`` on ``data_dir``, its kiosk on ``kiosk_port``, LEDs on mock pins.

    Stopped with SIGTERM on leaving the block (killed, and the test failed, if that takes over 15 s); then
    ``returncode`` is set and its output (stdout and stderr together) is left for the test to read.
    """
    environ = {**os.environ, "APTIC_TERMINAL_DATA_DIR": str(data_dir), "APTIC_TERMINAL_CONFIG": "/nonexistent",
               "APTIC_TERMINAL_KIOSK_PORT": str(kiosk_port), "GPIOZERO_PIN_FACTORY": "mock", **env}  # fmt: skip
    daemon = subprocess.Popen([sys.executable, "-m", "terminal.cli", "run", "--no-scanner"], cwd=REPO,
                              env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        yield daemon
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            raise
