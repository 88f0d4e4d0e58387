"""`aptic-central serve --workers N`: several processes answer on one socket, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    env = {**os.environ, "APTIC_CENTRAL_SECRET": "workers-test"}
    server = subprocess.Popen(
        [sys.executable, "-m", "central.cli", "serve", "--data-dir", str(tmp_path), "--port", str(port), *options],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
            return server, port
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.1)


def test_workers_share_the_socket_and_stop_together(tmp_path: Path) -> None:
    server, port = _serve(tmp_path, "--workers", "2", "--threads", "2")
    try:
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(children) == 2  # two workers under the parent
        answers = [requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) for _ in range(40)]
        assert all(r.status_code == 200 and r.json() == {"status": "ok"} for r in answers)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists()  # no worker left behind
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_the_access_log_is_a_line_per_request_when_asked(tmp_path: Path) -> None:
    logs = {}
    for options in ((), ("--access-log",)):
        server, port = _serve(tmp_path, *options)
        requests.get(f"http://127.0.0.1:{port}/api/v1/passes/126000123407582112/validity?service=1", timeout=5)
        server.send_signal(signal.SIGTERM)
        logs[options] = server.communicate(timeout=15)[1]
    assert "central.access" not in logs[()]
    lines = [x for x in logs[("--access-log",)].splitlines() if "central.access" in x]
    assert "GET /api/v1/health 200" in lines[0]
    assert "GET /api/v1/passes/<path:number>/validity 401" in lines[-1] and lines[-1].endswith("device=-")
    assert "126000123407582112" not in logs[("--access-log",)]
