"""The Terminal: what the kiosk, the scanner and the sync worker drive.

It wires the domain rules (``aptic.rules.judge``), the offline snapshot, the durable store, the clock and the
event bus. It has two modes:

- **test** (self-service, the default): anyone scans a pass to see whether it is valid here and what its
  funder allows; nothing is recorded;
- **entry** (saisie du médiateur): the médiateur chooses the service rendered, scans the passes that pay it
  (a valid pass is added to the entry, a refused one is not), may remove one, then submits. ``submit()``
  returns only once the scans are fsync'd in the outbox, so the screen may then say « enregistré ».

A submitted entry may be cancelled for 15 minutes, as long as none of its scans has reached the central.

Verdicts given without the central are marked ``provisional``: the central has the last word when the scans
are synced, and a scan it rejects then is published as a ``late_rejection`` event for the médiateur.

Typical use by the kiosk::

    terminal = Terminal(Store(config.data_dir), clock=Clock(), bus=EventBus())
    terminal.start_entry(service=12)
    result = terminal.handle_code("1 26 0001234 07 5821 12")    # also called by the scanner
    receipt = terminal.submit()                                  # durable when it returns
    terminal.cancel_entry(receipt.entry_id)                      # within 15 minutes, if not yet synced
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from aptic.passnumber import PassNumberError, parse
from aptic.places import Place
from aptic.reasons import Reason
from aptic.rules import Order, PriorUse, describe_restrictions, judge, malformed
from terminal.clock import Clock, ScanStamp
from terminal.events import EventBus
from terminal.snapshot import Snapshot, SnapshotError, from_json
from terminal.store import OutboxFull, Store

CANCEL_WINDOW = timedelta(minutes=15)
OnlineCheck = Callable[[str, int, int], Mapping[str, Any] | None]
"""``(pass digits, service, point) -> the central's validity answer``, or None when it cannot be had in time."""
USED_STATUSES = ("accepted", "flagged")  # central results that count as a use of the pass


class Mode(StrEnum):
    TEST = "test"
    ENTRY = "entry"


class TerminalError(Exception):
    """An action the terminal refuses; ``message_fr`` is what the screen shows."""

    def __init__(self, message: str, message_fr: str) -> None:
        super().__init__(message)
        self.message_fr = message_fr


class NotReady(TerminalError):
    """No offline data or no point de présence yet (the terminal is not activated or never synced)."""


class NoEntry(TerminalError):
    """An entry action while no entry is open."""


class CancelRefused(TerminalError):
    """The entry cannot be cancelled any more (too late, already synced, or unknown)."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The answer to one scanned code, as the screen shows it and the ``scan`` event carries it."""

    code: str
    reason: Reason
    message: str
    mode: Mode
    point_id: int | None
    """None only for a malformed code read before the terminal knows its point."""
    service: int | None
    pass_number: str | None = None
    warnings: tuple[str, ...] = ()
    provisional: bool = True
    added: bool = False
    device: str | None = None
    restrictions: tuple[str, ...] = ()
    pass_info: dict[str, object] | None = None
    stamp: ScanStamp | None = None

    @property
    def valid(self) -> bool:
        return self.reason is Reason.OK

    @property
    def title(self) -> str:
        return self.reason.title

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "pass_number": self.pass_number,
            "valid": self.valid,
            "reason": str(self.reason),
            "title": self.title,
            "message": self.message,
            "warnings": list(self.warnings),
            "provisional": self.provisional,
            "mode": str(self.mode),
            "point": self.point_id,
            "service": self.service,
            "added": self.added,
            "device": self.device,
            "restrictions": list(self.restrictions),
            "pass": self.pass_info,
        }


@dataclass
class Entry:
    """The médiateur's open entry: one service at one point, and the passes accepted so far."""

    id: str
    service: int
    point_id: int
    started_at: str
    scans: dict[str, ScanResult] = field(default_factory=dict)  # pass digits -> result, in scan order

    @property
    def passes(self) -> list[str]:
        return list(self.scans)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "point": self.point_id,
            "started_at": self.started_at,
            "passes": [
                {"pass_number": n, "message": r.message, "warnings": list(r.warnings), "provisional": r.provisional}
                for n, r in self.scans.items()
            ],
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """What ``submit()`` returns once the entry's scans are durable."""

    entry_id: str
    scan_ids: tuple[str, ...]
    passes: tuple[str, ...]
    service: int
    point_id: int
    recorded_at: str
    cancellable_until: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "scan_ids": list(self.scan_ids),
            "passes": list(self.passes),
            "service": self.service,
            "point": self.point_id,
            "recorded_at": self.recorded_at,
            "cancellable_until": self.cancellable_until,
        }


