"""The systemd watchdog: the real daemon pings while healthy; a failing check stops the pings and is named."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from central_server import free_port
from terminal_fixtures import running_daemon, wait_for

from terminal.scanner.process import ReaderProcess
from terminal.watchdog import Check, Watchdog, daemon_checks, kiosk_check, reader_check, store_check


def test_the_daemon_says_ready_then_pings_while_healthy_and_stopping_on_sigterm(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    port = free_port()
    with running_daemon(tmp_path / "data", port, NOTIFY_SOCKET=str(tmp_path / "notify"),
                        WATCHDOG_USEC="400000") as daemon:  # fmt: skip
        # The start's steps first (each extends systemd's start timeout), then READY=1 before any ping: the
        # store is open and the kiosk listens.
        steps = list(iter(lambda: notify.recv(100), b"READY=1"))
        assert len(steps) >= 4 and set(steps) == {b"EXTEND_TIMEOUT_USEC=60000000"}, steps
        pings = [notify.recv(100) for _ in range(5)]  # 0.2 s apart; recv's timeout bounds the wait
        assert pings == [b"WATCHDOG=1"] * 5
    log = daemon.stdout.read() if daemon.stdout else ""
    assert daemon.returncode == 0, log
    rest = []
    notify.settimeout(5)
    while (message := notify.recv(100)) != b"STOPPING=1":
        rest.append(message)
    assert set(rest) <= {b"WATCHDOG=1"}
    assert "Watchdog: pinging systemd every 0.2 s while healthy" in log
    assert not (tmp_path / "data" / ".watchdog-probe").exists()


def test_without_watchdog_usec_or_for_another_pid_there_is_no_watchdog() -> None:
    assert Watchdog.from_environment([], print, env={}) is None
    assert Watchdog.from_environment([], print, env={"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}) is None
    dog = Watchdog.from_environment([], print, env={"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())})
    assert dog is not None and dog.interval == pytest.approx(0.2)


class Healthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pings() -> list[str]:
    return []


def test_a_kiosk_that_does_not_answer_stops_the_pings_and_is_named_once(
    tmp_path: Path, pings: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there yet
    data = tmp_path / "data"
    data.mkdir()
    dog = Watchdog(daemon_checks(data, kiosk_url=f"http://127.0.0.1:{port}/healthz", timeout=0.5), 0.05,
                   pings.append)  # fmt: skip
    caplog.set_level(logging.INFO, logger="terminal.watchdog")
    for _ in range(5):  # several rounds of checks: no ping, and one log line only
        assert not dog.step()
    assert pings == [] and dog.failing and dog.failing.startswith("kiosk: ")
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "kiosk check failed" in failures[0] and str(port) in failures[0]

    server = ThreadingHTTPServer(("127.0.0.1", port), Healthz)  # the kiosk comes back: pings resume
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dog.start()
    try:
        wait_for(lambda: len(pings) >= 3, "pings once the kiosk answers", timeout=20)
        assert set(pings) == {"WATCHDOG=1"} and dog.failing is None
        assert any("healthy again" in r.getMessage() for r in caplog.records)
    finally:
        dog.stop()
        server.shutdown()
        server.server_close()


def test_each_check_fails_for_its_own_reason(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    assert "does not take writes" in (store_check(not_a_directory)() or "")
    assert store_check(tmp_path)() is None and not (tmp_path / ".watchdog-probe").exists()
    assert "HTTP 404" in (kiosk_check(_served_url("/missing"))() or "")

    class Dead:
        restarts = 3

        def alive(self) -> bool:
            return False

    assert "not running (restarted 3 times)" in (reader_check(Dead())() or "")

    def boom() -> str | None:
        raise RuntimeError("lock held")

    assert Check("terminal", boom).run() == "RuntimeError: lock held"
    dog = Watchdog([Check("store", store_check(not_a_directory))], 1.0, pytest.fail)
    assert not dog.step() and dog.failing and dog.failing.startswith("store: ")


def _served_url(path: str) -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.handle_request, daemon=True).start()  # one request, then it is done
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_the_reader_process_is_alive_while_it_runs_and_not_once_killed(tmp_path: Path) -> None:
    reader = ReaderProcess(print, print, ["--input-dir", str(tmp_path / "in"), "--virtual", str(tmp_path / "v.sock")],
                           restart_delay=30.0)  # fmt: skip
    assert not reader.alive()
    reader.start()
    try:
        wait_for(reader.alive, "the reader process to say it reads", timeout=20)
        check = reader_check(reader)
        assert check() is None
        pid = reader.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not reader.alive(), "the killed reader to count as dead", timeout=20)
        assert "douchette reader process is not running" in (check() or "")
    finally:
        reader.stop()
