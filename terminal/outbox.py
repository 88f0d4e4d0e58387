"""The outbox: scans recorded but not yet answered by the central, kept in an append-only journal.

Why a hand-written journal and not TinyDB, which keeps the terminal's other files: TinyDB rewrites its whole
file on every change, so recording one scan cost a JSON encode and an fsync of every pending scan (145 ms
with 10,000 pending on the development machine, worse on a Pi's SD card), and that one long encode holds
Python's GIL, stalling the kiosk and the douchette reader meanwhile. A week offline is exactly when scans
pile up. Here each change appends one line and fsyncs it, so recording costs the same with 0 or 10,000
scans pending (0.3 to 0.7 ms on the development machine, ``make bench``).

The file, ``outbox.journal``, holds one change a line, each framed with its checksum::

    <CRC-32 of the JSON bytes, 8 lowercase hex digits> <a JSON object>\\n

and the changes are::

    {"op": "add", "scans": [{...}, ...]}   scans recorded together (one entry): all of them or none
    {"op": "sent", "ids": [...]}           claimed: a request carrying them may have reached the central
    {"op": "unsent", "ids": [...]}         that request surely never left
    {"op": "done", "ids": [...]}           gone to history (the central's answer, or a cancellation)

Replaying the lines in order gives the pending scans. A line is written whole and fsync'd before the call
that wrote it returns; only the last line can be cut short by a power cut, and that line was never
acknowledged to anyone. Its checksum (or missing newline) gives it away: it is ignored and cut off the file
at the next start, before anything is appended after it. Any other unreadable line (one followed by
readable ones, say) is not a torn write but damage, a failing SD card: the readable lines are kept, the
damaged file is copied aside as ``outbox.journal.corrupt-<UTC timestamp>`` for a human, and the log says so.

Acknowledged scans leave dead lines behind. When the dead bytes outweigh the live ones (and the file is
past :data:`COMPACT_MIN_BYTES`), :meth:`Outbox.compact` rewrites the live scans, one ``add`` line each,
with :func:`~terminal.durable.atomic_write_bytes`. That happens after an acknowledgement, a claim or at
start, never while recording a scan. It rewrites fewer bytes than it removes, so over time it costs a
constant amount per scan, and the file stays under twice the pending scans' size.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as directory:
...     outbox = Outbox(Path(directory) / "outbox.journal")
...     outbox.add([{"id": "a", "seq": 1}, {"id": "b", "seq": 2}])
...     outbox.remove(["a"])
...     sorted(Outbox(Path(directory) / "outbox.journal"))  # another process, after a power cut
['b']
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terminal.durable import ReadOnly, atomic_write_bytes, corrupt_name

logger = logging.getLogger(__name__)

COMPACT_MIN_BYTES = 256 * 1024
"""No compaction below this size: a small journal costs nothing to replay, and rewriting it often would."""

_ID_OPS = ("sent", "unsent", "done")


def encode_line(change: Mapping[str, Any]) -> bytes:
    """One journal line: the checksum, a space, the compact JSON (which never holds a raw newline), ``\\n``."""
    body = json.dumps(change, ensure_ascii=False, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The change a line (without its newline) holds, or None if it is torn, damaged or not a known change."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        change = json.loads(body)
    except ValueError:  # not hex, not JSON, not UTF-8
        return None
    return change if _well_formed(change) else None


def _well_formed(change: object) -> bool:
    if not isinstance(change, dict):
        return False
    if change.get("op") == "add":
        scans = change.get("scans")
        return isinstance(scans, list) and all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in scans)
    if change.get("op") in _ID_OPS:
        ids = change.get("ids")
        return isinstance(ids, list) and all(isinstance(i, str) for i in ids)
    return False


@dataclass
class JournalContents:
    """What :func:`read_journal` found in a journal's bytes."""

    changes: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    """The readable changes in order, each with the length of its line in bytes."""
    valid_bytes: int = 0
    """Where the last readable line ends: the file is cut here when its tail is torn."""
    torn: bool = False
    """The last line is unreadable: a write cut short by a power cut, never acknowledged."""
    damaged: list[int] = field(default_factory=list)
    """Numbers (from 1) of the unreadable lines that a torn write cannot explain."""