class UseIndex:
    """Earlier uses of passes the terminal knows of, by carnet: the snapshot's, the synced history's and
    the pending scans' (keyed by scan id, so a cancelled or rejected scan can be taken back out)."""

    def __init__(self) -> None:
        self._known: dict[str, list[PriorUse]] = {}
        self._pending: dict[str, PriorUse] = {}
        self._pending_by_carnet: dict[str, set[str]] = {}

    def add_known(self, use: PriorUse) -> None:
        self._known.setdefault(use.pass_number[:10], []).append(use)

    def add_pending(self, scan_id: str, use: PriorUse) -> None:
        self._pending[scan_id] = use
        self._pending_by_carnet.setdefault(use.pass_number[:10], set()).add(scan_id)

    def drop_pending(self, scan_id: str) -> PriorUse | None:
        use = self._pending.pop(scan_id, None)
        if use is not None:
            self._pending_by_carnet.get(use.pass_number[:10], set()).discard(scan_id)
        return use

    def for_carnet(self, carnet: str, *, pending: bool = True) -> list[PriorUse]:
        """Uses of the carnet's passes; without the pending scans' if ``pending`` is False."""
        waiting = [self._pending[i] for i in self._pending_by_carnet.get(carnet, ())] if pending else []
        return [*self._known.get(carnet, ()), *waiting]


def _use_from_scan(scan: Mapping[str, Any]) -> PriorUse:
    return PriorUse(
        pass_number=str(scan["pass_number"]),
        service=int(scan["service"]),
        organisation_id=int(scan.get("organisation_id") or 0),
        on=date.fromisoformat(str(scan["scanned_at"])[:10]),
        place_name=str(scan.get("place_name") or ""),
    )


