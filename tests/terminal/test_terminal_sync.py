"""Terminals against the real central on loopback: activation, sync, faults, conflicts, revocation."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from central_server import Central, FaultProxy, free_port
from terminal_fixtures import run_and_kill

from aptic.reasons import Reason
from provisioning.activation import ActivationError, activate
from terminal.clock import Clock
from terminal.events import Event
from terminal.store import Store
from terminal.sync import AlreadyRunning, Backoff, CentralClient, SyncWorker, Unavailable, parse_retry_after
from terminal.terminal import CancelRefused, Terminal

HERE = Path(__file__).parent
SIRETS = itertools.count(10_000_000_000_000)
Carnets = Callable[[], list[str]]


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    server = Central(tmp_path_factory.mktemp("central")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def carnets(central: Central) -> Callable[[], list[str]]:
    """Each call hands out the 5 passes of a carnet no other test uses."""
    passes = central.issue(60, "--territory", "33")
    chunks = iter([passes[i : i + 5] for i in range(0, len(passes), 5)])
    return lambda: next(chunks)


@pytest.fixture
def proxy(central: Central) -> Iterator[FaultProxy]:
    p = FaultProxy(central.url)
    yield p
    p.close()


@dataclass
class Site:
    central: Central
    organisation: int
    point: int
    directory: Path

    def month(self) -> str:
        return datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y-%m")

    def paid_passes(self) -> int:
        statement = self.central.cli(
            "statement", "--organisation", str(self.organisation), "--month", self.month(), "--json"
        )
        return statement["passes"]

    def terminal(
        self,
        name: str,
        *,
        url: str | None = None,
        synced_clock: bool = True,
        timeout: tuple[float, float] = (0.5, 1.0),
        batch_size: int = 500,
    ) -> tuple[Terminal, SyncWorker]:
        """A terminal activated with a new kit of this site's organisation, and its (not started) worker."""
        url = url or self.central.url
        kit, code = self.central.add_kit(self.organisation)
        marker = self.directory / f"{name}-synchronized"
        if synced_clock:
            marker.touch()
        terminal = Terminal(Store(self.directory / name), clock=Clock(sync_marker=marker))
        activate(terminal, url, kit, code)
        client = CentralClient(url, token=terminal.store.token, timeout=timeout)
        worker = SyncWorker(terminal, client, batch_size=batch_size, backoff=Backoff(base=0.01, cap=0.05))
        return terminal, worker


@pytest.fixture
def site(central: Central, tmp_path: Path) -> Site:
    organisation = central.add_organisation("Médiathèque de Bègles", str(next(SIRETS)))
    point = central.add_point(organisation, "Bus numérique")
    return Site(central, organisation, point, tmp_path)


def record(terminal: Terminal, *passes: str, service: int = 12) -> list[str]:
    terminal.start_entry(service)
    for number in passes:
        assert terminal.handle_code(number).added, number
    return list(terminal.submit().scan_ids)


def statuses(terminal: Terminal) -> dict[str, str]:
    return {row["id"]: row["status"] for row in terminal.store.iter_history()}


def test_activation_saves_a_private_token_and_the_offline_data(site: Site, carnets: Carnets) -> None:
    terminal, _ = site.terminal("t")
    store = terminal.store
    assert stat.S_IMODE((store.directory / "token").stat().st_mode) == 0o600
    assert store.state()["status"] == "activated" and store.state()["device_id"]
    assert terminal.place is not None and terminal.place.point_id == site.point
    result = terminal.handle_code(carnets()[0])
    assert result.valid and result.provisional and "Gironde" in result.message


def test_a_wrong_activation_code_is_refused_in_french(site: Site, tmp_path: Path) -> None:
    kit, _ = site.central.add_kit(site.organisation)
    terminal = Terminal(Store(tmp_path / "wrong"))
    with pytest.raises(ActivationError) as refused:
        activate(terminal, site.central.url, kit, "XXXX-XXXX")
    assert refused.value.message_fr == "Code d'activation incorrect."
    assert terminal.store.token() is None
    with pytest.raises(ActivationError) as unreachable:
        activate(terminal, f"http://127.0.0.1:{free_port()}", kit, "XXXX-XXXX")
    assert "Le central ne répond pas" in unreachable.value.message_fr


