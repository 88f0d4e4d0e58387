"""The real central on loopback for the terminal's integration tests, and a small proxy that injects faults.

``Central`` runs ``aptic-central serve`` on a free port with its own database and key, and drives it with the
admin CLI (organisations, points, kits, carnets), as an operator would. ``FaultProxy`` sits between a
terminal and the central and, for the requests it is told to, answers slowly, resets the connection, or lets
the central commit and then answers 500.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Central:
    """``aptic-central`` with a fresh SQLite database in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.db = f"sqlite:///{directory / 'central.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> Any:
        verb = 2 if args[0] == "fleet" else 1  # fleet's options follow its subcommand
        command = [str(BIN / "aptic-central"), *args[:verb], "--db", self.db, "--data-dir", str(self.directory),
                   *args[verb:]]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {out.stderr}")
        return json.loads(out.stdout) if "--json" in args else out.stdout

    def start(self) -> Central:
        self.cli("init-db")
        log = (self.directory / "serve.log").open("w")
        self.process = subprocess.Popen(
            [
                str(BIN / "aptic-central"),
                "serve",
                "--db",
                self.db,
                "--data-dir",
                str(self.directory),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the central did not start: " + (self.directory / "serve.log").read_text())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def add_organisation(self, name: str, siret: str) -> int:
        return self.cli("add-organisation", "--name", name, "--siret", siret, "--json")["id"]

    def add_point(self, organisation: int, name: str, insee: str = "33039", typologie: str = "ITINERANT") -> int:
        return self.cli(
            "add-point",
            "--organisation",
            str(organisation),
            "--name",
            name,
            "--insee",
            insee,
            "--typologie",
            typologie,
            "--json",
        )["id"]

    def add_kit(self, organisation: int) -> tuple[str, str]:
        kit = self.cli("add-kit", "--organisation", str(organisation), "--json")
        return kit["kit_number"], kit["activation_code"]

    def issue(self, carnets: int, *extra: str) -> list[str]:
        out = self.cli(
            "issue-carnets",
            "--commanditaire",
            "Gironde",
            "--millesime",
            "2026",
            "--carnets",
            str(carnets),
            "--size",
            "5",
            *extra,
            "--json",
        )
        return out["passes"]


class FaultProxy:
    """An HTTP proxy to ``target`` on a free loopback port. Faults are queued per path prefix and each is used
    by one request: ``proxy.inject("/api/v1/scans", "reset")``.

    Faults: ``slow:<seconds>`` (forward, then wait before answering), ``reset`` (read the request, close the
    connection with a TCP reset, send nothing to the central), ``500_after_commit`` (forward, let the central
    commit, answer 500), ``429:<seconds>`` (answer 429 with Retry-After), ``down`` (close without answer).
    ``requests`` logs (method, path) of what reached the proxy. With ``tls`` (a server context), it speaks
    HTTPS to its clients and plain HTTP to the central.
    """

    def __init__(self, target: str, tls: ssl.SSLContext | None = None) -> None:
        self.target = target.removeprefix("http://")
        self.faults: dict[str, deque[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.queries: list[str] = []  # paths with their query strings
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_GET
            do_PUT = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:  # HTTPS, as the central is in the field; the handshake happens in each handler thread
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def inject(self, prefix: str, *faults: str) -> None:
        with self._lock:
            self.faults.setdefault(prefix, deque()).extend(faults)

    def _next_fault(self, path: str) -> str | None:
        with self._lock:
            for prefix, queue in self.faults.items():
                if path.startswith(prefix) and queue:
                    return queue.popleft()
        return None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests.append((handler.command, handler.path.split("?")[0]))
            self.queries.append(handler.path)
        fault = self._next_fault(handler.path) or ""
        if fault == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return
        if fault == "down":
            handler.close_connection = True
            return
        if fault.startswith("429:"):
            self._answer(
                handler,
                429,
                b'{"error": "too_many", "message": "Trop de requ\\u00eates."}',
                {"Retry-After": fault.split(":")[1]},
            )
            return
        upstream = http.client.HTTPConnection(self.target, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(handler.command, handler.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        if fault.startswith("slow:"):
            time.sleep(float(fault.split(":")[1]))
        if fault == "500_after_commit":
            self._answer(handler, 500, b'{"error": "internal", "message": "Erreur interne."}')
            return
        forwarded = ("retry-after", "www-authenticate", "content-encoding")  # a gzipped snapshot stays readable
        extra = {k: v for k, v in response.getheaders() if k.lower() in forwarded}
        self._answer(handler, response.status, data, extra)

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (its timeout): what a slow central looks like to it

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
