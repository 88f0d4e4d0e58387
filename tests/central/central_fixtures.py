"""Helpers of the central's tests (imported by ``conftest.py`` and the test modules; a uniquely named
module, so it cannot be confused with another folder's ``conftest``)."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import requests
import waitress.server
from sqlalchemy import Engine

from central.config import Settings
from central.services import admin

SECRET = b"test-secret-key-never-in-the-database"


class Clock:
    """A settable clock: ``clock()`` is now; ``clock.advance(minutes=16)``; ``clock.set(datetime)``."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)

    def set(self, moment: datetime) -> None:
        self.now = moment


class Device:
    """An activated device talking to the served app over HTTP."""

    def __init__(self, base: str, token: str, device_id: int, points: list[int]) -> None:
        self.base = base
        self.token = token
        self.id = device_id
        self.points = points
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.base + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.http.post(self.base + path, timeout=60, **kw)

    def validity(self, number: str, service: int = 1, point: int | None = None) -> dict[str, Any]:
        params = {"service": service, "point": point or self.points[0]}
        r = self.get(f"/api/v1/passes/{number}/validity", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def push(self, scans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        r = self.post("/api/v1/scans", json={"scans": scans})
        assert r.status_code == 200, r.text
        return r.json()["results"]


_ids = itertools.count(1)


def scan(
    number: str, point: int, when: datetime, *, service: int = 1, synced: bool = True, sid: str | None = None
) -> dict[str, Any]:
    """A scan as a terminal sends it."""
    return {
        "id": sid or str(uuid.uuid4()),
        "pass_number": number,
        "service": service,
        "point": point,
        "entry_id": None,
        "scanned_at": when.isoformat(),
        "clock_synced": synced,
        "seq": next(_ids),
    }


class Central:
    """The served app plus shortcuts to the admin services (run with the test clock)."""

    def __init__(self, base: str, engine: Engine, settings: Settings, clock: Clock) -> None:
        self.base = base
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.http = requests.Session()
        self._siret = itertools.count(10_000_000_000_000)

    def url(self, path: str) -> str:
        return self.base + path

    def organisation(self, name: str = "Médiathèque", *, insee: str = "33063", typologies: tuple[str, ...] = ("BIB",),
                     points: int = 1) -> tuple[int, list[int]]:  # fmt: skip
        org = admin.add_organisation(self.engine, name, str(next(self._siret)), self.clock())
        pts = [
            admin.add_point(self.engine, org, f"{name} {i}", insee, list(typologies), self.clock())
            for i in range(points)
        ]
        return org, pts

    def kit(self, org: int) -> dict[str, str]:
        return admin.add_kit(self.engine, org, self.clock())

    def activate(self, kit: dict[str, str], serial: str = "pi-0001") -> requests.Response:
        body = {
            "kit_number": kit["kit_number"],
            "activation_code": kit["activation_code"],
            "device": {"serial": serial, "model": "Raspberry Pi 5", "software_version": "0.1.0"},
        }
        return self.http.post(self.url("/api/v1/activations"), json=body, timeout=30)

    def device(self, org: int, serial: str = "pi-0001") -> Device:
        r = self.activate(self.kit(org), serial)
        assert r.status_code == 201, r.text
        body = r.json()
        return Device(self.base, body["token"], body["device_id"], [p["id"] for p in body["points_de_presence"]])

    def carnets(self, carnets: int = 1, size: int = 10, **kw: Any) -> list[str]:
        kw.setdefault("commanditaire", "Département de la Gironde")
        kw.setdefault("millesime", 2026)
        result = admin.issue_carnets(self.engine, SECRET, self.clock(), carnets=carnets, size=size, **kw)
        return result["passes"]


class LiveServer:
    """A WSGI app served by waitress in a thread on a loopback port."""

    def __init__(self, app: Any) -> None:
        self.server = waitress.server.create_server(
            app, host="127.0.0.1", port=0, threads=8, ident="test", asyncore_loop_timeout=0.1
        )
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
                time.sleep(0.05)

    def _run(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # the socket closed under select(): that is the stop
            self.server.run()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.close()
        for channel in list(self.server._map.values()):  # keep-alive connections keep the loop alive
            channel.close()
        self.server.task_dispatcher.shutdown(timeout=0.5)
        self.thread.join(timeout=2)
