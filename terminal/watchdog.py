"""The daemon's systemd watchdog: ``WATCHDOG=1`` only while the terminal truly works.

A unit with ``WatchdogSec=30s`` gives the daemon ``WATCHDOG_USEC=30000000`` (and ``WATCHDOG_PID``, its own
pid). If systemd hears no ``WATCHDOG=1`` on ``NOTIFY_SOCKET`` for that long, it kills the daemon with
SIGABRT and, with ``Restart=always``, starts it again. A ping sent by a thread that pings regardless would
only prove that one thread of the interpreter runs; so before each ping the watchdog runs the checks that
matter to a person at the terminal::

    checks = [
        Check("douchette reader", reader_check(reader)),        # the reader process runs
        Check("store", store_check(data_dir)),                   # the data directory takes an fsync'd write
        Check("kiosk", kiosk_check("http://127.0.0.1:8080/healthz", timeout=2)),
    ]
    dog = Watchdog.from_environment(checks, notify_systemd)    # None outside systemd or without WatchdogSec
    if dog is not None:
        dog.start()                                              # a thread: check, ping, sleep half the interval
    ...
    dog.stop()

A check is a callable that returns ``None`` when all is well, or a short English reason. When one fails the
watchdog stops pinging and logs once which check failed and why (systemd's own log line says only
"Watchdog timeout"); it logs again only when the failure changes, and says when the terminal is healthy
again (a reader restarting within the interval does not cost a restart of the whole daemon).

A SIGSTOPped or deadlocked daemon stops pinging too, because the checks and the pings run in its process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PROBE = ".watchdog-probe"
"""The tiny file the store check writes, fsyncs and removes in the data directory."""


@dataclass(frozen=True)
class Check:
    """One health check: a name for the log, and a callable returning None (healthy) or a reason."""

    name: str
    probe: Callable[[], str | None]

    def run(self) -> str | None:
        try:
            return self.probe()
        except Exception as error:  # a check that raises has failed: say how
            return f"{type(error).__name__}: {error}"


def interval_from(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when systemd asked for no watchdog.

    ``WATCHDOG_PID``, when set, must be this process: a child that inherited the variables must not ping.

    >>> interval_from({"WATCHDOG_USEC": "30000000"})
    15.0
    >>> interval_from({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    True
    """
    env = os.environ if env is None else env
    pid = os.getpid() if pid is None else pid
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
        owner = int(env.get("WATCHDOG_PID", "0") or 0)
    except ValueError:
        logger.warning("Ignoring a malformed WATCHDOG_USEC/WATCHDOG_PID")
        return None
    if usec <= 0 or (owner and owner != pid):
        return None
    return usec / 2_000_000


def reader_check(reader: Any) -> Callable[[], str | None]:
    """Healthy while the douchette reader runs (``ReaderProcess.alive()``; readers without it are trusted)."""

    def probe() -> str | None:
        alive = getattr(reader, "alive", None)
        if alive is None or alive():
            return None
        return f"the douchette reader process is not running (restarted {getattr(reader, 'restarts', '?')} times)"

    return probe


def store_check(directory: Path) -> Callable[[], str | None]:
    """Healthy while ``directory`` accepts a small write that reaches the disk (written, fsync'd, removed).

    ``os.access`` would not do: it answers yes to root whatever the mode, and yes on a file system that the
    kernel remounted read-only after an SD card error. A real write sees EROFS, ENOSPC or EIO.
    """
    path = Path(directory) / PROBE

    def probe() -> str | None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, b"ok\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(path)
        except OSError as error:
            return f"the data directory {directory} does not take writes ({error.strerror or error})"
        return None

    return probe


def kiosk_check(url: str, timeout: float = 2.0) -> Callable[[], str | None]:
    """Healthy while the kiosk answers ``GET url`` (its ``/healthz``) with 200 within ``timeout`` seconds."""

    def probe() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                if answer.status == 200:
                    return None
                return f"the kiosk answered {url} with HTTP {answer.status}"
        except urllib.error.HTTPError as error:  # urlopen raises for any status but 2xx
            return f"the kiosk answered {url} with HTTP {error.code}"
        except OSError as error:  # URLError, timeouts and refused connections are all OSErrors
            return f"the kiosk does not answer {url} ({getattr(error, 'reason', error)})"

    return probe


class Watchdog:
    """Runs ``checks`` every ``interval`` seconds and sends ``WATCHDOG=1`` through ``notify`` when all pass."""

    def __init__(self, checks: Sequence[Check], interval: float, notify: Callable[[str], None]) -> None:
        self.checks, self.interval, self.notify = list(checks), interval, notify
        self.failing: str | None = None  # the last failure logged, None while healthy
        self.pings = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environment(cls, checks: Sequence[Check], notify: Callable[[str], None],
                         env: Mapping[str, str] | None = None) -> Watchdog | None:  # fmt: skip
        """A watchdog at half systemd's ``WATCHDOG_USEC``, or None when the unit has no ``WatchdogSec``."""
        interval = interval_from(env)
        return None if interval is None else cls(checks, interval, notify)

    def start(self) -> Watchdog:
        self._thread = threading.Thread(target=self._loop, name="aptic-watchdog", daemon=True)
        self._thread.start()
        logger.info("Watchdog: pinging systemd every %.1f s while healthy", self.interval)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def step(self) -> bool:
        """Run the checks once; ping if all pass. True when it pinged."""
        for check in self.checks:
            reason = check.run()
            if reason is not None:
                failure = f"{check.name}: {reason}"
                if failure != self.failing:
                    logger.error("Watchdog: not pinging systemd, %s check failed: %s", check.name, reason)
                    self.failing = failure
                return False
        if self.failing is not None:
            logger.warning("Watchdog: healthy again, pinging systemd (was failing: %s)", self.failing)
            self.failing = None
        with contextlib.suppress(OSError):  # systemd gone (shutdown): nothing to tell
            self.notify("WATCHDOG=1")
            self.pings += 1
        return True

    def _loop(self) -> None:
        while True:
            self.step()
            if self._stopping.wait(self.interval):
                return


def daemon_checks(data_dir: Path, reader: Any = None, kiosk_url: str | None = None,
                  timeout: float = 2.0) -> list[Check]:  # fmt: skip
    """The checks of ``aptic-terminal run``: the reader if one was started, the store, the kiosk if it serves."""
    checks = [Check("store", store_check(data_dir))]
    if reader is not None:
        checks.insert(0, Check("douchette reader", reader_check(reader)))
    if kiosk_url:
        checks.append(Check("kiosk", kiosk_check(kiosk_url, timeout)))
    return checks