def test_scans_reach_the_central_once_and_results_are_filed(site: Site, carnets: Carnets) -> None:
    terminal, worker = site.terminal("t")
    first, second = carnets()[:1], carnets()[:1]
    ids = record(terminal, *first, *second)
    report = worker.sync_once()
    assert report.pushed == 2 and terminal.store.pending_count() == 0
    assert statuses(terminal) == dict.fromkeys(ids, "accepted")
    assert worker.sync_once().pushed == 0
    assert site.paid_passes() == 2


def test_the_snapshot_is_pulled_by_cursor_after_the_upload(site: Site, carnets: Carnets, proxy: FaultProxy) -> None:
    terminal, worker = site.terminal("t", url=proxy.url)
    first_cursor = terminal.snapshot.cursor
    blocked, used = carnets()[0], carnets()[0]
    record(terminal, used)
    site.central.cli("block-carnet", blocked[:10])
    new_order = site.central.issue(1, "--territory", "33")[0]  # issued after this terminal's last pull
    assert terminal.handle_code(new_order).reason is Reason.UNKNOWN_PASS
    proxy.requests.clear()
    worker.sync_once()
    assert [path for _, path in proxy.requests] == ["/api/v1/scans", "/api/v1/snapshot"]  # upload, then download
    assert proxy.queries[-1] == f"/api/v1/snapshot?since={first_cursor}"
    assert terminal.snapshot.cursor != first_cursor
    assert terminal.store.snapshot()["full"] is True  # what is saved is whole: the delta was merged in
    assert terminal.handle_code(blocked).reason is Reason.BLOCKED
    assert terminal.handle_code(new_order).valid
    assert terminal.handle_code(used).reason is Reason.ALREADY_USED


def test_network_faults_lose_nothing_and_count_nothing_twice(site: Site, carnets: Carnets, proxy: FaultProxy) -> None:
    terminal, worker = site.terminal("t", url=proxy.url, batch_size=2)
    ids = [i for _ in range(5) for i in record(terminal, carnets()[0])]

    down = SyncWorker(terminal, CentralClient(f"http://127.0.0.1:{free_port()}", token=terminal.store.token))
    with pytest.raises(Unavailable):
        down.sync_once()  # central down
    for fault in ("slow:2.5", "reset", "500_after_commit"):
        proxy.inject("/api/v1/scans", fault)
        with pytest.raises(Unavailable):
            worker.sync_once()
        assert terminal.store.pending_count() == 5, fault
    report = worker.sync_once()
    assert report.pushed == 5 and terminal.store.pending_count() == 0
    assert statuses(terminal) == dict.fromkeys(ids, "accepted")
    assert site.paid_passes() == 5
    assert sum(1 for method, path in proxy.requests if path == "/api/v1/scans") == 6


def test_cancel_stays_possible_while_the_central_is_unreachable_not_once_a_request_left(
    site: Site, carnets: Carnets, proxy: FaultProxy
) -> None:
    terminal, worker = site.terminal("t", url=proxy.url)
    down = SyncWorker(terminal, CentralClient(f"http://127.0.0.1:{free_port()}", token=terminal.store.token))
    first = terminal.start_entry(12).id
    terminal.handle_code(carnets()[0])
    terminal.submit()
    with pytest.raises(Unavailable):
        down.sync_once()  # connection refused: nothing left the terminal
    assert [r["status"] for r in terminal.cancel_entry(first)] == ["cancelled"]

    second = terminal.start_entry(12).id
    number = carnets()[0]
    terminal.handle_code(number)
    terminal.submit()
    proxy.inject("/api/v1/scans", "500_after_commit")
    with pytest.raises(Unavailable):
        worker.sync_once()  # the central counted it, the answer was lost
    with pytest.raises(CancelRefused):
        terminal.cancel_entry(second)
    worker.sync_once()
    assert [r["status"] for r in terminal.store.iter_history()] == ["cancelled", "accepted"]
    assert site.paid_passes() == 1


def test_one_pass_accepted_offline_on_two_terminals_is_paid_once(site: Site, carnets: Carnets) -> None:
    number = carnets()[0]
    first, first_worker = site.terminal("a")
    second, second_worker = site.terminal("b")
    late: list[Event] = []
    second.bus.subscribe(lambda e: late.append(e) if e.kind == "late_rejection" else None)
    [a] = record(first, number)
    [b] = record(second, number)  # both offline: both say valid, provisionally
    first_worker.sync_once()
    second_worker.sync_once()
    assert statuses(first) == {a: "accepted"}
    assert statuses(second) == {b: "rejected"}
    assert [e.data["scan"]["reason"] for e in late] == ["already_used"]
    assert [r["pass_number"] for r in second.late_rejections()] == [number]
    assert site.paid_passes() == 1
    # After the snapshot pull, the second terminal knows the pass is used.
    assert second.handle_code(number).reason is Reason.ALREADY_USED


