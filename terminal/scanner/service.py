"""The reader process: the douchette reader alone in a small process, handing its reads to the daemon.

Why a process of its own. The kernel keeps about 64 events per evdev reader (21 HID reports); a douchette
reports every millisecond, and one in Alt+numpad mode sends some 130 reports for one pass. A reader that is
not scheduled for ~20 ms loses events (``SYN_DROPPED``) and the scan. In the daemon, the reader thread shares
one interpreter lock with the kiosk server, the sync worker and the Terminal, where one large JSON encode or
a garbage-collector pass holds the lock far longer than that. Here, the process imports only
:mod:`terminal.scanner` (no Flask, no TinyDB), freezes its start-up heap out of the garbage collector, and
asks for a real-time scheduling class, so the kernel runs it as soon as an event arrives.

Run by the daemon (:class:`terminal.scanner.process.ReaderProcess`), never by hand::

    python -m terminal.scanner.service --fd 5 --state /run/aptic/scanner.json [--virtual SOCKET] [--device ...]

It writes :mod:`terminal.scanner.protocol` lines on the socket ``--fd``; it reads nothing from it, but when
the daemon's end closes (the daemon exited, or was killed), it stops, which releases the grab. It ignores
SIGINT (a Ctrl-C in a terminal reaches the whole process group; the daemon decides) and stops on SIGTERM.

Priority, in this order: a real-time class it was started with (``CPUSchedulingPolicy=rr``) is
kept; else it asks for ``SCHED_RR`` at ``--rt-priority`` (10 by default; needs root, ``CAP_SYS_NICE`` or the
unit's ``LimitRTPRIO=``, as aptic-terminal.service sets);
else for ``--nice`` (-10; needs ``CAP_SYS_NICE`` or ``LimitNICE=``); else it logs once that it runs at
normal priority. The reader sleeps in ``select`` between events, so a real-time class costs nothing when
idle, and the kernel's real-time throttling (5 % of each second left to others) bounds a runaway.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import logging
import os
import queue
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence

from terminal.scanner import cli as scanner_cli
from terminal.scanner import protocol
from terminal.scanner.keymaps import LAYOUTS
from terminal.scanner.reader import ReaderConfig, ScanDiscard, ScannerReader, ScanRead, StructSource

log = logging.getLogger("terminal.scanner.service")

DEFAULT_RT_PRIORITY = 10
DEFAULT_NICE = -10


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m terminal.scanner.service", description=__doc__.split("\n")[0])
    p.add_argument("--fd", type=int, help="the socket to the daemon (inherited); none: lines on stdout")
    scanner_cli._decoder_options(p)
    scanner_cli._selection_options(p)
    p.add_argument("--virtual", nargs="?", const="", metavar="SOCKET", help="also run a virtual douchette")
    p.add_argument("--virtual-layout", choices=sorted(LAYOUTS), default="us")
    p.add_argument("--event-pipe", metavar="FIFO", help="a FIFO of raw struct input_event records, read as one "
                   "more douchette: a kernel-like source for benchmarks and tests without /dev/uinput")  # fmt: skip
    p.add_argument("--rt-priority", type=int, default=DEFAULT_RT_PRIORITY,
                   help="SCHED_RR priority to ask for (0: none)")  # fmt: skip
    p.add_argument("--nice", type=int, default=DEFAULT_NICE, help="nice value to ask for when SCHED_RR is refused")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, ReaderConfig]:
    """The options and the reader configuration they make (also used by a daemon that reads in a thread)."""
    args = build_parser().parse_args(list(argv))
    return args, scanner_cli.reader_config(args, scanner_cli.decoder_config(args))


def raise_priority(rt_priority: int = DEFAULT_RT_PRIORITY, nice: int = DEFAULT_NICE) -> str:
    """Ask for a real-time class, else a lower nice value, for this thread and those it starts; say what holds.

    Call it before starting threads: on Linux both are per thread, and new threads inherit them.
    """
    names = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}
    policy = os.sched_getscheduler(0)
    if policy in names:
        return f"{names[policy]} {os.sched_getparam(0).sched_priority} (as started)"
    refused = []
    if rt_priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(rt_priority))
            return f"SCHED_RR {rt_priority}"
        except OSError as error:
            refused.append(f"SCHED_RR {rt_priority}: {error.strerror}")
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current <= nice:
        return f"nice {current} (as started)"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        return f"nice {nice}"
    except OSError as error:
        refused.append(f"nice {nice}: {error.strerror}")
    log.warning("douchette reader at normal priority (refused: %s); a busy machine may make it miss events. "
                "Under systemd, allow it with LimitRTPRIO=10 (or LimitNICE=-10) in the unit",
                "; ".join(refused))  # fmt: skip
    return f"nice {current}"


def below_reader() -> None:
    """Put the calling thread one real-time priority below the reader thread (nothing if not real-time).

    Threads of one real-time priority do not preempt each other: on one core, the reader thread woken by an
    event waited for this thread to finish its once-a-second figures and state file (measured in a 250 MHz
    guest: up to 12 ms of the 21 ms the kernel's buffer covers). One level lower, the reader preempts it at
    once and gets the interpreter lock within the switch interval. Linux applies this to the calling thread.
    """
    policy = os.sched_getscheduler(0)
    priority = os.sched_getparam(0).sched_priority
    if policy in (os.SCHED_FIFO, os.SCHED_RR) and priority > 1:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(priority - 1))


class Link:
    """The socket to the daemon: lines go out through a queue and a thread, so the reader never waits on it."""

    def __init__(self, fd: int | None) -> None:
        self.closed = threading.Event()
        self._flushed = threading.Event()
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._sock = socket.socket(fileno=fd) if fd is not None else None
        threading.Thread(target=self._send, name="reader-link-out", daemon=True).start()
        if self._sock is not None:
            threading.Thread(target=self._watch, name="reader-link-in", daemon=True).start()

    def put(self, line: bytes) -> None:
        self._queue.put(line)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to ``timeout`` s), then close."""
        self._queue.put(None)
        self._flushed.wait(timeout)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    def _send(self) -> None:
        below_reader()
        while (line := self._queue.get()) is not None:
            try:
                if self._sock is None:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
                else:
                    self._sock.sendall(line)
            except OSError:
                self.closed.set()
        self._flushed.set()

    def _watch(self) -> None:
        assert self._sock is not None
        below_reader()
        with contextlib.suppress(OSError):
            while self._sock.recv(4096):
                pass
        self.closed.set()  # the daemon's end is closed: it is gone


class LocalReader:
    """The reader and its extra sources (virtual douchette, event pipe) in this process, from the options.

    What the reader process runs; a daemon whose ``[scanner]`` settings say ``process = false`` runs it as
    threads of its own (for comparison and debugging). The interface of
    :class:`~terminal.scanner.reader.ScannerReader`, plus :meth:`stall`.
    """

    def __init__(self, argv: Sequence[str], on_read: Callable[[ScanRead], None],
                 on_discard: Callable[[ScanDiscard], None] | None = None, *,
                 on_change: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.args, config = parse(argv)
        if self.args.fd is not None:  # in the reader process: its main thread refreshes the state file
            config = dataclasses.replace(config, state_interval=None)
        self.reader = ScannerReader(on_read, on_discard, config, on_change=on_change)
        self.virtual = None
        if self.args.virtual is not None:
            from terminal.scanner.virtual import VirtualDouchette

            self.virtual = VirtualDouchette(self.args.virtual or None, layout=self.args.virtual_layout)
            self.virtual.attach(self.reader)
        if self.args.event_pipe:
            self.reader.add_source(FifoSource(self.args.event_pipe), "event-pipe", "event pipe")

    def start(self) -> None:
        if self.virtual is not None:
            self.virtual.start()
        self.reader.start()

    def stop(self) -> None:
        if self.virtual is not None:
            self.virtual.stop()
        self.reader.stop()

    def devices(self) -> list[dict]:
        return self.reader.devices()

    def stall(self) -> dict[str, float | int]:
        return self.reader.stall.summary()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")  # fmt: skip
    priority = raise_priority(args.rt_priority, args.nice)  # first: the threads below inherit it
    sys.setswitchinterval(0.001)  # a helper thread holding the lock yields within 1 ms, not 5
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    link = Link(args.fd)
    signal.signal(signal.SIGTERM, lambda *_: link.closed.set())

    last_devices: list[dict] | None = None

    def send_devices() -> None:
        nonlocal last_devices
        devices = local.devices()
        if devices != last_devices:
            last_devices = devices
            link.put(protocol.encode("devices", devices))

    local = LocalReader(sys.argv[1:] if argv is None else argv, lambda r: link.put(protocol.encode_read(r)),
                        lambda d: link.put(protocol.encode_discard(d)), on_change=send_devices)  # fmt: skip
    local.start()
    gc.collect()
    gc.freeze()  # the start-up heap is never garbage: keep the collector off it (short pauses, if any)
    below_reader()  # from here on, this thread only keeps the books
    log.info("douchette reader running (pid %d, %s)", os.getpid(), priority)
    link.put(protocol.encode("ready", {"pid": os.getpid(), "priority": priority}))
    sent = -1
    while not link.closed.wait(1.0):  # this thread, not the reader's, refreshes the figures and the state file
        if local.reader.stall.count != sent:
            sent = local.reader.stall.count
            link.put(protocol.encode("stall", local.stall()))
            local.reader.write_state()
    local.stop()
    link.put(protocol.encode("stall", local.stall()))
    link.close()
    return 0


class FifoSource(StructSource):
    """Raw ``struct input_event`` records from a named pipe another program writes (see ``--event-pipe``).

    It is opened read-write so that it never reads end-of-file between writers; the writer's timestamps are
    taken as the kernel's would be (``CLOCK_MONOTONIC``).
    """

    def __init__(self, path: str) -> None:
        self.path = f"fifo:{path}"
        self._r = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._w = -1
        self._buf = b""


if __name__ == "__main__":
    sys.exit(main())