def read_journal(data: bytes) -> JournalContents:
    """Parse a journal's bytes; never raises, whatever they are."""
    contents = JournalContents()
    unreadable: list[int] = []
    number = start = 0
    while start < len(data):
        number += 1
        end = data.find(b"\n", start)
        change = None if end < 0 else decode_line(data[start:end])  # no newline: the write was cut short
        end = len(data) if end < 0 else end
        if change is None:
            unreadable.append(number)
        else:
            contents.changes.append((change, end + 1 - start))
            contents.valid_bytes = end + 1
        start = end + 1
    if unreadable and unreadable[-1] == number:
        contents.torn = True
        unreadable.pop()
    contents.damaged = unreadable
    return contents


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync(fd: int) -> None:
    """Flush the data and the file size (what reading it back needs); not the times, which nothing needs."""
    os.fdatasync(fd)


class Outbox:
    """The pending scans of ``path``, a journal this process alone writes; every change is durable on return.

    Scans are flat dicts with a string ``id``, kept in memory in the order they were recorded. The store
    (:class:`~terminal.store.Store`) checks limits and ids and holds the lock; this class is not thread-safe.

    ``readonly``: read the journal as it is (another process may be writing it) and refuse every change
    with :class:`~terminal.durable.ReadOnly`. ``compact_min_bytes``: see :data:`COMPACT_MIN_BYTES`.
    """

    def __init__(self, path: Path, *, readonly: bool = False, compact_min_bytes: int = COMPACT_MIN_BYTES) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.compact_min_bytes = compact_min_bytes
        self._scans: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}  # bytes each pending scan takes in the journal
        self._live_bytes = 0
        self._size = 0  # bytes of the journal that hold whole, durable lines
        self._fd: int | None = None
        self._tail_dirty = False  # bytes past _size may be on disk (a failed append): cut them first
        self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
            if not self.readonly:
                atomic_write_bytes(self.path, b"")  # created durably: the directory entry is fsync'd too
        contents = read_journal(data)
        for change, length in contents.changes:
            self._apply(change, length)
        self._size = contents.valid_bytes
        if self.readonly:
            if contents.damaged:
                logger.error("Outbox journal %s has unreadable lines %s; left as it is (read-only)",
                             self.path, contents.damaged)  # fmt: skip
            return
        if contents.damaged:
            copy = corrupt_name(self.path)
            atomic_write_bytes(copy, data)
            logger.error("Outbox journal %s has unreadable lines %s (damage, not a power cut): kept %d pending "
                         "scans from the readable lines; the whole file is copied to %s",
                         self.path, contents.damaged, len(self._scans), copy.name)  # fmt: skip
            self.compact()
        elif contents.torn:
            logger.warning("Outbox journal %s ends with a write cut short (%d bytes, never acknowledged): ignored",
                           self.path, len(data) - contents.valid_bytes)  # fmt: skip
            self._tail_dirty = True
            self._writer()  # cuts the torn tail off now, before anything is appended after it
        self.compact_if_worth_it()

    # -- reading -----------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._scans)

    def __contains__(self, scan_id: object) -> bool:
        return scan_id in self._scans

    def __iter__(self) -> Iterator[str]:
        """The pending scans' ids, in the order they were recorded."""
        return iter(self._scans)

    def get(self, scan_id: str) -> dict[str, Any] | None:
        """The pending scan ``scan_id`` (the outbox's own dict: copy it before handing it out), or None."""
        return self._scans.get(scan_id)

    def values(self) -> Iterator[dict[str, Any]]:
        """The pending scans in recording order (the outbox's own dicts: copy them before handing them out)."""
        return iter(self._scans.values())

    @property
    def journal_bytes(self) -> int:
        """The journal's size: live lines and dead ones."""
        return self._size

    # -- changing ----------------------------------------------------------------------------------------

    def add(self, scans: Sequence[Mapping[str, Any]]) -> None:
        """Append ``scans`` as one line (all or none), fsync'd before this returns.

        Ids must be new (the store checks): a replay keeps the first ``add`` of an id still pending.
        """
        copies = [dict(scan) for scan in scans]
        length = self._append({"op": "add", "scans": copies})
        self._apply({"op": "add", "scans": copies}, length)

    def mark_sent(self, ids: Iterable[str]) -> None:
        """Mark pending scans ``sent`` (a request carrying them may leave now), durably."""
        self._change("sent", [i for i in ids if i in self._scans and not self._scans[i].get("sent")])

    def clear_sent(self, ids: Iterable[str]) -> None:
        """Take the ``sent`` mark off pending scans, durably."""
        self._change("unsent", [i for i in ids if i in self._scans and "sent" in self._scans[i]])

    def remove(self, ids: Iterable[str]) -> None:
        """Take scans out of the outbox (they are in history now), durably. Ids not pending are ignored."""
        self._change("done", [i for i in dict.fromkeys(ids) if i in self._scans])

    def _change(self, op: str, ids: list[str]) -> None:
        if ids:
            change = {"op": op, "ids": ids}
            self._apply(change, self._append(change))

    def _apply(self, change: Mapping[str, Any], length: int) -> None:
        """Apply one change to the scans in memory; ``length``: its line's size, shared among its scans."""
        op = change["op"]
        if op == "add":
            share = length // max(len(change["scans"]), 1)
            for scan in change["scans"]:
                if scan["id"] not in self._scans:
                    self._scans[scan["id"]] = scan
                    self._sizes[scan["id"]] = share
                    self._live_bytes += share
            return
        for scan_id in change["ids"]:
            scan = self._scans.get(scan_id)
            if scan is None:
                continue
            if op == "sent":
                scan["sent"] = True
            elif op == "unsent":
                scan.pop("sent", None)
            else:
                del self._scans[scan_id]
                self._live_bytes -= self._sizes.pop(scan_id)

    def _writer(self) -> int:
        """The append descriptor, opened on first use, with any partly written line cut off first."""
        if self.readonly:
            raise ReadOnly(f"{self.path} is open read-only")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        if self._tail_dirty:
            os.ftruncate(self._fd, self._size)
            _sync(self._fd)
            self._tail_dirty = False
        return self._fd

    def _append(self, change: Mapping[str, Any]) -> int:
        """Write one line and fsync it; on any failure cut the file back so no partial line stays behind."""
        line = encode_line(change)
        fd = self._writer()
        try:
            _write_all(fd, line)
            _sync(fd)
        except BaseException:
            self._tail_dirty = True
            try:
                self._writer()
            except OSError as error:  # the next append cuts it first
                logger.error("Could not cut a failed write off the outbox journal %s: %s", self.path, error)
            raise
        self._size += len(line)
        return len(line)

    # -- compaction and migration -------------------------------------------------------------------------

    def dead_dominates(self) -> bool:
        """More bytes of the journal belong to scans gone (or to marks since folded) than to pending scans."""
        return self._size > max(self.compact_min_bytes, 2 * self._live_bytes)

    def compact_if_worth_it(self) -> bool:
        """Compact when :meth:`dead_dominates`; True if it did. A failure is logged, not raised: the journal
        is whole either way, and the caller's change is already durable."""
        if self.readonly or not self.dead_dominates():
            return False
        try:
            self.compact()
        except OSError as error:
            logger.error("Could not compact the outbox journal %s (it stays as it is): %s", self.path, error)
            return False
        return True

    def compact(self) -> None:
        """Rewrite the journal atomically with one ``add`` line per pending scan, its ``sent`` mark folded in.

        Each scan is encoded on its own, so other threads (the kiosk, the douchette reader) get the GIL between
        scans instead of waiting through one long encode.
        """
        if self.readonly:
            raise ReadOnly(f"{self.path} is open read-only")
        lines = [encode_line({"op": "add", "scans": [scan]}) for scan in self._scans.values()]
        data = b"".join(lines)
        before = self._size
        atomic_write_bytes(self.path, data)
        if self._fd is not None:  # it points at the replaced file
            os.close(self._fd)
            self._fd = None
        self._size = self._live_bytes = len(data)
        self._sizes = {scan_id: len(line) for scan_id, line in zip(self._scans, lines, strict=True)}
        self._tail_dirty = False
        logger.info("Compacted the outbox journal %s: %d pending scans, %d bytes down to %d",
                    self.path, len(self._scans), before, len(data))  # fmt: skip

    def adopt(self, scans: Iterable[Mapping[str, Any]]) -> int:
        """Take in scans from an older outbox file (ids already pending are skipped) and, unless read-only,
        make them durable here with a compaction. Returns how many were new."""
        fresh = [dict(scan) for scan in scans if isinstance(scan.get("id"), str) and scan["id"] not in self._scans]
        if fresh:
            self._apply({"op": "add", "scans": fresh}, 0)
            if not self.readonly:
                self.compact()
        return len(fresh)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