def test_two_passes_of_one_carnet_for_one_service_on_two_terminals(site: Site, carnets: Carnets) -> None:
    p1, p2, *_ = carnets()
    first, first_worker = site.terminal("a")
    second, second_worker = site.terminal("b")
    record(first, p1)
    record(second, p2)
    first_worker.sync_once()
    second_worker.sync_once()
    [rejected] = second.late_rejections()
    assert rejected["pass_number"] == p2 and rejected["reason"] == "same_carnet"
    assert site.paid_passes() == 1


def test_a_revoked_token_keeps_every_scan_until_reactivation(site: Site, carnets: Carnets) -> None:
    terminal, worker = site.terminal("t")
    events: list[Event] = []
    terminal.bus.subscribe(events.append)
    ids = record(terminal, carnets()[0])
    site.central.cli("revoke-device", str(terminal.store.state()["device_id"]))
    worker.run_round()
    assert terminal.store.state()["status"] == "reactivation_required"
    assert terminal.status()["activation"] == "reactivation_required"
    assert next(e for e in events if e.kind == "activation").data["status"] == "reactivation_required"
    ids += record(terminal, carnets()[0])  # still recording, offline
    worker.run_round()
    assert terminal.store.pending_count() == 2
    kit, code = site.central.add_kit(site.organisation)
    activate(terminal, site.central.url, kit, code)
    worker.run_round()
    assert terminal.store.state()["status"] == "activated"
    assert statuses(terminal) == dict.fromkeys(ids, "accepted")


def test_scans_with_an_unsynced_clock_are_kept_and_flagged(site: Site, carnets: Carnets) -> None:
    terminal, worker = site.terminal("t", synced_clock=False)
    [scan_id] = record(terminal, carnets()[0])
    assert terminal.store.pending()[0]["clock_synced"] is False
    worker.sync_once()
    row = terminal.store.find_history(scan_id)
    assert row["status"] == "flagged"
    assert site.paid_passes() == 1


def test_batches_hold_at_most_500_scans(site: Site, carnets: Carnets, proxy: FaultProxy) -> None:
    terminal, worker = site.terminal("t", url=proxy.url)
    number = carnets()[0]
    ids = record(terminal, number)
    # 1,000 more scans of the same pass, as a terminal could hold after a long week (written directly).
    template = terminal.store.pending()[0]
    terminal.store.record(
        [
            {**template, "id": f"00000000-0000-4000-8000-{n:012d}", "seq": terminal.store.next_seq()}
            for n in range(1_000)
        ]
    )
    report = worker.sync_once()
    assert report.pushed == 1_001 and report.rejected == 1_000
    assert [path for _, path in proxy.requests].count("/api/v1/scans") == 3
    assert terminal.store.find_history(ids[0])["status"] == "accepted"
    assert site.paid_passes() == 1


def test_a_scan_the_central_cannot_read_is_filed_as_rejected_not_retried(site: Site, carnets: Carnets) -> None:
    terminal, worker = site.terminal("t")
    good = record(terminal, carnets()[0])
    bad = {
        **terminal.store.pending()[0],
        "id": "00000000-0000-4000-8000-00000000bad0",
        "service": 0,
        "seq": terminal.store.next_seq(),
    }
    terminal.store.record([bad])
    worker.sync_once()
    assert terminal.store.pending_count() == 0
    assert terminal.store.find_history(bad["id"])["status"] == "rejected"
    assert terminal.store.find_history(bad["id"])["reason"] == "invalid_request"
    assert terminal.store.find_history(good[0])["status"] == "accepted"


def test_retry_after_is_honoured_and_backoff_grows_to_its_cap(site: Site, proxy: FaultProxy, carnets: Carnets) -> None:
    terminal, worker = site.terminal("t", url=proxy.url)
    worker.backoff = Backoff(base=1.0, cap=300.0, rng=lambda: 1.0)
    record(terminal, carnets()[0])
    proxy.inject("/api/v1/scans", "429:42")
    assert worker.run_round() == 42.0
    assert not worker.online and "429" in worker.status()["last_error"]
    assert worker.run_round() == worker.interval and worker.online
    assert worker.backoff.failures == 0


