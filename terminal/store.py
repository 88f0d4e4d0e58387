"""The terminal's durable store: files that survive a power cut at any instant.

A bus may lose power at every stop, so every write here is durable before the call returns, and a write cut
short leaves the file readable (:mod:`terminal.durable` says how). The data is split by concern::

    outbox.journal           scans recorded but not yet acknowledged by the central (bounded)
    history-YYYY-MM.json     scans with the central's result, one file per month of filing, kept 13 months
    snapshot.json            the offline data pulled from the central
    state.json               activation, device id, last sequence number
    token                    the device token, mode 0600

The outbox is an append-only journal (:mod:`terminal.outbox`): recording a scan appends one fsync'd line,
so it costs the same whether 0 or 10,000 scans wait for the network, and does not slow down as history
grows either. The other files are TinyDB documents written through :class:`AtomicJSONStorage`. Stock TinyDB
rewrites its file in place and, killed between the write and the final truncate of a file that shrank,
leaves unparseable JSON behind; this storage writes a temporary file, fsyncs it, renames it over the old one
and fsyncs the directory. TinyDB still rewrites a whole file on every write, which is fine for these: they
are small or, for history, written once per batch of answers from the central, never per scan.

A scan's identity is the UUID made on the terminal (``id``); TinyDB's ``doc_id`` is reused after a restart
and is never used as an identity.

One :class:`threading.RLock` guards every public call: TinyDB is not thread-safe, and the scanner, the kiosk
and the sync worker all use the store. A file is owned by a single process, which makes the write-through
read caches safe: the outbox, state and snapshot are kept in memory, and so are the last
:data:`HISTORY_CACHE_MONTHS` months of history read (the kiosk shows them on every refresh); a history write
drops its month from the cache. Other history months are read when needed and let go of: a month may hold
tens of thousands of rows.

A data directory written before the journal (the outbox in ``outbox.json``, a TinyDB file) is migrated when
the store opens: its pending scans go into the journal, then ``outbox.json`` is deleted.

>>> import tempfile, uuid
>>> with tempfile.TemporaryDirectory() as directory:
...     store = Store(directory)
...     store.record([{"id": str(uuid.uuid4()), "pass_number": "126000123407582112", "seq": store.next_seq()}])
...     Store(directory).pending_count()  # another process, after a power cut: it is there
1
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.middlewares import Middleware
from tinydb.storages import Storage
from tinydb.table import Document, Table

from terminal.clock import local_now
from terminal.durable import (
    ReadOnly,
    StoreError,
    atomic_write_bytes,
    fsync_directory,
    quarantine,
    sweep_orphans,
)
from terminal.outbox import COMPACT_MIN_BYTES, Outbox

logger = logging.getLogger(__name__)

DEFAULT_OUTBOX_LIMIT = 50_000
DEFAULT_HISTORY_MONTHS = 13

HISTORY_CACHE_MONTHS = 2
"""History months kept in memory once read: the kiosk shows the current and the previous one."""

OUTBOX = "outbox.journal"
OLD_OUTBOX = "outbox.json"  # the outbox as a TinyDB file, before the journal: migrated at open
STATE = "state.json"
SNAPSHOT = "snapshot.json"
TOKEN = "token"
_HISTORY = re.compile(r"^history-(\d{4})-(\d{2})\.json$")


class OutboxFull(StoreError):
    """The outbox holds as many pending scans as allowed: new scans are refused, none is dropped."""

    def __init__(self, pending: int, limit: int, adding: int) -> None:
        super().__init__(f"outbox full: {pending} pending scans, limit {limit}, cannot add {adding}")
        self.pending = pending
        self.limit = limit
        self.message_fr = (
            f"Mémoire du terminal pleine : {pending} scans attendent d'être transmis (maximum {limit}). "
            "Rien n'a été enregistré. Connectez le terminal au réseau pour les transmettre."
        )


class AtomicJSONStorage(Storage):
    """A TinyDB storage that writes atomically and durably, and sets aside a file it cannot read.

    A missing or empty file reads as an empty database. A file that is not a JSON object is moved aside by
    :func:`quarantine` and also reads as empty, so the terminal keeps running and the log says what happened.
    ``readonly`` storages (another process looking, e.g. ``aptic-terminal status``) never move or write files.
    """

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly

    def _unreadable(self, why: str) -> None:
        if self.readonly:
            logger.error("Store file %s is unreadable (%s); left as it is (read-only)", self.path, why)
        else:
            quarantine(self.path, why)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        try:
            data = json.loads(raw)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            self._unreadable(f"not valid JSON: {error}")
            return None
        if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
            self._unreadable("not a TinyDB document (expected an object of tables)")
            return None
        return data

    def write(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        if self.readonly:
            raise ReadOnly(f"{self.path} is open read-only")
        atomic_write_bytes(self.path, json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())

    def close(self) -> None:
        pass


class WriteThroughCache(Middleware):
    """Reads from memory, writes straight through to the storage.

    TinyDB's ``CachingMiddleware`` keeps writes in memory until 1000 have piled up, which a power cut
    loses. This one writes every change at once, and forgets its cache when a write fails (TinyDB changes
    the cached data in place before writing it, so after a failure the cache would lie).
    """

    def __init__(self, storage_cls: type[Storage] = AtomicJSONStorage) -> None:
        super().__init__(storage_cls)
        self.cache: dict[str, dict[str, Any]] | None = None

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self.cache is None:
            self.cache = self.storage.read()
        return self.cache

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        try:
            self.storage.write(data)
        except BaseException:
            self.cache = None
            raise
        self.cache = data

    def close(self) -> None:
        self.storage.close()


def _malloc_trim() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)``, or a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


release_memory = _malloc_trim()
"""Give freed heap memory back to the system. Filing history parses and rewrites a whole month file (several
MB as Python objects, then freed); glibc keeps such freed heap and a long-running daemon's resident memory
creeps up with every month's growth unless told to let it go (measured: 70 MB after 10,000 scans without,
46 MB with; ``make bench``)."""


def open_db(path: Path, *, readonly: bool = False) -> TinyDB:
    """A TinyDB on ``path`` with atomic writes and a write-through cache."""
    return TinyDB(path, readonly=readonly, storage=WriteThroughCache(AtomicJSONStorage))


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_before(month: str, count: int) -> str:
    """The month ``count`` months before ``month`` (both ``YYYY-MM``)."""
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class Store:
    """The terminal's files in ``directory`` (created 0700 if missing).

    ``readonly``: for another process that only looks (``aptic-terminal status`` and ``check`` while the
    daemon runs): no file is touched (no orphan sweep: a temporary file may be the daemon's write in
    progress; no quarantine, no cut of a journal line being written, no migration), nothing is cached, and
    every write raises :class:`ReadOnly`.

    ``outbox_limit``: pending scans allowed before :meth:`record` raises :class:`OutboxFull`;
    ``history_months``: months of history kept, the current one included; ``now``: the wall clock, which
    names the month a result is filed under.

    ``compact_min_bytes``: the outbox journal is never compacted below this size (tests make it small).

    Scans are flat dicts (no nested objects) with at least ``id`` (a UUID string) and ``seq``.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        outbox_limit: int = DEFAULT_OUTBOX_LIMIT,
        history_months: int = DEFAULT_HISTORY_MONTHS,
        now: Callable[[], datetime] = local_now,
        readonly: bool = False,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.readonly = readonly
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.outbox_limit = outbox_limit
        self.history_months = history_months
        self._now = now
        self._lock = threading.RLock()
        self._history_cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        if not readonly:
            sweep_orphans(self.directory)
        self._outbox = Outbox(self.directory / OUTBOX, readonly=readonly, compact_min_bytes=compact_min_bytes)
        self._migrate_old_outbox()
        self._state_db = open_db(self.directory / STATE, readonly=readonly)
        self._snapshot_db = open_db(self.directory / SNAPSHOT, readonly=readonly)
        self._settle_filed()
        state_seq = int(self.state().get("last_seq", 0))
        outbox_seq = max((int(scan.get("seq", 0)) for scan in self._outbox.values()), default=0)
        self._last_seq = max(state_seq, outbox_seq)

    def _migrate_old_outbox(self) -> None:
        """Take the pending scans of an ``outbox.json`` written before the journal, then delete that file.

        Safe at any instant: the journal holds the scans (atomically) before the old file goes, and a second
        run after a cut between the two finds them pending already and skips them.
        """
        old = self.directory / OLD_OUTBOX
        data = AtomicJSONStorage(old, readonly=self.readonly).read()  # an unreadable file is set aside
        if data is None and not old.exists():
            return
        scans = [doc for doc in (data or {}).get("scans", {}).values() if isinstance(doc, dict)]
        adopted = self._outbox.adopt(scans)
        if self.readonly:
            return
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
        fsync_directory(self.directory)
        logger.info("Migrated %s to %s: %d pending scans", OLD_OUTBOX, OUTBOX, adopted)

    def _settle_filed(self) -> None:
        """Finish a move to history that a power cut interrupted: scans pending and filed leave the outbox.

        :meth:`_retire` writes history first and the outbox last, so a cut in between leaves a scan in both.
        Its history row (the central's answer, or its cancellation) is the truth: sent again, the scan would at
        best get the same answer, at worst a cancelled scan would reach the central. A filing goes to the
        current month, so the last two months cover a cut at the turn of a month.
        """
        if self.readonly or not len(self._outbox):
            return
        filed = {}
        for month in self.history_files()[-2:]:
            filed |= {row["id"]: row for row in self._read_history(month) if row.get("id") in self._outbox}
        if not filed:
            return
        top = max(int(row.get("seq", 0)) for row in filed.values())
        if top > int(self.state().get("last_seq", 0)):
            self.update_state(last_seq=top)
        self._outbox.remove(filed)
        self._outbox.compact_if_worth_it()
        logger.info("%d scan(s) already filed in history left the outbox (a power cut came in between)", len(filed))

    # -- outbox ------------------------------------------------------------------------------------------

    def next_seq(self) -> int:
        """The next per-device sequence number.

        Numbers are persisted with the scans that carry them: at start the counter resumes from the highest
        of the outbox's numbers and ``state.last_seq``, which is saved before any scan leaves the outbox. A
        number handed out for a scan that is then never recorded is skipped, never reused for another
        recorded scan.
        """
        with self._lock:
            self._last_seq += 1
            return self._last_seq

    def record(self, scans: Sequence[Mapping[str, Any]]) -> None:
        """Add ``scans`` to the outbox in one atomic write; durable (fsync'd) when this returns.

        The write is one line appended to the journal: its cost does not depend on how many scans are
        pending. Raises :class:`OutboxFull` (and records nothing) when they would not fit, and ``ValueError``
        for a scan without an ``id`` or with an ``id`` already pending.
        """
        if not scans:
            return
        with self._lock:
            ids = [scan.get("id") for scan in scans]
            if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
                raise ValueError("every scan needs its own non-empty string id")
            pending = len(self._outbox)
            if pending + len(scans) > self.outbox_limit:
                raise OutboxFull(pending, self.outbox_limit, len(scans))
            known = self._pending_ids(ids)
            if known:
                raise ValueError(f"scans already pending: {sorted(known)}")
            self._outbox.add(scans)

    def pending(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Pending scans, oldest (lowest ``seq``) first, at most ``limit`` of them."""
        with self._lock:
            docs = sorted(self._outbox.values(), key=lambda doc: doc.get("seq", 0))
            return [dict(doc) for doc in docs[:limit]]

    def claim(self, limit: int) -> list[dict[str, Any]]:
        """The oldest pending scans (at most ``limit``), marked ``sent`` durably before they go to the central.

        Once a scan may have reached the central (a request sent, whatever came back), it can no longer be
        cancelled on the terminal: the central might have counted it already.
        """
        with self._lock:
            batch = self.pending(limit)
            fresh = [scan["id"] for scan in batch if not scan.get("sent")]
            if fresh:
                self._outbox.mark_sent(fresh)
                for scan in batch:
                    scan["sent"] = True
                self._outbox.compact_if_worth_it()  # offline, claims come again and again
            return batch

    def unclaim(self, scan_ids: Iterable[str]) -> None:
        """Take the ``sent`` mark off scans whose request surely never left (the connection was refused)."""
        with self._lock:
            self._outbox.clear_sent(scan_ids)
            self._outbox.compact_if_worth_it()

    def pending_count(self) -> int:
        with self._lock:
            return len(self._outbox)

    def get_pending(self, scan_id: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._outbox.get(scan_id)
            return None if doc is None else dict(doc)

    def oldest_pending(self) -> dict[str, Any] | None:
        with self._lock:
            oldest = min(self._outbox.values(), key=lambda doc: doc.get("seq", 0), default=None)
            return None if oldest is None else dict(oldest)

    def _pending_ids(self, ids: Iterable[str]) -> set[str]:
        return {i for i in ids if i in self._outbox}

    def _retire(self, ids: set[str], filed: Mapping[str, Mapping[str, Any]]) -> None:
        """Move scans out of the outbox once their history rows are durable.

        Order matters for a power cut: history first (a scan filed twice is deduplicated by id), then the
        sequence floor, then the removal from the outbox. Compaction, if the journal is now mostly dead
        lines, comes last: the removal is durable before it.
        """
        if not ids:
            return
        by_month: dict[str, list[Mapping[str, Any]]] = {}
        for scan_id in ids:
            row = filed[scan_id]
            by_month.setdefault(str(row["filed_month"]), []).append(row)
        for month, rows in by_month.items():
            self._file(month, rows)
        top = max((int(filed[i].get("seq", 0)) for i in ids), default=0)
        if top > int(self.state().get("last_seq", 0)):
            self.update_state(last_seq=top)
        self._outbox.remove(ids)
        self._outbox.compact_if_worth_it()
        release_memory()

    def file_results(self, results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """File the central's per-scan results: each pending scan named moves from the outbox to history.

        A result is a mapping with ``id``, ``status`` (``accepted``, ``rejected`` or ``flagged``),
        ``reason`` and ``message``, as ``POST /api/v1/scans`` returns them. Results for scans no longer
        pending (a replay after a restart) are ignored. Returns the history rows written, which hold the
        scan's fields and ``status``, ``reason``, ``message``, ``synced_at`` and ``filed_month``.
        """
        with self._lock:
            by_id = {str(r["id"]): r for r in results}
            rows: dict[str, dict[str, Any]] = {}
            now = self._now()
            for doc in self._outbox.values():
                result = by_id.get(doc["id"])
                if result is None:
                    continue
                rows[doc["id"]] = {
                    **doc,
                    "status": result.get("status"),
                    "reason": result.get("reason"),
                    "message": result.get("message"),
                    "synced_at": now.isoformat(timespec="seconds"),
                    "filed_month": month_of(now.date()),
                }
            self._retire(set(rows), rows)
            return list(rows.values())

    def cancel(self, scan_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Withdraw pending scans before they reach the central; they go to history as ``cancelled``.

        All or nothing: raises ``KeyError`` with the ids that cannot be withdrawn any more (already sent to
        the central, synced, or unknown).
        """
        with self._lock:
            wanted = set(scan_ids)
            now = self._now()
            rows = {
                doc["id"]: {
                    **doc,
                    "status": "cancelled",
                    "reason": None,
                    "message": "Annulé sur le terminal avant transmission.",
                    "synced_at": None,
                    "filed_month": month_of(now.date()),
                }
                for doc in self._outbox.values()
                if doc["id"] in wanted and not doc.get("sent")
            }
            missing = wanted - set(rows)
            if missing:
                raise KeyError(sorted(missing))
            self._retire(set(rows), rows)
            return list(rows.values())

    # -- history -----------------------------------------------------------------------------------------

    def _history_path(self, month: str) -> Path:
        return self.directory / f"history-{month}.json"

    def _read_history(self, month: str) -> list[dict[str, Any]]:
        """The rows filed in ``month``, read from its file."""
        if not self._history_path(month).exists():
            return []
        db = open_db(self._history_path(month), readonly=self.readonly)
        try:
            return [dict(doc) for doc in db.table("scans").all()]
        finally:
            db.close()

    def _history_rows(self, month: str, *, keep: bool = False) -> list[dict[str, Any]]:
        """The rows filed in ``month``: the cached list if there is one (do not change it), else read.

        ``keep``: cache what is read, dropping the least recently used month past
        :data:`HISTORY_CACHE_MONTHS`. A read-only store never caches: the daemon writes the files.
        """
        rows = self._history_cache.get(month)
        if rows is not None:
            self._history_cache.move_to_end(month)
            return rows
        rows = self._read_history(month)
        if keep and not self.readonly:
            self._history_cache[month] = rows
            while len(self._history_cache) > HISTORY_CACHE_MONTHS:
                self._history_cache.popitem(last=False)
        return rows

    def _file(self, month: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert history rows for ``month``, skipping ids already filed there or the month before."""
        ids = {str(row["id"]) for row in rows}
        self._history_cache.pop(month, None)  # before the write: a failed write must not leave it stale
        db = open_db(self._history_path(month))
        try:
            table = db.table("scans")
            seen = {doc["id"] for doc in table.all() if doc.get("id") in ids}
            seen |= {row["id"] for row in self._history_rows(months_before(month, 1)) if row.get("id") in ids}
            fresh = [dict(row) for row in rows if row["id"] not in seen]
            if fresh:
                table.insert_multiple(fresh)
        finally:
            db.close()

    def history_files(self) -> list[str]:
        """Months with a history file, oldest first (``YYYY-MM``)."""
        months = []
        if not self.directory.is_dir():
            return months
        for path in self.directory.iterdir():
            match = _HISTORY.match(path.name)
            if match:
                months.append(f"{match[1]}-{match[2]}")
        return sorted(months)

    def history(self, month: str) -> list[dict[str, Any]]:
        """History rows filed in ``month`` (``YYYY-MM``), in filing order.

        Served from memory after the first read (the kiosk asks on every refresh) until this store writes
        that month again; the rows are copies, which callers may change.
        """
        with self._lock:
            return [dict(row) for row in self._history_rows(month, keep=True)]

    def iter_history(self) -> Iterator[dict[str, Any]]:
        """Every history row, oldest month first, one month in memory at a time (and not cached)."""
        for month in self.history_files():
            with self._lock:
                cached = self._history_cache.get(month)
                rows = self._read_history(month) if cached is None else [dict(row) for row in cached]
            yield from rows

    def find_history(self, scan_id: str) -> dict[str, Any] | None:
        for row in self.iter_history():
            if row.get("id") == scan_id:
                return row
        return None

    def prune_history(self, today: date | None = None) -> list[str]:
        """Delete the history files older than ``history_months`` months; return the months deleted."""
        self._writable()
        with self._lock:
            current = month_of(today or self._now().date())
            oldest_kept = months_before(current, self.history_months - 1)
            removed = []
            for month in self.history_files():
                if month < oldest_kept:
                    self._history_cache.pop(month, None)
                    (self.directory / f"history-{month}.json").unlink()
                    removed.append(month)
            if removed:
                fsync_directory(self.directory)
                logger.info("Pruned history older than %s: %s", oldest_kept, ", ".join(removed))
            return removed

    # -- state, snapshot, token --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Activation and housekeeping facts (``device_id``, ``status``, ``last_seq``...)."""
        with self._lock:
            doc = self._state_db.table("state").get(doc_id=1)
            return dict(doc) if doc else {}

    def update_state(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the state (a value of None deletes the key) in one durable write."""
        with self._lock:
            state = {k: v for k, v in {**self.state(), **changes}.items() if v is not None}
            _put_single(self._state_db.table("state"), state)
            return state

    def snapshot(self) -> dict[str, Any] | None:
        """The last offline data saved, as the central sent it, or None."""
        with self._lock:
            doc = self._snapshot_db.table("snapshot").get(doc_id=1)
            return dict(doc) if doc else None

    def save_snapshot(self, data: Mapping[str, Any]) -> None:
        """Replace the offline data in one durable write."""
        with self._lock:
            _put_single(self._snapshot_db.table("snapshot"), dict(data))

    def token(self) -> str | None:
        """The device token, or None before activation."""
        with self._lock:
            try:
                return (self.directory / TOKEN).read_text(encoding="utf-8").strip() or None
            except FileNotFoundError:
                return None

    def save_token(self, token: str) -> None:
        """Write the token atomically to its own file, readable by this user only (0600)."""
        self._writable()
        with self._lock:
            atomic_write_bytes(self.directory / TOKEN, token.encode("utf-8"), mode=0o600)

    def delete_token(self) -> None:
        self._writable()
        with self._lock, contextlib.suppress(FileNotFoundError):
            (self.directory / TOKEN).unlink()
            fsync_directory(self.directory)

    def _writable(self) -> None:
        if self.readonly:
            raise ReadOnly(f"store {self.directory} is open read-only")

    def close(self) -> None:
        with self._lock:
            self._outbox.close()
            for db in (self._state_db, self._snapshot_db):
                db.close()


def _put_single(table: Table, data: dict[str, Any]) -> None:
    """Make ``data`` the one document (doc_id 1) of ``table`` with a single write of its file."""
    if table.contains(doc_id=1):

        def replace(doc: dict[str, Any]) -> None:
            doc.clear()
            doc.update(data)

        table.update(replace, doc_ids=[1])
    else:
        table.insert(Document(data, doc_id=1))
