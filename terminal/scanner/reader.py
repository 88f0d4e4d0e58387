"""The douchette reader: finds, grabs and reads every douchette, hotplug included, in one thread.

Usage (what the terminal daemon does)::

    from terminal.scanner import ReaderConfig, ScannerReader

    def on_read(read: ScanRead) -> None:        # called on the reader thread: be quick, or hand it off
        terminal.handle_code(read.text)          # read.device, read.layout, read.monotonic, read.wall too

    reader = ScannerReader(on_read, on_discard=log_discard, config=ReaderConfig(devices=("0c2e:0b61",)))
    reader.start()                               # returns at once; the reader runs in its own thread
    ...
    reader.devices()                             # what ``scanner list`` shows: seen, douchette, grabbed, layout
    reader.stop()                                # ungrabs, closes, discards pending reads as "stopped"

How it works. One thread runs :meth:`ScannerReader.run`: a ``select`` (epoll) over the grabbed nodes and a
wake-up pipe, with a timeout that is the earliest of the next rescan and the decoders' idle deadlines.

- Discovery: every ``rescan_interval`` (0.5 s) it lists ``/dev/input/event*`` and probes the nodes it has not
  seen (or whose inode or ctime changed: a replug, or udev fixing permissions), groups them by physical device
  and classifies them (:mod:`terminal.scanner.devices`). A periodic listing is robust (no event to miss, works
  without udev) and puts a plugged-in douchette to work well within 2 s.
- Grab: each node of a douchette is opened read-only, switched to monotonic event time, and grabbed with
  EVIOCGRAB, so nothing it types reaches any other program. If another program holds the grab (EBUSY) the
  node is not read, and the grab is retried at each rescan until it succeeds.
- Read: events go to one :class:`~terminal.scanner.decoder.Decoder` per physical device; its finished reads
  become :class:`ScanRead` and its discards :class:`ScanDiscard`, with the monotonic and wall time of the
  terminating key event.
- Lateness: every read is timed against the kernel's stamp of its oldest event (both on
  ``CLOCK_MONOTONIC``) into :attr:`ScannerReader.stall` (:mod:`terminal.scanner.stall`); the state file
  carries its summary, refreshed every second while reads come in.
- Unplug: a read that fails (ENODEV, or any OSError) unregisters and closes that node at once (a dead
  descriptor left in ``select`` would spin) and discards the device's pending read as ``unplugged``. Nothing
  in one iteration can kill the thread: errors are logged and the loop goes on with the other devices.
- Other sources, like the virtual douchette, join the same loop with :meth:`ScannerReader.add_source`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import selectors
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from terminal.scanner import devices as devmod
from terminal.scanner.decoder import AUTO, Decoder, DecoderConfig, Discard, Read, Result
from terminal.scanner.stall import StallMeter
from terminal.scanner.typist import Event

log = logging.getLogger(__name__)

EVIOCSCLOCKID = 0x400445A0  # _IOW('E', 0xa0, int): choose the clock of the event timestamps
INPUT_EVENT = struct.Struct("llHHi")  # struct input_event on this machine (16 bytes on 32-bit userlands)


@dataclass(frozen=True, slots=True)
class ScanRead:
    """A finished read, as the Terminal receives it."""

    device: str
    """Stable id of the douchette (by-id name, or ``vendor:product@usb-port``)."""
    text: str
    layout: str
    """``us``, ``fr``, ``keypad`` or ``altnum``: what decoded it."""
    monotonic: float
    """``time.monotonic()`` of the terminating key event."""
    wall: float
    """``time.time()`` of the terminating key event."""


@dataclass(frozen=True, slots=True)
class ScanDiscard:
    """A read thrown away: partial text and a reason (``timeout``, ``unplugged``, ``syn_dropped``...)."""

    device: str
    text: str
    reason: str
    monotonic: float
    wall: float


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """Which devices are douchettes, and how to decode them."""

    devices: tuple[str, ...] = ()
    """Selectors of douchettes: path or by-id link, ``vendor:product``, or a piece of the name."""
    ignore: tuple[str, ...] = ()
    """Selectors of devices never to treat as douchettes (beats the heuristics)."""
    heuristics: bool = True
    """Also take devices whose name or vendor says scanner (see :mod:`terminal.scanner.devices`)."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    layouts: tuple[tuple[str, str], ...] = ()
    """``(selector, layout)`` pairs: the layout a given douchette is set to emulate (``us``/``fr``). With
    ``decoder.layout="auto"`` it becomes that device's fallback (codes that are not pass numbers); with a fixed
    ``decoder.layout`` it replaces it. First match wins; other devices use ``decoder`` as it is."""

    def decoder_for(self, nodes: Sequence[devmod.InputNode]) -> DecoderConfig:
        """The decoder configuration of the douchette made of ``nodes``."""
        for selector, layout in self.layouts:
            if any(devmod.matches(selector, n) for n in nodes):
                if self.decoder.layout == AUTO:
                    return dataclasses.replace(self.decoder, fallback=layout)
                return dataclasses.replace(self.decoder, layout=layout)
        return self.decoder

    input_dir: str = "/dev/input"
    rescan_interval: float = 0.5
    state_file: str | None = None
    """Where to keep :meth:`ScannerReader.devices` as JSON while running (for ``scanner list``); None: nowhere."""
    state_interval: float | None = 1.0
    """Seconds between refreshes of the state file's ``stall`` figures while reads come in, by the reader
    thread; None: never (the owner calls :meth:`ScannerReader.write_state` from another thread, which keeps
    file system waits off the reader: the reader process does)."""


