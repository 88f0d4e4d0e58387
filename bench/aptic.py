"""Domain speed: parse a scanned pass number and give its full verdict (issue 2: under 20 µs per call)."""

from __future__ import annotations

import statistics
import time
from datetime import date

from aptic.passnumber import build, hmac_authenticator
from aptic.places import Place
from aptic.rules import Order, PriorUse, Restrictions, judge

TARGET_US = 20.0


def main() -> None:
    auth = hmac_authenticator(b"bench")
    number = build(2026, 1234, 7, auth)
    typed = " ".join((number[:1], number[1:3], number[3:10], number[10:12], number[12:16], number[16:]))
    order = Order(
        "Département de la Gironde",
        2026,
        restrictions=Restrictions(territories=frozenset({"33"}), categories=frozenset({"2.2"})),
    )
    place = Place(10, 1, "Médiathèque", "33063", frozenset({"BIB"}), catalogue=frozenset(range(1, 130)))
    # Worst realistic case: every check runs, with earlier uses of the carnet and a full entry to look through.
    uses = tuple(PriorUse(build(2026, 1234, p, auth), 84, 1, date(2026, 6, 1)) for p in (1, 2, 3))
    entry = tuple(build(2026, s, 1, auth) for s in range(10))

    def call() -> None:
        judge(typed, order=order, place=place, service=90, today=date(2026, 6, 15), uses=uses, entry=entry)

    assert judge(typed, order=order, place=place, service=90, today=date(2026, 6, 15), uses=uses, entry=entry).valid
    for _ in range(2000):  # warm up
        call()
    batch, samples = 200, []
    for _ in range(250):
        started = time.perf_counter_ns()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter_ns() - started) / batch / 1000)
    median = statistics.median(samples)
    p99 = statistics.quantiles(samples, n=100)[98]
    print(f"parse + full verdict: median {median:.2f} µs/call, p99 of batch means {p99:.2f} µs")
    print(f"  {1e6 / median:,.0f} calls/s; target < {TARGET_US:.0f} µs: ratio {median / TARGET_US:.2f} of the target")
