"""The kiosk served for real: a Terminal on a real store in a temporary directory, and waitress on a free
loopback port in a thread of the test process."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from waitress.server import create_server

from aptic.passnumber import build, hmac_authenticator
from aptic.pin import hash_pin
from kiosk_ui import Kiosk, create_app
from terminal.events import EventBus
from terminal.feedback import Feedback, Pins
from terminal.store import Store
from terminal.terminal import Terminal

AUTH = hmac_authenticator(b"kiosk tests")
YEAR = date.today().year
PIN = "2468"


def pass_number(serial: int, position: int = 1) -> str:
    return build(YEAR, serial, position, AUTH)


def snapshot() -> dict:
    """Offline data as the central sends it: two points, one order in Gironde, one order restricted to 2.2."""
    yy = f"{YEAR % 100:02d}"
    return {
        "cursor": "1",
        "generated_at": f"{YEAR}-01-01T00:00:00+00:00",
        "organisation": {"id": 1, "name": "Médiathèques de Bègles", "qualified": True,
                         "catalogue": [12, 48, 84, 85, 90, 95, 124]},
        "points": [
            {"id": 3, "name": "Médiathèque Jean-Jacques Rousseau", "insee": "33039", "typologies": ["BIB"]},
            {"id": 4, "name": "Bus numérique", "insee": "33039", "typologies": ["ITINERANT"]},
        ],
        "orders": [
            {"id": 7, "commanditaire": "Département de la Gironde", "millesime": YEAR, "value_cents": 1000,
             "activated": True, "restrictions": {"territories": ["33"], "territory_label": "Gironde"},
             "carnets": [{"first": f"1{yy}0000001", "last": f"1{yy}0000100"}]},
            {"id": 8, "commanditaire": "CCAS de Bègles", "millesime": YEAR, "value_cents": 1000, "activated": True,
             "restrictions": {"categories": ["2.2"]},
             "carnets": [{"first": f"1{yy}0000200", "last": f"1{yy}0000299"}]},
        ],
        "blocked_carnets": [f"1{yy}0000050"],
        "used_passes": [],
    }  # fmt: skip


@dataclass
class Served:
    terminal: Terminal
    feedback: Feedback
    host: str
    port: int
    csrf: str
    app: Flask

    @property
    def bus(self) -> EventBus:
        return self.terminal.bus

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def terminal(request: pytest.FixtureRequest, tmp_path: Path) -> Terminal:
    """An activated terminal with offline data, standing at point 3 (``indirect`` param: another, or None)."""
    store = Store(tmp_path / "terminal")
    store.save_token("kiosk-test-token")  # as activation leaves it
    store.update_state(device_id="dev-1", mediateur_pin_hash=hash_pin(PIN))
    terminal = Terminal(store, bus=EventBus(first_id=1))
    terminal.load_snapshot(snapshot())
    point = getattr(request, "param", 3)
    if point is not None:
        terminal.set_point(point)
    return terminal


@pytest.fixture
def kiosk(request: pytest.FixtureRequest, terminal: Terminal) -> Iterator[Served]:
    from gpiozero.pins.mock import MockFactory

    config = getattr(request, "param", {})
    feedback = Feedback(Pins(), pin_factory=MockFactory())
    app = create_app(
        Kiosk(
            terminal,
            feedback=feedback,
            # The shapes of ScannerReader.devices() and SyncWorker.status(), which feed these in `run`.
            scanners=lambda: [
                {
                    "name": "Virtual douchette",
                    "douchette": True,
                    "grabbed": True,
                    "layout": "auto",
                    "detected_layout": "fr",
                },
                {"name": "AT Translated Set 2 keyboard", "douchette": False, "grabbed": False, "layout": None},
            ],
            sync_status=lambda: {"online": False, "last_success": None, "last_error": "connection refused"},
            pin_hash=terminal.mediateur_pin_hash,
            version="test",
        ),
        HEARTBEAT=0.3,
        **config,
    )
    extra = getattr(request.module, "extra_routes", None)
    if extra:
        extra(app)
    server = create_server(app, host="127.0.0.1", port=0, threads=8, asyncore_loop_timeout=0.1)  # prompt stop
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Served(terminal, feedback, "127.0.0.1", server.effective_port, app.config["CSRF_TOKEN"], app)
    # Let open streams notice their closed sockets (next heartbeat) before the server goes away.
    slots = app.extensions["aptic.stream_slots"]
    taken = [slots.acquire(timeout=3) for _ in range(app.config["MAX_STREAMS"])]
    for ok in taken:
        if ok:
            slots.release()
    stop_server(server, thread)
    feedback.close()


def stop_server(server: Any, thread: threading.Thread) -> None:
    """Stop a waitress server running ``server.run`` in ``thread`` (made with a short asyncore_loop_timeout)."""
    # Stop the loop before closing anything: closed under a running loop, its select() could meet a closed
    # descriptor (EBADF in the server thread). An empty map ends the loop at its next turn, every descriptor
    # still open; no write to the trigger, whose descriptor a closing server may already have released.
    dispatchers = list(server._map.values())
    server._map.clear()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the kiosk's server loop did not stop"
    for dispatcher in dispatchers:
        dispatcher.close()
    server.task_dispatcher.shutdown()


class SSEStream:
    """A minimal EventSource: reads one stream line by line with a timeout, as a browser would."""

    def __init__(self, kiosk: Served, last_event_id: int | None = None, timeout: float = 3.0) -> None:
        self.conn = http.client.HTTPConnection(kiosk.host, kiosk.port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", "/events", headers=headers)
        self.response = self.conn.getresponse()

    def line(self) -> str:
        return self.response.readline().decode().rstrip("\r\n")

    def message(self) -> dict[str, str]:
        """The next message's fields (comments kept under ':'), read up to its blank line."""
        fields: dict[str, str] = {}
        while (line := self.line()) != "":
            key, _, value = line.partition(":")
            fields[key or ":"] = value.strip()
        return fields

    def event(self) -> dict[str, str]:
        """The next event, heartbeats skipped."""
        while ":" in (msg := self.message()):
            pass
        return msg

    def close(self) -> None:
        """Close as a browser closing the tab would: the socket goes, the server learns on its next write."""
        sock = self.response.fp.raw._sock if self.response.fp else None  # type: ignore[union-attr]
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.response.close()
        self.conn.close()


@pytest.fixture
def sse() -> type[SSEStream]:
    return SSEStream


