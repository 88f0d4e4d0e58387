"""Bench of the offline snapshot (issue 10): a national snapshot, pulled whole and by cursor.

The central sends every order of the country (carnet ranges and restrictions) so that a terminal offline
gives the same reason as the central. Set-up on SQLite: 5,000 orders of three millésimes holding 200,000
carnets, from about 400 funders (départements, communes, national bodies; restricted by territory, kind of
place, designated points or services, as real funders do), 1,000 blocked carnets, 2,000 used passes here.

* Size of the full answer: its JSON as the terminal gets it, and gzipped (what the wire carries when the
  central compresses). Targets: < 4 MB raw, < 500 kB on the wire.
* Full pull over HTTP from ``aptic-central serve``: median of 3. Target: < 2 s.
* The terminal's ``from_json`` (JSON parsed to domain objects), at start and after each pull: median of
  5. Target: < 300 ms. And ``Terminal.load_snapshot`` on a real store (what a pull costs the terminal: the
  durable write, the read back, the parsing): median of 3. Target: < 1 s.
* Incremental pull (``?since=``) after one new order: its size and median time of 5. Targets: exactly that
  order, < 10 kB, < 50 ms.

Environment: ``BENCH_SNAPSHOT_ORDERS`` (default 5,000), ``BENCH_SNAPSHOT_CARNETS`` (default 200,000).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine

from aptic.passnumber import build, carnet_id, hmac_authenticator
from bench.central import SECRET, _open, _serve
from central.services import admin, ingest
from terminal.snapshot import from_json, merge
from terminal.store import Store
from terminal.terminal import Terminal

FULL_BYTES = 4_000_000
WIRE_BYTES = 500_000
FULL_SECONDS = 2.0
FROM_JSON_SECONDS = 0.3
LOAD_SECONDS = 1.0
DELTA_BYTES = 10_000
DELTA_SECONDS = 0.05


def _n(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _funders(rng: random.Random, points: list[int]) -> list[dict[str, Any]]:
    """About 400 funders, each with the restrictions it puts on all its orders."""
    departements = [f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B", "971", "972", "973", "974"]
    kinds = ["EPN", "BIB", "CCAS", "CS", "MUNI", "ASSO", "TIERS_LIEUX", "RFS", "MDS", "ITINERANT"]
    funders: list[dict[str, Any]] = []
    for d in departements:
        funders.append({"commanditaire": f"Département {d}", "territories": [d], "territory_label": f"Dépt {d}"})
        funders.append(
            {"commanditaire": f"CAF {d}", "territories": [d], "place_types": rng.sample(kinds, 3), "services": "2.2"}
        )
        commune = f"{d}{rng.randrange(1, 700):03d}" if len(d) == 2 else f"{d}{rng.randrange(1, 99):02d}"
        funders.append({"commanditaire": f"Ville {commune}", "territories": [commune]})
    for i in range(90):
        funders.append(
            {"commanditaire": f"Intercommunalité {i}", "territories": [rng.choice(departements)],
             "points": rng.sample(points, 2)}
        )  # fmt: skip
    for i in range(6):
        funders.append({"commanditaire": f"Opérateur national {i}", "services": rng.choice(["", "1-40", "84-95,1.2"])})
    return funders


def populate(engine: Engine, now: datetime, orders: int, carnets: int, here: int) -> None:
    """The national data set: ``orders`` orders holding ``carnets`` carnets, some blocked, some passes used
    at organisation ``here`` (its first point is the bench's)."""
    rng = random.Random(10)
    points = [admin.add_point(engine, here, f"Point {i}", "33063", ["EPN"], now) for i in range(20)]
    funders = _funders(rng, points)
    year = now.year
    sizes = [carnets // orders + (1 if i < carnets % orders else 0) for i in range(orders)]
    issued: list[tuple[int, int, int, bool]] = []  # millésime, first serial, count, can apply here
    for i, count in enumerate(sizes):
        funder = funders[i % len(funders)]
        millesime = year - (i % 3)
        order = admin.issue_carnets(
            engine, SECRET, now, commanditaire=funder["commanditaire"], millesime=millesime, carnets=count,
            size=10, territories=funder.get("territories", ()), territory_label=funder.get("territory_label"),
            services=funder.get("services", ""), place_types=funder.get("place_types", ()),
            points=funder.get("points", ()), activated=rng.random() > 0.05, with_passes=False,
        )  # fmt: skip
        here_too = not funder.get("place_types") and not funder.get("points")
        here_too = here_too and funder.get("territories", ["33"])[0] in ("33", "33063")
        issued.append((millesime, int(order["carnets"][0][3:]), count, here_too))
    for millesime, first, count, _ in rng.sample(issued, 1000):
        admin.block_carnet(engine, carnet_id(millesime, first + rng.randrange(count)), now)
    # Passes used here: of this millésime's orders that can apply at the bench's point.
    org, point, device, _ = here_ids(engine)
    auth = hmac_authenticator(SECRET)
    usable = [(m, first, count) for m, first, count, ok in issued if ok and m == year]
    numbers = [
        (build(m, serial, position, auth), position)
        for m, first, count in usable
        for serial in range(first, first + count)
        for position in range(1, 11)
    ][:2000]
    scans = [ingest.ScanIn(str(uuid.uuid4()), n, p, point, now, True, i) for i, (n, p) in enumerate(numbers)]
    for i in range(0, len(scans), 500):
        ingest.ingest(engine, auth, device, org, scans[i : i + 500], now)


_HERE: dict[int, tuple[int, int, int, str]] = {}


def here_ids(engine: Engine) -> tuple[int, int, int, str]:
    return _HERE[id(engine)]


def _timed(call: Any, times: int) -> tuple[float, Any]:
    results, delays = None, []
    for _ in range(times):
        started = time.perf_counter()
        results = call()
        delays.append(time.perf_counter() - started)
    return statistics.median(delays), results


def _figure(label: str, value: str, target: str, ok: bool) -> str:
    return f"{label}: {value} (target {target}) [{'ok' if ok else 'MISSED'}]"


def main() -> None:
    orders = _n("BENCH_SNAPSHOT_ORDERS", 5_000)
    carnets = _n("BENCH_SNAPSHOT_CARNETS", 200_000)
    with tempfile.TemporaryDirectory(prefix="aptic-bench-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'snapshot.db'}"
        now = datetime.now(UTC)
        engine, ids = _open(url, now)
        _HERE[id(engine)] = ids
        started = time.perf_counter()
        populate(engine, now, orders, carnets, ids[0])
        print(f"set-up: {orders:,} orders, {carnets:,} carnets in {time.perf_counter() - started:.1f} s", flush=True)
        server, port = _serve(url, root)
        try:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {ids[3]}"
            base = f"http://127.0.0.1:{port}/api/v1/snapshot"
            http.get(base, timeout=60)  # warm-up: the server's first request imports and connects
            full_s, response = _timed(lambda: http.get(base, timeout=60), 3)
            text = response.content
            data = response.json()
            wire = int(response.headers.get("Content-Length") or len(text))
            packed = len(gzip.compress(text, 6))
            parse_s, _ = _timed(lambda: from_json(json.loads(text)), 5)
            terminal = Terminal(Store(root / "terminal"))
            load_s, _ = _timed(lambda: terminal.load_snapshot(data), 3)
            terminal.store.close()

            one = {"commanditaire": "Département 33", "millesime": now.year, "territories": ["33"]}
            admin.issue_carnets(engine, SECRET, datetime.now(UTC), carnets=40, size=10, with_passes=False, **one)
            delta_s, delta = _timed(lambda: http.get(base, params={"since": data["cursor"]}, timeout=60), 5)
            body = delta.json()
            merged_s, merged = _timed(lambda: merge(data, body), 5)
        finally:
            server.terminate()
            server.wait(timeout=10)
        engine.dispose()
    sent, size = len(data["orders"]), len(delta.content)
    one = len(body["orders"]) == 1 and body["full"] is False and len(merged["orders"]) == sent + 1
    print(
        f"full snapshot: {sent:,} orders, {len(data['blocked_carnets']):,} blocked carnets,"
        f" {len(data['used_passes']):,} used passes; {packed / 1e3:.0f} kB once gzipped",
        _figure("  JSON", f"{len(text) / 1e6:.2f} MB", f"< {FULL_BYTES / 1e6:.0f} MB", len(text) < FULL_BYTES),
        _figure("  on the wire", f"{wire / 1e3:.0f} kB", f"< {WIRE_BYTES / 1e3:.0f} kB", wire < WIRE_BYTES),
        _figure("  full pull over HTTP", f"{full_s * 1000:.0f} ms", f"< {FULL_SECONDS:.0f} s", full_s < FULL_SECONDS),
        _figure(
            "  terminal from_json (json.loads included)",
            f"{parse_s * 1000:.0f} ms",
            f"< {FROM_JSON_SECONDS * 1000:.0f} ms",
            parse_s < FROM_JSON_SECONDS,
        ),
        _figure(
            "  terminal load_snapshot (saved to the store, read back, parsed)",
            f"{load_s * 1000:.0f} ms",
            f"< {LOAD_SECONDS:.0f} s",
            load_s < LOAD_SECONDS,
        ),
        _figure(
            "incremental after one new order",
            f"{len(body['orders'])} order, {size:,} bytes",
            f"1 order, < {DELTA_BYTES:,} bytes",
            size < DELTA_BYTES and one,
        ),
        _figure("  pulled in", f"{delta_s * 1000:.1f} ms", f"< {DELTA_SECONDS * 1000:.0f} ms", delta_s < DELTA_SECONDS),
        f"  merged into the saved snapshot in {merged_s * 1000:.1f} ms",
        sep="\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