class EventSource(Protocol):
    """What the reader reads: an evdev node, or anything else that yields key events (virtual douchette)."""

    path: str

    def fileno(self) -> int: ...

    def read_events(self) -> list[Event]:
        """The events available now (``[]`` if none), times on ``time.monotonic()``; OSError when gone."""
        ...

    def close(self) -> None: ...


class EvdevSource:
    """One grabbed ``/dev/input/eventN`` node."""

    def __init__(self, path: str) -> None:
        import evdev

        self.path = path
        self.device = evdev.InputDevice(path, readonly=True)
        try:
            fcntl.ioctl(self.device.fd, EVIOCSCLOCKID, struct.pack("i", time.CLOCK_MONOTONIC))
            self.realtime = False
        except OSError:
            self.realtime = True  # old kernel: timestamps stay on CLOCK_REALTIME, converted on read

    def grab(self) -> None:
        self.device.grab()

    def fileno(self) -> int:
        return self.device.fd

    def read_events(self) -> list[Event]:
        offset = time.monotonic() - time.time() if self.realtime else 0.0
        try:
            return [(ev.sec + ev.usec * 1e-6 + offset, ev.type, ev.code, ev.value) for ev in self.device.read()]
        except BlockingIOError:
            return []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.device.close()


class StructSource:
    """Events as raw ``struct input_event`` records on a file descriptor (a pipe): virtual douchette, tests.

    ``write_events`` is the other end: it packs events (times on ``time.monotonic()``) into the pipe.
    Closing the write end makes the next read fail with ENODEV, like an unplugged device.
    """

    def __init__(self, path: str = "virtual") -> None:
        self.path = path
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._buf = b""

    def fileno(self) -> int:
        return self._r

    def write_events(self, events: list[Event]) -> None:
        packed = []
        for t, type_, code, value in events:
            sec, usec = divmod(round(t * 1e6), 1_000_000)
            packed.append(INPUT_EVENT.pack(sec, usec, type_, code, value))
        os.write(self._w, b"".join(packed))

    def unplug(self) -> None:
        """Close the write end: the reader sees the source go away."""
        if self._w >= 0:
            os.close(self._w)
            self._w = -1

    def read_events(self) -> list[Event]:
        try:
            data = os.read(self._r, 65536)
        except BlockingIOError:
            return []
        if not data:
            raise OSError(errno.ENODEV, "virtual device closed")
        data, size = self._buf + data, INPUT_EVENT.size
        whole = len(data) - len(data) % size
        self._buf = data[whole:]
        return [(s + u * 1e-6, ty, c, v) for s, u, ty, c, v in INPUT_EVENT.iter_unpack(data[:whole])]

    def close(self) -> None:
        self.unplug()
        with contextlib.suppress(OSError):
            os.close(self._r)


@dataclass
class _Device:
    """A physical douchette (or virtual source) the reader knows, with its decoder."""

    device_id: str
    name: str
    decoder: Decoder
    why: str = ""
    sources: dict[str, EventSource] = field(default_factory=dict)  # path -> grabbed, registered source
    busy: set[str] = field(default_factory=set)  # paths whose grab failed with EBUSY
    errors: dict[str, str] = field(default_factory=dict)
    virtual: bool = False
    reported_layout: str | None = None  # detected layout as last written to the state file


