"""The terminal's durable store: TinyDB files that survive a power cut at any instant.

A bus may lose power at every stop, so every write here is atomic and durable before the call returns:
:class:`AtomicJSONStorage` writes a temporary file, fsyncs it, renames it over the old one and fsyncs the
directory. Stock TinyDB rewrites its file in place and leaves unparseable JSON behind when killed mid-write
(``../shared/notes/libraries.md`` §1).

TinyDB rewrites a whole file on every write, so the data is split by concern and each write stays small::

    outbox.json              scans recorded but not yet acknowledged by the central (bounded)
    history-YYYY-MM.json     scans with the central's result, one file per month of filing, kept 13 months
    snapshot.json            the offline data pulled from the central
    state.json               activation, device id, last sequence number
    token                    the device token, mode 0600

Recording a scan writes ``outbox.json`` only, and that file holds only pending scans, so recording does not
slow down as history grows. A scan's identity is the UUID made on the terminal (``id``); TinyDB's
``doc_id`` is reused after a restart and is never used as an identity.

One :class:`threading.RLock` guards every public call: TinyDB is not thread-safe, and the scanner, the kiosk
and the sync worker all use the store. A file is owned by a single process, which makes the write-through
read cache of the outbox, state and snapshot files safe. History files are read when needed and not kept
in memory: a month may hold tens of thousands of rows.

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
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.middlewares import Middleware
from tinydb.operations import delete
from tinydb.storages import Storage
from tinydb.table import Document, Table

from terminal.clock import local_now

logger = logging.getLogger(__name__)

DEFAULT_OUTBOX_LIMIT = 50_000
DEFAULT_HISTORY_MONTHS = 13

OUTBOX = "outbox.json"
STATE = "state.json"
SNAPSHOT = "snapshot.json"
TOKEN = "token"
_HISTORY = re.compile(r"^history-(\d{4})-(\d{2})\.json$")
_TMP_SUFFIX = ".tmp"


class StoreError(Exception):
    """Base class of the store's errors. ``message_fr`` says it on screen."""

    message_fr = "Erreur d'enregistrement."


class ReadOnly(StoreError):
    """A write through a store opened read-only."""

    message_fr = "Lecture seule : rien n'a été enregistré."


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