def test_backoff_doubles_with_jitter_up_to_five_minutes() -> None:
    backoff = Backoff(base=1.0, cap=300.0, rng=lambda: 1.0)
    assert [backoff.failure() for _ in range(11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    low = Backoff(base=1.0, cap=300.0, rng=lambda: 0.0)
    assert [low.failure() for _ in range(3)] == [0.5, 1, 2]
    assert low.failure(retry_after=120) == 120
    assert parse_retry_after("7") == 7.0 and parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_the_worker_thread_syncs_after_a_submit_and_stops_cleanly(site: Site, carnets: Carnets) -> None:
    terminal, worker = site.terminal("t")
    worker.interval = 60.0
    worker.start()
    try:
        other = SyncWorker(terminal, worker.client)
        with pytest.raises(AlreadyRunning):
            other.start()
        deadline = time.monotonic() + 10
        while not worker.online and time.monotonic() < deadline:
            time.sleep(0.05)
        [scan_id] = record(terminal, carnets()[0])  # wakes the worker: no 60 s wait
        while terminal.store.pending_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert terminal.store.find_history(scan_id)["status"] == "accepted"
    finally:
        started = time.monotonic()
        worker.stop()
        assert time.monotonic() - started < 5
    assert not any(t.name == "aptic-sync" for t in threading.enumerate())


def test_online_the_central_gives_the_verdict_and_slow_falls_back_offline(
    site: Site, proxy: FaultProxy, carnets: Carnets, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="terminal.sync")
    terminal, worker = site.terminal("t", url=proxy.url)
    terminal.online_check = worker.check_validity
    number = carnets()[0]
    assert terminal.handle_code(number).provisional  # never synced yet: offline, no waiting
    worker.run_round()
    assert worker.online
    online = terminal.handle_code(number)
    assert online.valid and not online.provisional and online.pass_info["commanditaire"] == "Gironde"
    proxy.inject("/api/v1/passes", "slow:3")
    started = time.monotonic()
    slow = terminal.handle_code(number)
    assert slow.valid and slow.provisional
    assert time.monotonic() - started < 2.0
    # The log says what failed without the digits that make the pass pay (a log is no place for a voucher).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "terminal.sync")
    assert "Online check of 1 26" in logged and "**** **" in logged
    assert number not in logged and number[12:] not in logged
    assert ("POST", "/api/v1/heartbeat") in proxy.requests


def test_power_cuts_while_syncing_every_acknowledged_scan_reaches_the_central_once(
    site: Site, central: Central, tmp_path: Path
) -> None:
    """kill -9 at random moments, 50 times or more over 300 scans or more, the sync worker running."""
    passes = central.issue(2000, "--territory", "33")[::5]  # one pass per carnet: no same-carnet refusal
    passes_file = tmp_path / "passes.json"
    passes_file.write_text(json.dumps(passes))
    terminal, _ = site.terminal("bus")
    (tmp_path / "synchronized").touch()
    data_dir = terminal.store.directory
    terminal.store.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent.parent)])}
    rng = random.Random(5)
    acknowledged: list[str] = []
    kills = 0
    while kills < 50 or len(acknowledged) < 300:
        command = [sys.executable, str(HERE / "crash_sync_child.py"), str(data_dir), str(passes_file)]
        lines = run_and_kill(command, env=env, after=rng.uniform(0, 0.08), log=tmp_path / "child.log")
        assert "exhausted" not in lines
        acknowledged += lines
        kills += 1
        for path in data_dir.iterdir():
            assert ".corrupt-" not in path.name, path.name

    store = Store(data_dir)
    worker = SyncWorker(Terminal(store), CentralClient(central.url, token=store.token))
    worker.sync_once()
    assert store.pending_count() == 0
    rows = list(store.iter_history())
    by_id = Counter(r["id"] for r in rows)
    assert all(by_id[scan_id] == 1 for scan_id in acknowledged), "an acknowledged scan is missing or twice"
    assert {r["status"] for r in rows} == {"accepted"}
    # At the central: as many paid passes as scans recorded, none twice (each scan used its own pass).
    assert site.paid_passes() == len(rows) >= len(acknowledged) >= 300
