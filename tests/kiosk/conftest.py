"""The kiosk served for real: waitress on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from waitress.server import create_server

from kiosk_ui import create_app
from terminal.events import EventBus


@dataclass
class Kiosk:
    bus: EventBus
    host: str
    port: int
    csrf: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def kiosk(request: pytest.FixtureRequest) -> Iterator[Kiosk]:
    bus = EventBus(first_id=1)
    config = getattr(request, "param", {})
    app = create_app(bus, HEARTBEAT=0.3, **config)
    app.testing = False
    extra = getattr(request.module, "extra_routes", None)
    if extra:
        extra(app)
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Kiosk(bus, "127.0.0.1", server.effective_port, app.config["CSRF_TOKEN"])
    server.close()


class SSEStream:
    """A minimal EventSource: reads one stream line by line with a timeout, as a browser would."""

    def __init__(self, kiosk: Kiosk, last_event_id: int | None = None, timeout: float = 3.0) -> None:
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