def fsync_directory(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable (POSIX needs the directory itself fsync'd)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that, whatever happens, the file holds either the old or the new bytes.

    Temporary files are made in the same directory (a rename is atomic only within a file system) and named
    ``<name>.<random>.tmp``; a kill leaves them behind, and :func:`sweep_orphans` removes them.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def sweep_orphans(directory: Path) -> list[Path]:
    """Delete the temporary files that writes killed half-way left in ``directory``; return them."""
    swept = []
    for tmp in Path(directory).glob("*" + _TMP_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            swept.append(tmp)
    if swept:
        fsync_directory(Path(directory))
        logger.info("Removed %d temporary file(s) left by interrupted writes in %s", len(swept), directory)
    return swept


def quarantine(path: Path, why: str) -> Path:
    """Move an unreadable file aside as ``<name>.corrupt-<UTC timestamp>`` and say so in the log."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    fsync_directory(path.parent)
    logger.error("Store file %s is unreadable (%s): moved aside to %s; continuing with an empty %s",
                 path, why, target.name, path.name)  # fmt: skip
    return target


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
    daemon runs): no orphan sweep (a temporary file may be the daemon's write in progress), no quarantine,
    and every write raises :class:`ReadOnly`.

    ``outbox_limit``: pending scans allowed before :meth:`record` raises :class:`OutboxFull`;
    ``history_months``: months of history kept, the current one included; ``now``: the wall clock, which
    names the month a result is filed under.

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
    ) -> None:
        self.directory = Path(directory)
        self.readonly = readonly
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.outbox_limit = outbox_limit
        self.history_months = history_months
        self._now = now
        self._lock = threading.RLock()
        if not readonly:
            sweep_orphans(self.directory)
        self._outbox_db = open_db(self.directory / OUTBOX, readonly=readonly)
        self._outbox = self._outbox_db.table("scans")
        self._state_db = open_db(self.directory / STATE, readonly=readonly)
        self._snapshot_db = open_db(self.directory / SNAPSHOT, readonly=readonly)
        state_seq = int(self.state().get("last_seq", 0))
        outbox_seq = max((int(doc.get("seq", 0)) for doc in self._outbox.all()), default=0)
        self._last_seq = max(state_seq, outbox_seq)

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

        Raises :class:`OutboxFull` (and records nothing) when they would not fit, and ``ValueError`` for a
        scan without an ``id`` or with an ``id`` already pending.
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
            self._outbox.insert_multiple(dict(scan) for scan in scans)

    def pending(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Pending scans, oldest (lowest ``seq``) first, at most ``limit`` of them."""
        with self._lock:
            docs = sorted(self._outbox.all(), key=lambda doc: doc.get("seq", 0))
            return [dict(doc) for doc in docs[:limit]]

    def claim(self, limit: int) -> list[dict[str, Any]]:
        """The oldest pending scans (at most ``limit``), marked ``sent`` durably before they go to the central.

        Once a scan may have reached the central (a request sent, whatever came back), it can no longer be
        cancelled on the terminal: the central might have counted it already.
        """
        with self._lock:
            batch = self.pending(limit)
            fresh = {scan["id"] for scan in batch if not scan.get("sent")}
            if fresh:
                self._outbox.update({"sent": True}, cond=lambda doc: doc.get("id") in fresh)
                for scan in batch:
                    scan["sent"] = True
            return batch

    def unclaim(self, scan_ids: Iterable[str]) -> None:
        """Take the ``sent`` mark off scans whose request surely never left (the connection was refused)."""
        with self._lock:
            ids = set(scan_ids)
            if ids:
                self._outbox.update(delete("sent"), cond=lambda doc: doc.get("id") in ids and "sent" in doc)

    def pending_count(self) -> int:
        with self._lock:
            return len(self._outbox)

    def get_pending(self, scan_id: str) -> dict[str, Any] | None:
        with self._lock:
            for doc in self._outbox.all():
                if doc.get("id") == scan_id:
                    return dict(doc)
            return None

    def oldest_pending(self) -> dict[str, Any] | None:
        with self._lock:
            return min((dict(doc) for doc in self._outbox.all()), key=lambda doc: doc.get("seq", 0), default=None)

    def _pending_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = set(ids)
        return {doc["id"] for doc in self._outbox.all() if doc.get("id") in wanted}

    def _retire(self, ids: set[str], filed: Mapping[str, Mapping[str, Any]]) -> None:
        """Move scans out of the outbox once their history rows are durable.

        Order matters for a power cut: history first (a scan filed twice is deduplicated by id), then the
        sequence floor, then the removal from the outbox.
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
        self._outbox.remove(cond=lambda doc: doc.get("id") in ids)
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
            for doc in self._outbox.all():
                result = by_id.get(doc.get("id"))
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
                for doc in self._outbox.all()
                if doc.get("id") in wanted and not doc.get("sent")
            }
            missing = wanted - set(rows)
            if missing:
                raise KeyError(sorted(missing))
            self._retire(set(rows), rows)
            return list(rows.values())

    # -- history -----------------------------------------------------------------------------------------

    def _history_path(self, month: str) -> Path:
        return self.directory / f"history-{month}.json"

    def _history_rows(self, month: str) -> list[dict[str, Any]]:
        """The rows filed in ``month``; the file is read and let go of (history is not kept in memory)."""
        if not self._history_path(month).exists():
            return []
        db = open_db(self._history_path(month), readonly=self.readonly)
        try:
            return [dict(doc) for doc in db.table("scans").all()]
        finally:
            db.close()

    def _file(self, month: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert history rows for ``month``, skipping ids already filed there or the month before."""
        ids = {str(row["id"]) for row in rows}
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
        """History rows filed in ``month`` (``YYYY-MM``), in filing order."""
        with self._lock:
            return self._history_rows(month)

    def iter_history(self) -> Iterator[dict[str, Any]]:
        """Every history row, oldest month first, one month in memory at a time."""
        for month in self.history_files():
            with self._lock:
                rows = self._history_rows(month)
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
            for db in (self._outbox_db, self._state_db, self._snapshot_db):
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
