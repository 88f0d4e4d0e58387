"""How late the reader reads: the scheduling delay of every read, as a histogram cheap enough for the loop.

The kernel stamps each input event when the device reports it, on ``CLOCK_MONOTONIC`` (the reader asks for
that clock with ``EVIOCSCLOCKID``), and keeps about 64 events per reader. A douchette in Alt+numpad mode
sends some 130 reports of 3 events, one per millisecond: a reader that is not scheduled for ~20 ms loses
events (the kernel says so with ``SYN_DROPPED``) and the scan with them. So the figure that matters is::

    delay = time.monotonic() when read() returned - timestamp of the oldest event that read returned

:class:`StallMeter` keeps it in fixed buckets of 50 µs up to 100 ms (one more for anything later) and the
exact maximum. :meth:`StallMeter.add` is an index computation and an increment, safe to call on every read;
:meth:`StallMeter.summary` walks the buckets (a few thousand integers), for a state file or a bench.

>>> meter = StallMeter()
>>> for ms in [0.2] * 998 + [3.0, 7.5]:
...     meter.add(ms / 1000)
>>> s = meter.summary()
>>> s["count"], s["max_ms"], s["over_target"], s["p999_ms"] <= 3.05
(1000, 7.5, 1, True)
"""

from __future__ import annotations

BUCKET_S = 0.000_05
"""Width of a bucket: 50 µs."""
BUCKETS = 2000
"""Buckets up to 100 ms; later reads go in one more, and :attr:`StallMeter.max` says how late."""
TARGET_S = 0.005
"""The target: a reader never more than 5 ms late (a quarter of what the kernel's buffer covers at 1 kHz)."""


class StallMeter:
    """A histogram of read delays (seconds). One thread adds; any thread may ask for a summary."""

    def __init__(self) -> None:
        self.counts = [0] * (BUCKETS + 1)
        self.count = 0
        self.max = 0.0
        self.over_target = 0

    def add(self, delay: float) -> None:
        """Count one read that returned ``delay`` seconds after its oldest event was stamped."""
        index = int(delay / BUCKET_S) if delay > 0 else 0
        self.counts[index if index < BUCKETS else BUCKETS] += 1
        self.count += 1
        if delay > self.max:
            self.max = delay
        if delay > TARGET_S:
            self.over_target += 1

    def quantile(self, q: float) -> float:
        """The upper edge of the bucket holding the ``q`` quantile (seconds); the max for the last bucket."""
        counts = list(self.counts)  # a copy: the reader thread may add meanwhile
        total = sum(counts)
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for index, n in enumerate(counts):
            seen += n
            if seen >= rank:
                return self.max if index == BUCKETS else min((index + 1) * BUCKET_S, self.max)
        return self.max

    def summary(self) -> dict[str, float | int]:
        """``count``, ``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms``, ``over_target`` (reads later than 5 ms)."""
        return {
            "count": self.count,
            "p50_ms": round(self.quantile(0.5) * 1000, 3),
            "p99_ms": round(self.quantile(0.99) * 1000, 3),
            "p999_ms": round(self.quantile(0.999) * 1000, 3),
            "max_ms": round(self.max * 1000, 3),
            "over_target": self.over_target,
        }
