"""A fake kernel input layer for the reader's tests: event nodes as files in a temporary directory, each backed
by a pipe, opened through a stand-in for ``evdev.InputDevice`` that implements grab (EBUSY), unplug (ENODEV,
with the descriptor left readable like a real hung-up evdev node), and permission errors.

The real kernel is exercised by tests/system (QEMU); this one makes the reader's logic fast to test anywhere.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from evdev.device import DeviceInfo

from terminal.scanner import keymaps as k
from terminal.scanner.reader import ScanDiscard, ScanRead
from terminal.scanner.typist import Event

INPUT_EVENT = struct.Struct("llHHi")
KEYBOARD_KEYS = sorted({*range(1, 89), k.KEY_KPENTER, k.KEY_RIGHTALT, k.KEY_RIGHTCTRL})


@dataclass
class FakeNode:
    path: str
    name: str
    phys: str
    vendor: int
    product: int
    keys: list[int] = field(default_factory=lambda: list(KEYBOARD_KEYS))
    denied: bool = False
    unplugged: bool = False
    grabbed_by: object | None = None
    opens: list[FakeInputDevice] = field(default_factory=list)


class FakeKernel:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: dict[str, FakeNode] = {}
        self._next = 0

    def plug(self, name: str, vendor: int = 0x1A2C, product: int = 0x2124, port: str = "usb-0000:00:14.0-1",
             interface: int = 0, keys: list[int] | None = None, denied: bool = False) -> FakeNode:  # fmt: skip
        path = str(self.root / f"event{self._next}")
        self._next += 1
        node = FakeNode(path, name, f"{port}/input{interface}", vendor, product, denied=denied)
        if keys is not None:
            node.keys = keys
        Path(path).write_text("")
        self.nodes[path] = node
        return node

    def unplug(self, node: FakeNode) -> None:
        node.unplugged = True
        for dev in node.opens:
            dev.hang_up()
        os.unlink(node.path)
        del self.nodes[node.path]

    def type(self, node: FakeNode, events: list[Event]) -> None:
        """Deliver events (times relative to now, on the wall clock as evdev does by default) to every open."""
        base = time.time()
        data = b"".join(
            INPUT_EVENT.pack(*divmod(round((base + t) * 1e6), 1_000_000), ty, c, v) for t, ty, c, v in events
        )
        for dev in node.opens:
            if dev.fd >= 0 and (node.grabbed_by is None or node.grabbed_by is dev):
                os.write(dev.w, data)

    def input_device(self, path: str, readonly: bool = False) -> FakeInputDevice:
        node = self.nodes.get(str(path))
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        if node.denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        dev = FakeInputDevice(node)
        node.opens.append(dev)
        return dev


class FakeInputDevice:
    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.path = node.path
        self.name = node.name
        self.phys = node.phys
        self.uniq = ""
        self.info = DeviceInfo(3, node.vendor, node.product, 0x111)
        self.fd, self.w = os.pipe()
        os.set_blocking(self.fd, False)

    def capabilities(self) -> dict[int, list[int]]:
        return {k.EV_KEY: list(self.node.keys)}

    def grab(self) -> None:
        if self.node.grabbed_by is not None and self.node.grabbed_by is not self:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.node.grabbed_by = self

    def ungrab(self) -> None:
        self.node.grabbed_by = None

    def hang_up(self) -> None:
        os.write(self.w, b"!")  # readable forever after, as a hung-up evdev descriptor polls

    def read(self):
        if self.node.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        data = os.read(self.fd, INPUT_EVENT.size * 64)  # at most 64 events per read, like evdev
        for sec, usec, ty, c, v in INPUT_EVENT.iter_unpack(data):
            yield _Ev(sec, usec, ty, c, v)

    def close(self) -> None:
        if self.node.grabbed_by is self:
            self.node.grabbed_by = None
        if self.fd >= 0:
            os.close(self.fd)
            os.close(self.w)
            self.fd = -1
        if self in self.node.opens:
            self.node.opens.remove(self)


@dataclass
class _Ev:
    sec: int
    usec: int
    type: int
    code: int
    value: int


class Collector:
    """What a reader delivered (reads and discards), in order; ``wait(n)`` until it holds ``n`` of them."""

    def __init__(self) -> None:
        self.items: list[ScanRead | ScanDiscard] = []
        self.cond = threading.Condition()

    def __call__(self, item: ScanRead | ScanDiscard) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 3.0) -> list[ScanRead | ScanDiscard]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout), f"got {self.items}"
            return list(self.items)
