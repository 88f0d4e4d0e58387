"""Bench of printed carnets (issue 14): ``aptic-central print-carnets`` for a big order.

Set-up on a temporary SQLite database: an organisation with 40 points de présence in the Gironde, and orders
of 100 and 1,000 carnets of 10 passes (``services.admin.issue_carnets``). Each order is printed in a fresh
process (the service as the command line calls it: ``carnet_print.letter`` then ``carnet_print.write``) that
reports its time and how much its peak resident memory grew while printing (``VmHWM`` after the imports and
the letter's query, then at the end; not ``ru_maxrss``, which a child inherits from its parent's size at the
fork).

* Print time of 1,000 carnets (10,000 passes, 1,002 pages). Target: < 30 s.
* Memory: the growth for 1,000 carnets against 100. The order is drawn in parts of 100 carnets, each its own
  PDF file, and ``central.pdf_join`` copies each part's pages to the output as soon as it is drawn: memory
  holds one part (reportlab keeps its pages, about 25 kB each, until it saves the part: 2.5 MB) and, for the
  whole document, 8 bytes per object written. Target: < 8 MB for 1,000 carnets (measured: about 4.5 MB, of
  which about 4 MB already for 100 carnets: one part, and qpdf's and reportlab's first use).
  (Drawn as one reportlab document, the growth was 25 MB per 1,000 carnets; joined by qpdf's own merge,
  13 MB.)

Environment: ``BENCH_CARNETS`` (default 1,000).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from central.db import make_engine, migrate
from central.services import admin

SECRET = b"bench-carnet-print-secret"
SECONDS = 30.0
GROWTH_MB = 8.0


def _peak_kb() -> int:
    """This process's peak resident memory (kB) since it started."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _child(db_url: str, order_id: int, output: str) -> None:
    """Print one order and say on stdout: seconds, base and peak memory (kB), pages, bytes."""
    from aptic.passnumber import hmac_authenticator
    from central.services import carnet_print

    engine = make_engine(db_url)
    started = time.perf_counter()
    info = carnet_print.letter(engine, order_id, date(2026, 3, 10))
    base = _peak_kb()
    with open(output, "wb") as out:
        result = carnet_print.write(engine, hmac_authenticator(SECRET), info, out)
    seconds = time.perf_counter() - started
    peak = _peak_kb()
    print(seconds, base, peak, result["pages"], os.path.getsize(output))


def _print(db_url: str, order_id: int, output: Path) -> tuple[float, float, int, int]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.carnet_print", "--child", db_url, str(order_id), str(output)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    seconds, base, peak, pages, size = done.stdout.split()
    return float(seconds), (int(peak) - int(base)) / 1024, int(pages), int(size)


def main() -> None:
    big = int(os.environ.get("BENCH_CARNETS", 1000))
    now = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder:
        db_url = f"sqlite:///{Path(folder) / 'central.db'}"
        engine = make_engine(db_url)
        migrate(engine)
        organisation = admin.add_organisation(engine, "Médiathèque de Cenon", "12345678901234", now)
        for i in range(40):
            admin.add_point(engine, organisation, f"Point {i:02d}", "33119", ["BIB"], now, address=f"{i} rue Neuve",
                            postcode="33150", commune="Cenon", opening_hours="Mo-Fr 09:00-12:00")  # fmt: skip
        growth: dict[int, float] = {}
        for carnets in (big // 10, big):
            order = admin.issue_carnets(engine, SECRET, now, commanditaire="Département de la Gironde",
                                        millesime=2026, carnets=carnets, size=10, territories=["33"],
                                        with_passes=False)["order"]  # fmt: skip
            seconds, grew, pages, size = _print(db_url, order, Path(folder) / f"order-{carnets}.pdf")
            growth[carnets] = grew
            print(f"{carnets:>6} carnets of 10: {seconds:6.1f} s, {pages} pages, {size / 1e6:.1f} MB of PDF, "
                  f"peak memory +{grew:.1f} MB while printing", flush=True)  # fmt: skip
        engine.dispose()
    verdict = "ok" if seconds < SECONDS else "SLOW"
    print(f"print time of {big} carnets: {seconds:.1f} s (target < {SECONDS:.0f} s) {verdict}")
    print(f"print time ratio to target: {seconds / SECONDS:.2f}")
    verdict = "ok" if growth[big] < GROWTH_MB else "TOO MUCH"
    print(f"memory growth {big // 10} -> {big} carnets: +{growth[big // 10]:.1f} MB -> +{growth[big]:.1f} MB "
          f"(target < {GROWTH_MB:.0f} MB) {verdict}")  # fmt: skip
    print(f"memory growth ratio to target: {growth[big] / GROWTH_MB:.2f}; the {big - big // 10} more carnets cost "
          f"{growth[big] - growth[big // 10]:+.1f} MB")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