class Terminal:
    """The device's brain; see the module docstring. Thread-safe: the scanner thread, the kiosk's request
    threads and the sync worker may call it at the same time.

    ``store``: the durable store; ``clock``: time sources (injectable for tests); ``bus``: where events
    go; ``point_id``: the point de présence this terminal stands at (default: the one saved in the state,
    else the snapshot's only point).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        bus: EventBus | None = None,
        point_id: int | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or Clock()
        self.bus = bus or EventBus()
        self._lock = threading.RLock()
        self._mode = Mode.TEST
        self._entry: Entry | None = None
        self._point_id = point_id if point_id is not None else store.state().get("point_id")
        self._snapshot = Snapshot()
        self._uses = UseIndex()
        self.online_check: OnlineCheck | None = None
        self.reload()

    # -- offline data ------------------------------------------------------------------------------------

    def reload(self, snapshot: Snapshot | None = None) -> Snapshot:
        """Read the snapshot (unless given, as just saved), the history and the outbox again and rebuild the
        index of known uses."""
        with self._lock:
            if snapshot is None:
                raw = self.store.snapshot()
                try:
                    snapshot = from_json(raw) if raw else Snapshot()
                except SnapshotError:
                    snapshot = Snapshot()
                    self.bus.publish("refused", message="Données hors ligne illisibles : synchronisation nécessaire.")
            uses = UseIndex()
            for use in snapshot.used:
                uses.add_known(use)
            for row in self.store.iter_history():
                if row.get("status") in USED_STATUSES and row.get("pass_number"):
                    uses.add_known(_use_from_scan(row))
            for scan in self.store.pending():
                uses.add_pending(scan["id"], _use_from_scan(scan))
            self._snapshot, self._uses = snapshot, uses
            return snapshot

    def load_snapshot(self, data: Mapping[str, Any]) -> Snapshot:
        """Save new offline data from the central (after checking it converts) and use it."""
        snapshot = from_json(data)  # a national snapshot takes ~0.1 s to convert: once is enough
        self.store.save_snapshot(data)
        return self.reload(snapshot)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def point_id(self) -> int | None:
        with self._lock:
            if self._point_id is not None:
                return self._point_id
            if len(self._snapshot.places) == 1:
                return next(iter(self._snapshot.places))
            return None

    @property
    def place(self) -> Place | None:
        point = self.point_id
        return None if point is None else self._snapshot.place(point)

    def set_point(self, point_id: int) -> Place:
        """Choose the point de présence the terminal stands at (a bus moves); saved across restarts."""
        with self._lock:
            place = self._snapshot.place(point_id)
            if place is None:
                raise NotReady(f"unknown point {point_id}", "Point de présence inconnu de ce terminal.")
            self.store.update_state(point_id=point_id)
            self._point_id = point_id
            self.bus.publish("mode", mode=str(self._mode), point=point_id, place=place.name)
            return place

    def _require_place(self) -> Place:
        place = self.place
        if place is None:
            raise NotReady(
                "no offline data or no point chosen",
                "Terminal pas prêt : activez-le et synchronisez-le, ou choisissez le point de présence.",
            )
        return place

    # -- modes and entries -------------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def entry(self) -> Entry | None:
        return self._entry

    def start_entry(self, service: int) -> Entry:
        """Open an entry for ``service`` at the current point (switches to entry mode).

        Refused with :class:`~terminal.store.OutboxFull` while the outbox is full, so no médiateur
        scans passes that could not be recorded. An entry already open is replaced.
        """
        with self._lock:
            place = self._require_place()
            pending = self.store.pending_count()
            if pending >= self.store.outbox_limit:
                error = OutboxFull(pending, self.store.outbox_limit, 1)
                self.bus.publish("refused", message=error.message_fr)
                raise error
            self._entry = Entry(str(uuid.uuid4()), int(service), place.point_id, self.clock.now().isoformat())
            self._mode = Mode.ENTRY
            self.bus.publish("mode", mode=str(self._mode), point=place.point_id, service=int(service))
            self.bus.publish("entry", entry=self._entry.as_dict())
            return self._entry

    def abandon_entry(self) -> None:
        """Close the open entry without recording anything and go back to test mode."""
        with self._lock:
            self._entry = None
            self._mode = Mode.TEST
            self.bus.publish("mode", mode=str(self._mode), point=self.point_id)

    def handle_code(self, code: str, *, device: str | None = None) -> ScanResult:
        """Judge a scanned or typed code; in entry mode a valid pass joins the entry. Publishes ``scan``.

        The offline verdict comes first. When the sync worker says the central answers (``online_check`` is
        set and returns a verdict within its 1.5 s), the central's verdict replaces it and is not provisional;
        except when the offline refusal comes from what only this terminal knows (the open entry, scans not
        yet synced), which stands. Calls are serialised: a scan waits for the one before it, central included.
        """
        with self._lock:
            try:
                number = parse(code)
            except PassNumberError as error:
                if self.place is None:
                    # Format and check digits need no offline data: a bad number is refused as such even on
                    # a terminal not activated yet, instead of a misleading "not ready".
                    return self._malformed_before_ready(code, error, device)
                number = None
            place = self._require_place()
            today = self.clock.today()
            order: Order | None = None
            uses: list[PriorUse] = []
            known: list[PriorUse] = []
            if number is not None:
                order = self._snapshot.order_for(number.carnet, number.position)
                uses = self._uses.for_carnet(number.carnet)
                known = self._uses.for_carnet(number.carnet, pending=False)
            entry = self._entry if self._mode is Mode.ENTRY else None
            if entry is not None:
                service = entry.service
                passes = entry.passes
            else:
                service = _test_service(order, place)
                passes = []
                uses = [u for u in uses if number is not None and u.pass_number == number.digits]
                known = [u for u in known if number is not None and u.pass_number == number.digits]
            verdict = judge(number or code, order=order, place=place, service=service, today=today, uses=uses,
                            entry=passes)  # fmt: skip
            local_only = not verdict.valid and (
                judge(number or code, order=order, place=place, service=service, today=today, uses=known).reason
                is not verdict.reason
            )
            result = ScanResult(
                code=code,
                reason=verdict.reason,
                message=verdict.message,
                mode=self._mode,
                point_id=place.point_id,
                service=service,
                pass_number=number.digits if number else None,
                warnings=verdict.warnings,
                provisional=True,
                device=device,
                restrictions=tuple(describe_restrictions(order)) if order and entry is None else (),
                pass_info=verdict.pass_info(),
            )
            if self.online_check is not None and number is not None and not local_only:
                answer = self.online_check(number.digits, service, place.point_id)
                if answer is not None:
                    result = _with_central(result, answer)
            if entry is not None and result.valid:
                result = replace(result, added=True, stamp=self.clock.stamp(0))
                entry.scans[result.pass_number or ""] = result
            self.bus.publish("scan", result=result.as_dict())
            if result.added and entry is not None:
                self.bus.publish("entry", entry=entry.as_dict())
            return result

    def _malformed_before_ready(self, code: str, error: PassNumberError, device: str | None) -> ScanResult:
        verdict = malformed(error)
        result = ScanResult(code=code, reason=verdict.reason, message=verdict.message, mode=self._mode,
                            point_id=None, service=None, device=device)  # fmt: skip
        self.bus.publish("scan", result=result.as_dict())
        return result

    def remove(self, pass_number: str) -> bool:
        """Take a pass out of the open entry before submitting; False if it was not in it."""
        with self._lock:
            entry = self._open_entry()
            try:
                digits = parse(pass_number).digits
            except PassNumberError:
                digits = pass_number
            removed = entry.scans.pop(digits, None) is not None
            if removed:
                self.bus.publish("entry", entry=entry.as_dict())
            return removed

    def _open_entry(self) -> Entry:
        if self._mode is not Mode.ENTRY or self._entry is None:
            raise NoEntry("no entry open", "Aucune saisie en cours.")
        return self._entry

    def submit(self) -> Receipt:
        """Record the open entry's scans durably, then close it and go back to test mode.

        When this returns, every scan is fsync'd in the outbox. On :class:`~terminal.store.OutboxFull` (or a
        disk error) nothing is recorded and the entry stays open, so nothing is silently lost.
        """
        with self._lock:
            entry = self._open_entry()
            if not entry.scans:
                raise NoEntry("empty entry", "La saisie ne contient aucun pass.")
            place = self._require_place()
            now = self.clock.now()
            mono = self.clock.monotonic()
            scans = []
            for digits, result in entry.scans.items():
                stamp = result.stamp or self.clock.stamp(0)
                scans.append(
                    {
                        "id": str(uuid.uuid4()),
                        "entry_id": entry.id,
                        "pass_number": digits,
                        "service": entry.service,
                        "point": entry.point_id,
                        "organisation_id": place.organisation_id,
                        "place_name": place.name,
                        **replace(stamp, seq=self.store.next_seq()).as_dict(),
                        "submitted_at": now.isoformat(),
                        "submitted_monotonic": mono,
                        "offline_reason": str(result.reason),
                        "offline_message": result.message,
                        "provisional": result.provisional,
                        "device": result.device,
                    }
                )
            try:
                self.store.record(scans)
            except OutboxFull as error:
                self.bus.publish("refused", message=error.message_fr)
                raise
            for scan in scans:
                self._uses.add_pending(scan["id"], _use_from_scan(scan))
            receipt = Receipt(
                entry_id=entry.id,
                scan_ids=tuple(s["id"] for s in scans),
                passes=tuple(entry.scans),
                service=entry.service,
                point_id=entry.point_id,
                recorded_at=now.isoformat(),
                cancellable_until=(now + CANCEL_WINDOW).isoformat(),
            )
            self._entry = None
            self._mode = Mode.TEST
            self.bus.publish("submitted", receipt=receipt.as_dict())
            self.bus.publish("mode", mode=str(self._mode), point=self.point_id)
            return receipt

    def cancel_entry(self, entry_id: str) -> list[dict[str, Any]]:
        """Withdraw a submitted entry within 15 minutes, if none of its scans has been sent to the central yet
        (sent: a request left, even if no answer came back).

        The window is measured on the monotonic clock when the entry was submitted in this boot (a wall clock
        set by NTP in between cannot stretch it), else on the wall clock. Returns the history rows written.
        """
        with self._lock:
            scans = [s for s in self.store.pending() if s.get("entry_id") == entry_id]
            synced = [r for r in self._history_rows(2) if r.get("entry_id") == entry_id]
            if not scans or synced or any(s.get("sent") for s in scans):
                raise CancelRefused(
                    f"entry {entry_id} has no pending scans or some are synced",
                    "Annulation impossible : la saisie a déjà été transmise au central.",
                )
            first = scans[0]
            if first.get("boot_id") == self.clock.boot_id:
                elapsed = timedelta(seconds=self.clock.monotonic() - float(first["submitted_monotonic"]))
            else:
                elapsed = self.clock.now() - datetime.fromisoformat(str(first["submitted_at"]))
            if elapsed > CANCEL_WINDOW:
                raise CancelRefused(
                    f"entry {entry_id} was submitted {elapsed} ago",
                    "Annulation impossible : le délai de 15 minutes est dépassé.",
                )
            try:
                rows = self.store.cancel(s["id"] for s in scans)
            except KeyError as error:  # synced by the worker in the meantime
                raise CancelRefused(
                    f"entry {entry_id}: {error}", "Annulation impossible : la saisie a déjà été transmise au central."
                ) from error
            for row in rows:
                self._uses.drop_pending(row["id"])
            self.bus.publish("cancelled", entry_id=entry_id, passes=[r["pass_number"] for r in rows])
            return rows

    # -- results from the central ------------------------------------------------------------------------

    def apply_results(self, results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """File the central's per-scan results (``POST /scans`` response) and tell the médiateur.

        A scan the terminal had judged valid offline and the central rejects is published as a
        ``late_rejection`` event. Returns the history rows written.
        """
        with self._lock:
            rows = self.store.file_results(results)
            late = []
            for row in rows:
                self._uses.drop_pending(row["id"])
                if row.get("status") in USED_STATUSES:
                    self._uses.add_known(_use_from_scan(row))
                elif row.get("status") == "rejected" and row.get("offline_reason") == str(Reason.OK):
                    late.append(row)
            for row in late:
                self.bus.publish("late_rejection", scan=_public_row(row))
            if rows:
                self.bus.publish("synced", count=len(rows), rejected=len(late), pending=self.store.pending_count())
            return rows

    def late_rejections(self, months: int = 2) -> list[dict[str, Any]]:
        """Scans accepted offline that the central rejected, in the last ``months`` months of history."""
        return [
            _public_row(r)
            for r in self._history_rows(months)
            if r.get("status") == "rejected" and r.get("offline_reason") == str(Reason.OK)
        ]

    def _history_rows(self, months: int) -> list[dict[str, Any]]:
        kept = self.store.history_files()[-months:]
        return [row for month in kept for row in self.store.history(month)]

    def mediateur_pin_hash(self) -> str | None:
        """The médiateur PIN's hash (``aptic.pin``): one set on this terminal (``activate --pin``), else the
        organisation's, which the central sends with the activation and the offline snapshot."""
        local = self.store.state().get("mediateur_pin_hash")
        if local:
            return str(local)
        organisation = (self.store.snapshot() or {}).get("organisation") or {}
        return organisation.get("mediateur_pin_hash")

    # -- status ------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary for ``status --json``, the kiosk and the heartbeat."""
        with self._lock:
            oldest = self.store.oldest_pending()
            oldest_age = None
            if oldest is not None:
                try:
                    oldest_age = (self.clock.now() - datetime.fromisoformat(oldest["submitted_at"])).total_seconds()
                except (KeyError, ValueError):
                    oldest_age = None
            state = self.store.state()
            place = self.place
            return {
                "mode": str(self._mode),
                "activation": state.get("status", "activated" if self.store.token() else "not_activated"),
                "device_id": state.get("device_id"),
                "point": place.point_id if place else None,
                "place": place.name if place else None,
                "entry": self._entry.as_dict() if self._entry else None,
                "outbox": {
                    "pending": self.store.pending_count(),
                    "limit": self.store.outbox_limit,
                    "oldest_pending_age_s": oldest_age,
                },
                "snapshot": {"cursor": self._snapshot.cursor, "generated_at": self._snapshot.generated_at},
                "clock_synced": self.clock.synced(),
                "boot_id": self.clock.boot_id,
            }


def _test_service(order: Order | None, place: Place) -> int:
    """The service a self-service test judges against: the first of the point's catalogue the pass may pay,
    so the test answers "valid here for at least one service" and lists the funder's restrictions."""
    catalogue = sorted(place.catalogue)
    if order is not None:
        covered = [s for s in catalogue if order.restrictions.covers_service(s)]
        if covered:
            return covered[0]
    return catalogue[0] if catalogue else 1


def _with_central(result: ScanResult, answer: Mapping[str, Any]) -> ScanResult:
    """``result`` with the central's verdict (``GET /passes/{number}/validity``) in place of the offline one."""
    try:
        reason = Reason(str(answer["reason"]))
    except (KeyError, ValueError):
        return result  # a reason this terminal does not know: keep the offline verdict, provisional
    return replace(
        result,
        reason=reason,
        message=str(answer.get("message") or reason.title),
        warnings=result.warnings if reason is Reason.OK and result.valid else (),
        provisional=False,
        pass_info=answer.get("pass") or result.pass_info,
    )


def _public_row(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "entry_id", "pass_number", "service", "point", "scanned_at", "status", "reason", "message")
    return {k: row.get(k) for k in keys}
