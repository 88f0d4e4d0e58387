"""The daemon's side of the reader process: start it, receive its reads, restart it if it dies.

The douchette reader runs in a small process of its own (:mod:`terminal.scanner.service`, which says why),
so that nothing the daemon does (a large JSON encode, a garbage collection, the kiosk's eight threads) can
delay it. :class:`ReaderProcess` has the interface of :class:`~terminal.scanner.reader.ScannerReader`::

    reader = ReaderProcess(on_read, on_discard, ["--state", state_file, "--virtual", ""])
    reader.start()       # spawns the process; returns once it runs (or after ready_timeout, logging why)
    reader.alive()       # True while the process runs and reads (for the daemon's watchdog)
    reader.devices()     # the devices it last reported (for the kiosk and the heartbeat)
    reader.stall()       # how late its reads were: count, p999_ms, max_ms... (see terminal.scanner.stall)
    reader.stop()        # SIGTERM, then SIGKILL after a timeout

``on_read(ScanRead)`` and ``on_discard(ScanDiscard)`` are called on one thread of the daemon, in order, as
the lines arrive on a socket pair (:mod:`terminal.scanner.protocol`). If the process exits while the daemon
runs, it is started again after ``restart_delay`` seconds, doubling up to ``max_restart_delay`` while it
keeps dying young. If the daemon dies, the process sees its end of the socket close and exits: no orphan
keeps the douchette grabbed.

:func:`reader_args` turns the ``[scanner]`` section of the terminal's settings into the process's options.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from terminal.scanner import protocol
from terminal.scanner.reader import ScanDiscard, ScanRead

log = logging.getLogger(__name__)

SETTINGS: dict[str, str] = {
    "devices": "--device",
    "ignore": "--ignore",
    "heuristics": "--no-heuristics",
    "layout": "--layout",
    "fallback": "--fallback",
    "idle_timeout": "--idle-timeout",
    "rt_priority": "--rt-priority",
    "nice": "--nice",
    "event_pipe": "--event-pipe",
    "input_dir": "--input-dir",
    "process": "",
}
"""Keys of the ``[scanner]`` settings section and the reader option each becomes. ``devices`` and ``ignore``
are lists of selectors (``"0c2e:0b61=fr"``...); ``heuristics = false`` reads only the configured devices;
``process = false`` runs the reader as a thread of the daemon instead (for comparison and debugging only:
the daemon's other work then delays it)."""


def reader_args(settings: Mapping[str, Any], *, state_file: str | None = None, virtual: str | None = None) -> list[str]:
    """The reader's options from the ``[scanner]`` settings; ValueError names an unknown key.

    >>> reader_args({"devices": ["0627:0001"], "heuristics": False}, state_file="/run/s.json", virtual="")
    ['--device', '0627:0001', '--no-heuristics', '--state', '/run/s.json', '--virtual', '']
    """
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown [scanner] setting {', '.join(unknown)} (known: {', '.join(sorted(SETTINGS))})")
    args: list[str] = []
    for key, value in settings.items():
        option = SETTINGS[key]
        if key == "process":
            continue
        if key == "heuristics":
            args += [] if value else [option]
        elif isinstance(value, list | tuple):
            for item in value:
                args += [option, str(item)]
        else:
            args += [option, str(value)]
    if state_file:
        args += ["--state", state_file]
    if virtual is not None:
        args += ["--virtual", virtual]
    return args


class ReaderProcess:
    """The reader process, supervised (see the module docstring)."""

    def __init__(
        self,
        on_read: Callable[[ScanRead], None],
        on_discard: Callable[[ScanDiscard], None] | None = None,
        args: Sequence[str] = (),
        *,
        restart_delay: float = 1.0,
        max_restart_delay: float = 30.0,
        ready_timeout: float = 15.0,
        python: str = sys.executable,
    ) -> None:
        self.on_read, self.on_discard = on_read, on_discard
        self.command = [python, "-m", "terminal.scanner.service", *args]
        self.restart_delay, self.max_restart_delay = restart_delay, max_restart_delay
        self.ready_timeout = ready_timeout
        self.restarts = 0
        self.priority: str | None = None
        self._devices: list[dict] = []
        self._stall: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- public --------------------------------------------------------------------------------------------

    def start(self, wait: bool = True) -> None:
        """Start the process and its supervising thread; with ``wait``, return once the reader runs."""
        self._thread = threading.Thread(target=self._supervise, name="scanner-process", daemon=True)
        self._thread.start()
        if wait and not self._ready.wait(self.ready_timeout):
            log.warning("douchette reader process not ready after %.0f s; going on without waiting",
                        self.ready_timeout)  # fmt: skip

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process (SIGTERM, SIGKILL after ``timeout``) and the supervising thread."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("douchette reader process %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> ReaderProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The reader process's pid while it runs."""
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def alive(self) -> bool:
        """True while the process runs and has said it reads (False between its death and its restart)."""
        with self._lock:
            running = self._proc is not None and self._proc.poll() is None
        return running and self._ready.is_set() and self._thread is not None and self._thread.is_alive()

    def devices(self) -> list[dict]:
        """The input devices the process last reported ([] while it is not running)."""
        with self._lock:
            return list(self._devices)

    def stall(self) -> dict[str, Any]:
        """The process's last lateness figures (:meth:`terminal.scanner.stall.StallMeter.summary`)."""
        with self._lock:
            return dict(self._stall)

    # -- supervision ---------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        delay = self.restart_delay
        while not self._stopping.is_set():
            started = time.monotonic()
            status = self._run_once()
            if self._stopping.is_set():
                break
            lived = time.monotonic() - started
            delay = self.restart_delay if lived > 60 else delay
            self.restarts += 1
            log.warning("douchette reader process exited (%s) after %.1f s; starting it again in %.0f s",
                        _describe(status), lived, delay)  # fmt: skip
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, self.max_restart_delay)

    def _run_once(self) -> int | None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen([*self.command[:3], "--fd", str(theirs.fileno()), *self.command[3:]],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)  # fmt: skip
        except OSError as error:
            log.error("cannot start the douchette reader process: %s", error)
            ours.close()
            theirs.close()
            return None
        theirs.close()
        with self._lock:
            self._proc = proc
        try:
            with ours, ours.makefile("rb") as lines:
                for line in lines:
                    self._receive(line)
        except OSError as error:
            log.warning("lost the douchette reader process's socket: %s", error)
        finally:
            with self._lock:
                self._devices = []
            self._ready.clear()
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(5)
        proc.kill()  # its socket closed but it lives on: it cannot be trusted with the grab
        return proc.wait()

    def _receive(self, line: bytes) -> None:
        try:
            kind, body = protocol.decode(line)
        except ValueError as error:
            log.warning("unexpected line from the douchette reader process: %s", error)
            return
        try:
            if kind == "read":
                self.on_read(body)
            elif kind == "discard":
                if self.on_discard is not None:
                    self.on_discard(body)
            elif kind == "devices":
                with self._lock:
                    self._devices = list(body)
            elif kind == "stall":
                with self._lock:
                    self._stall = dict(body)
            elif kind == "ready":
                self.priority = body.get("priority")
                self._ready.set()
        except Exception:
            log.exception("handling a %s from the douchette reader process failed", kind)


def _describe(status: int | None) -> str:
    if status is None:
        return "not started"
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-status).name}"
    return f"status {status}"