class ScannerReader:
    """Reads every douchette of the machine and calls ``on_read`` / ``on_discard`` on its own thread."""

    def __init__(
        self,
        on_read: Callable[[ScanRead], None],
        on_discard: Callable[[ScanDiscard], None] | None = None,
        config: ReaderConfig | None = None,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config or ReaderConfig()
        self.on_read = on_read
        self.on_discard = on_discard
        self.on_change = on_change
        """Called (on the reader thread) when a device is grabbed, lost, or changes state."""
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}  # device id -> device
        self._nodes: dict[str, devmod.InputNode] = {}  # path -> what it said
        self._stamps: dict[str, tuple[int, int]] = {}  # path -> (inode, ctime) when probed
        self._classes: dict[str, devmod.Classification] = {}  # group -> classification
        self._warned: set[str] = set()
        self._pending: list[tuple[EventSource, str, str]] = []  # sources added from other threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rescans = 0
        self.stall = StallMeter()
        """How late each read returned after its oldest event was stamped (see :mod:`terminal.scanner.stall`)."""
        self._stall_written = (0, 0.0)  # (stall.count, monotonic) at the last state write

    # -- public --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the reader in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="scanner-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, release every device; pending reads are discarded as ``stopped``."""
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if not thread.is_alive():
                self._close_wake()

    def _close_wake(self) -> None:
        with self._lock:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> ScannerReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_source(self, source: EventSource, device_id: str, name: str = "virtual douchette") -> None:
        """Read ``source`` as one more douchette (thread-safe; it joins the loop at once)."""
        with self._lock:
            self._pending.append((source, device_id, name))
        self._wake()

    def devices(self) -> list[dict]:
        """Every input device seen, for ``scanner list``: douchette or not, grabbed, layouts (thread-safe)."""
        with self._lock:
            out = []
            for node in sorted(self._nodes.values(), key=lambda n: (len(n.path), n.path)):
                cls = self._classes.get(node.group)
                dev = self._devices.get(node.device_id)
                layout = dev.decoder.config if dev else self.config.decoder_for([node])
                entry = node_entry(node, cls, layout)
                entry["grabbed"] = bool(dev and node.path in dev.sources)
                entry["busy"] = bool(dev and node.path in dev.busy)
                if dev and node.path in dev.errors:
                    entry["error"] = dev.errors[node.path]
                entry["detected_layout"] = dev.decoder.detected_layout if dev else None
                out.append(entry)
            for dev in self._devices.values():
                if dev.virtual:
                    for path in dev.sources:
                        out.append({"path": path, "name": dev.name, "id": dev.device_id, "douchette": True,
                                    "why": "virtual douchette", "virtual": True, "grabbed": True, "busy": False,
                                    "layout": dev.decoder.config.layout, "fallback": dev.decoder.config.fallback,
                                    "detected_layout": dev.decoder.detected_layout})  # fmt: skip
            return out

    # -- the loop ------------------------------------------------------------------------------------------

    def run(self) -> None:
        """The reader loop (what :meth:`start` runs in its thread); returns after :meth:`stop`."""
        next_scan = 0.0
        try:
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    if now >= next_scan:
                        self._rescan()
                        next_scan = time.monotonic() + self.config.rescan_interval
                        count, written = self._stall_written
                        interval = self.config.state_interval
                        if interval is not None and self.stall.count != count and now - written >= interval:
                            self._write_state()
                    self._take_pending()
                    timeout = next_scan - time.monotonic()
                    for dev in self._devices.values():
                        deadline = dev.decoder.deadline
                        if deadline is not None:
                            timeout = min(timeout, deadline - time.monotonic() + 0.001)
                    serviced = set()
                    for key, _ in self._selector.select(max(timeout, 0.0)):
                        if key.data is None:
                            self._drain_wake()
                        else:
                            self._service(*key.data)
                            serviced.add(key.data[0].device_id)
                    now = time.monotonic()
                    for dev in list(self._devices.values()):
                        # A device just read may have more events queued: _service ticked it at its last event.
                        if dev.decoder.pending and dev.device_id not in serviced:
                            self._deliver(dev, dev.decoder.tick(now))
                except Exception:  # never let the thread die: log, breathe, go on
                    log.exception("scanner reader loop error (continuing)")
                    self._stop.wait(0.1)
        finally:
            self._shutdown()

    def _wake(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _take_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for source, device_id, name in pending:
            dev = self._device(device_id, name, "virtual douchette")
            dev.virtual = True
            self._register(dev, source)

    def _device(self, device_id: str, name: str, why: str, config: DecoderConfig | None = None) -> _Device:
        dev = self._devices.get(device_id)
        if dev is None:
            dev = _Device(device_id, name, Decoder(config or self.config.decoder), why)
            with self._lock:
                self._devices[device_id] = dev
        return dev

    def _register(self, dev: _Device, source: EventSource) -> None:
        with self._lock:
            dev.sources[source.path] = source
            dev.busy.discard(source.path)
            dev.errors.pop(source.path, None)
        self._selector.register(source.fileno(), selectors.EVENT_READ, (dev, source))
        log.info("grabbed %s (%s) as douchette %s", source.path, dev.name, dev.device_id)
        self._changed()

    def _changed(self) -> None:
        self._write_state()
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("on_change callback failed")

    def _service(self, dev: _Device, source: EventSource) -> None:
        try:
            events = source.read_events()
        except OSError as e:
            self._lost(dev, source, e)
            return
        if events:
            self.stall.add(time.monotonic() - events[0][0])
        feed = dev.decoder.feed
        for t, type_, code, value in events:
            results = feed(t, type_, code, value)
            if results:
                self._deliver(dev, results)
        if events and dev.decoder.pending:  # a gap before the last event read is certain; after it, maybe not
            self._deliver(dev, dev.decoder.tick(events[-1][0]))

    def _lost(self, dev: _Device, source: EventSource, error: OSError) -> None:
        """A node went away (or broke): forget its descriptor at once, discard the pending read."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(source.fileno())
        source.close()
        with self._lock:
            dev.sources.pop(source.path, None)
            self._stamps.pop(source.path, None)  # probe it again if the path comes back
        if error.errno == errno.ENODEV:
            log.info("douchette %s: %s unplugged", dev.device_id, source.path)
        else:
            log.warning("douchette %s: %s failed (%s); dropped", dev.device_id, source.path, error)
        if not dev.sources:
            self._deliver(dev, dev.decoder.unplug(time.monotonic()))
        self._changed()

    def _deliver(self, dev: _Device, results: list[Result]) -> None:
        wall_offset = time.time() - time.monotonic()
        for r in results:
            try:
                if isinstance(r, Read):
                    if dev.decoder.detected_layout != dev.reported_layout:
                        dev.reported_layout = dev.decoder.detected_layout
                        self._write_state()
                    self.on_read(ScanRead(dev.device_id, r.text, r.layout, r.t, r.t + wall_offset))
                elif isinstance(r, Discard) and self.on_discard is not None:
                    self.on_discard(ScanDiscard(dev.device_id, r.text, r.reason, r.t, r.t + wall_offset))
            except Exception:
                log.exception("scanner callback failed for a %s from %s", type(r).__name__, dev.device_id)

    # -- discovery -----------------------------------------------------------------------------------------

    def _rescan(self) -> None:
        self.rescans += 1
        input_dir = self.config.input_dir
        paths = devmod.node_paths(input_dir)
        present = set(paths)
        links = None
        changed = False
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                present.discard(path)
                continue
            stamp = (st.st_ino, st.st_ctime_ns)
            if self._stamps.get(path) == stamp:
                continue
            if links is None:
                links = devmod._links(input_dir)
            node = devmod.probe(path, links.get(os.path.realpath(path), ()))
            log.debug("probed %s: %s", path, node.error or f"{node.name!r} {node.vidpid} {node.phys}")
            with self._lock:
                self._nodes[path] = node
                if not node.error or node.error.startswith("permission"):
                    self._stamps[path] = stamp  # else (a node still being set up?) probe it again next time
            changed = True
            if node.error and path not in self._warned:
                self._warned.add(path)
                log.warning("cannot read %s: %s", path, node.error)
        for path in set(self._nodes) - present:
            with self._lock:
                self._nodes.pop(path, None)
                self._stamps.pop(path, None)
                self._warned.discard(path)
            changed = True
        if changed:
            groups = devmod.group_nodes(self._nodes.values())
            cfg = self.config
            classes = {g: devmod.classify(ns, cfg.devices, cfg.ignore, cfg.heuristics) for g, ns in groups.items()}
            with self._lock:
                self._classes = classes
            for cls in classes.values():
                if cls.douchette:
                    log.debug("douchette %s: %s", cls.device_id, cls.why)
        for cls in self._classes.values():
            if cls.douchette:
                self._open_douchette(cls)
        if self.rescans == 1 and not any(c.douchette for c in self._classes.values()):
            keyboards = [n.name for c in self._classes.values() if not c.douchette for n in c.nodes if n.can_type_codes]
            log.info("no douchette among the %d input devices of %s yet (keyboards, which --device can name: %s); "
                     "waiting for one",
                     len(paths), input_dir, ", ".join(map(repr, keyboards)) or "none")  # fmt: skip

    def _open_douchette(self, cls: devmod.Classification) -> None:
        first = cls.nodes[0]
        dev = self._device(first.device_id, first.name, cls.why, self.config.decoder_for(cls.nodes))
        for node in cls.nodes:
            if not node.has_keys or node.path in dev.sources:
                continue
            try:
                source = EvdevSource(node.path)
            except OSError as e:
                self._node_error(dev, node.path, e)
                continue
            try:
                source.grab()
            except OSError as e:
                source.close()
                if e.errno == errno.EBUSY:
                    if node.path not in dev.busy:
                        log.warning("%s (%s) is grabbed by another program; retrying", node.path, node.name)
                        with self._lock:
                            dev.busy.add(node.path)
                        self._changed()
                else:
                    self._node_error(dev, node.path, e)
                continue
            if not dev.sources:
                dev.decoder.reset_modifiers()  # a (re)plugged device starts with nothing held
            self._register(dev, source)

    def _node_error(self, dev: _Device, path: str, e: OSError) -> None:
        msg = f"permission denied: {devmod.PERMISSION_FIX}" if isinstance(e, PermissionError) else str(e)
        if dev.errors.get(path) != msg:
            log.warning("cannot grab %s: %s", path, msg)
            with self._lock:
                dev.errors[path] = msg
            self._changed()

    def write_state(self) -> None:
        """Refresh the state file now if the lateness figures changed (from any thread; see ``state_interval``)."""
        if self.stall.count != self._stall_written[0]:
            self._write_state()

    def _write_state(self) -> None:
        """Write :meth:`devices` to the state file, atomically (errors are logged once, never raised)."""
        path = self.config.state_file
        if not path:
            return
        other = read_state(path)
        if other is not None and other.get("pid") != os.getpid():
            if "state-owned" not in self._warned:  # another reader (the terminal) runs: leave its state alone
                self._warned.add("state-owned")
                log.info("scanner state %s belongs to process %s; not writing it", path, other.get("pid"))
            return
        try:
            # A fresh, unguessable temporary file (O_EXCL), renamed over the state: safe in a shared /tmp.
            fd, tmp = tempfile.mkstemp(prefix=".aptic-scanner-", dir=os.path.dirname(os.path.abspath(path)))
            try:
                self._stall_written = (self.stall.count, time.monotonic())
                doc = {"pid": os.getpid(), "updated": time.time(), "devices": self.devices(),
                       "stall": self.stall.summary()}  # fmt: skip
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(doc, f)
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            if "state" not in self._warned:
                self._warned.add("state")
                log.warning("cannot write scanner state to %s: %s", path, e)

    def _shutdown(self) -> None:
        state = read_state(self.config.state_file) if self.config.state_file else None
        if state is not None and state.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(self.config.state_file)
        now = time.monotonic()
        for dev in list(self._devices.values()):
            for source in list(dev.sources.values()):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(source.fileno())
                source.close()
            with self._lock:
                dev.sources.clear()
            self._deliver(dev, dev.decoder.abort(now, "stopped"))
        self._selector.close()


def default_state_file() -> str:
    """``$APTIC_SCANNER_STATE``, else ``$XDG_RUNTIME_DIR/aptic-scanner.json``, else one in /tmp per user."""
    if path := os.environ.get("APTIC_SCANNER_STATE"):
        return path
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(runtime, "aptic-scanner.json")
    return f"/tmp/aptic-scanner-{os.getuid()}.json"


def read_state(path: str) -> dict | None:
    """The state a running reader keeps in ``path``, or None if there is none or its process is gone."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def node_entry(node: devmod.InputNode, cls: devmod.Classification | None, config: DecoderConfig) -> dict:
    """One device of ``scanner list --json``; ``layout`` is ``auto`` or the fixed one, ``fallback`` the one
    ``auto`` falls back to."""
    return {
        "path": node.path,
        "name": node.name,
        "id": node.device_id,
        "vendor_product": node.vidpid,
        "phys": node.phys,
        "links": list(node.links),
        "can_type_codes": node.can_type_codes,
        "douchette": bool(cls and cls.douchette),
        "why": cls.why if cls else (node.error or "sends no keys"),
        "layout": config.layout if cls and cls.douchette else None,
        "fallback": config.fallback if cls and cls.douchette and config.layout == AUTO else None,
        **({"error": node.error} if node.error else {}),
    }
