"""Time on a device without a real-time clock.

A Raspberry Pi has no battery-backed clock: after a power cut it boots with the last time saved to disk
(or worse), and only NTP puts it right, if the network is there. So the terminal never trusts its wall clock
alone. Every scan carries a :class:`ScanStamp`:

- ``scanned_at``: the wall time, ISO 8601 with the local UTC offset;
- ``clock_synced``: whether systemd-timesyncd had synchronised the clock (it creates
  ``/run/systemd/timesync/synchronized`` once it has, and ``/run`` is emptied at every boot);
- ``boot_id`` and ``monotonic``: the kernel's boot id and the monotonic clock, which never jumps, so two
  scans of the same boot can be ordered and spaced even when the wall clock was wrong;
- ``seq``: a per-device sequence number that only grows. The :class:`~terminal.store.Store` allocates it,
  because it must survive restarts together with the scans (see ``Store.next_seq``).

The central keeps these facts as sent and decides itself what to do with a scan stamped by an unsynced
clock: a Pi has no battery-backed clock, so after a power cut it may boot in 1970 or at the last saved time
until NTP answers; the central judges such a scan by its own receive time and flags it
(``implausible_time``), and never refuses a scan for its clock alone.

>>> from datetime import datetime, timezone
>>> clock = Clock(sync_marker=Path("/nonexistent"), now=lambda: datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc))
>>> clock.synced()
False
>>> clock.stamp(7).scanned_at
'2026-03-01T09:30:00.000+00:00'
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

SYNC_MARKER = Path("/run/systemd/timesync/synchronized")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def local_now() -> datetime:
    """The wall time as an aware datetime in the machine's local time zone."""
    return datetime.now().astimezone()


@dataclass(frozen=True, slots=True)
class ScanStamp:
    """When and in which boot a scan was made, as stored with the scan and sent to the central."""

    scanned_at: str
    clock_synced: bool
    boot_id: str
    monotonic: float
    seq: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Clock:
    """The terminal's view of time. Every source can be replaced, which is how tests travel in time.

    ``sync_marker``: the file whose existence means "NTP synchronised"; ``boot_id_path``: where the kernel
    publishes the boot id; ``now``: returns an aware datetime; ``monotonic``: returns seconds.
    """

    def __init__(
        self,
        *,
        sync_marker: Path = SYNC_MARKER,
        boot_id_path: Path = BOOT_ID,
        now: Callable[[], datetime] = local_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sync_marker = Path(sync_marker)
        self.boot_id_path = Path(boot_id_path)
        self._now = now
        self._monotonic = monotonic
        self._boot_id: str | None = None

    def now(self) -> datetime:
        """The wall time, aware. Naive datetimes from an injected source are taken as local time."""
        moment = self._now()
        return moment if moment.tzinfo is not None else moment.astimezone()

    def today(self) -> date:
        """The local date, as the validity rules and the same-carnet rule count days."""
        return self.now().date()

    def monotonic(self) -> float:
        return self._monotonic()

    def synced(self) -> bool:
        """True when systemd-timesyncd has synchronised the clock since this boot."""
        return self.sync_marker.exists()

    @property
    def boot_id(self) -> str:
        """The kernel's boot id; a random id for this process where the kernel offers none (not Linux)."""
        if self._boot_id is None:
            try:
                self._boot_id = self.boot_id_path.read_text(encoding="ascii").strip()
            except OSError as error:
                self._boot_id = str(uuid.uuid4())
                logger.warning("Cannot read the boot id from %s (%s); using %s", self.boot_id_path, error,
                               self._boot_id)  # fmt: skip
        return self._boot_id

    def stamp(self, seq: int) -> ScanStamp:
        """The stamp for a scan made now with sequence number ``seq``."""
        return ScanStamp(
            scanned_at=self.now().isoformat(timespec="milliseconds"),
            clock_synced=self.synced(),
            boot_id=self.boot_id,
            monotonic=self.monotonic(),
            seq=seq,
        )
