"""``POST /api/v1/scans``: idempotent, one result per scan, the same-carnet rule, blocking and clocks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from central_fixtures import scan
from sqlalchemy import func, select

from central import schema as t
from central.services import admin


def count(central, table) -> int:
    with central.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_accept_then_replay_returns_first_result_and_changes_nothing(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 10)
    batch = [scan(passes[0], device.points[0], central.clock()), scan(passes[1], device.points[0], central.clock(),
                                                                        service=2)]  # fmt: skip
    first = device.push(batch)
    assert [r["status"] for r in first] == ["accepted", "accepted"]
    assert first[0]["reason"] == "ok" and first[0]["message"].startswith("Pass valable")
    assert first[0]["payment_month"] == "2026-03"
    central.clock.advance(days=3)
    again = device.push(batch)
    assert again == first
    assert count(central, t.scans) == 2 and count(central, t.pass_uses) == 2


def test_an_id_used_again_for_another_pass_keeps_its_first_result_and_is_logged(central, caplog):
    caplog.set_level(logging.WARNING, logger="central.services.ingest")
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(2, 10)
    first = scan(passes[0], device.points[0], central.clock())
    [result] = device.push([first])
    other = {**first, "pass_number": passes[10]}  # a terminal bug: a used id for a new scan
    assert device.push([other]) == [result]
    assert count(central, t.scans) == 1 and count(central, t.pass_uses) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "central.services.ingest"]
    assert len(warnings) == 1 and first["id"] in warnings[0] and "another pass number" in warnings[0]
    assert passes[10] not in warnings[0] and passes[0] not in warnings[0]
    # A true replay, and the same id twice in one batch with the same pass, say nothing.
    caplog.clear()
    fresh = scan(passes[1], device.points[0], central.clock(), service=2)
    assert [r["status"] for r in device.push([fresh, fresh, first])] == ["accepted", "accepted", "accepted"]
    assert not [r for r in caplog.records if r.name == "central.services.ingest"]


def test_one_result_per_scan_in_order(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 10)
    now = central.clock()
    batch = [
        scan(passes[0], device.points[0], now, service=1),
        scan(passes[0], device.points[0], now, service=2),  # the same pass again
        scan(passes[1], device.points[0], now, service=1),  # same carnet, same service, same day
        scan(passes[2], device.points[0], now, service=2),  # same carnet, same service as the 2nd (rejected)
        scan("1 26 0000000 01 0000 00", device.points[0], now),
        scan(passes[3], 999_999, now),
    ]
    results = device.push(batch)
    assert [r["id"] for r in results] == [s["id"] for s in batch]
    assert [r["reason"] for r in results] == [
        "ok", "already_used", "same_carnet", "ok", "malformed", "place_not_qualified",
    ]  # fmt: skip
    assert all(r["message"] for r in results)
    # a duplicated id inside one batch is a replay of its first occurrence
    dup = scan(passes[5], device.points[0], now, service=7)
    assert device.push([dup, dup]) == [device.push([dup])[0]] * 2


def test_same_carnet_rule_across_two_devices_of_one_organisation(central):
    org, _ = central.organisation(points=2)
    d1, d2 = central.device(org, "pi-1"), central.device(org, "pi-2")
    passes = central.carnets(1, 10)
    now = central.clock()
    r1 = d1.push([scan(passes[0], d1.points[0], now, service=5)])
    r2 = d2.push([scan(passes[1], d2.points[1], now + timedelta(hours=1), service=5)])
    assert r1[0]["status"] == "accepted"
    assert r2[0]["status"] == "rejected" and r2[0]["reason"] == "same_carnet"
    # another organisation, or another day, is free to use the carnet for that service
    other, _ = central.organisation("Autre")
    d3 = central.device(other, "pi-3")
    assert d3.push([scan(passes[2], d3.points[0], now, service=5)])[0]["status"] == "accepted"
    central.clock.advance(days=1)
    assert d2.push([scan(passes[3], d2.points[0], central.clock(), service=5)])[0]["status"] == "accepted"


def test_scan_made_offline_before_a_block_is_accepted_and_flagged(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 10)
    offline = central.clock()
    central.clock.advance(hours=2)
    admin.block_carnet(central.engine, passes[0][:10], central.clock())
    central.clock.advance(hours=2)
    before, after = device.push(
        [scan(passes[0], device.points[0], offline), scan(passes[1], device.points[0], central.clock(), service=9)]
    )
    assert before["status"] == "flagged" and before["reason"] == "ok"
    assert before["flags"] == ["withdrawn_after_scan"]
    assert "bloqué après ce scan" in before["message"]
    assert after["status"] == "rejected" and after["reason"] == "blocked"


def test_implausible_times_are_flagged_and_paid_by_receive_month(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 10)
    central.clock.set(datetime(2026, 4, 2, 9, tzinfo=UTC))
    now = central.clock()
    results = device.push(
        [
            scan(passes[0], device.points[0], now + timedelta(days=30), service=1),  # future
            scan(passes[1], device.points[0], datetime(2026, 3, 28, tzinfo=UTC), service=2, synced=False),
            scan(passes[2], device.points[0], datetime(1970, 1, 1, tzinfo=UTC), service=3),  # before the millésime
            scan(passes[3], device.points[0], datetime(2026, 3, 28, tzinfo=UTC), service=4),  # plausible
        ]
    )
    assert [r["status"] for r in results] == ["flagged", "flagged", "flagged", "accepted"]
    assert all(r["flags"] == ["implausible_time"] for r in results[:3])
    assert [r["payment_month"] for r in results] == ["2026-04", "2026-04", "2026-04", "2026-03"]


def test_batch_limits_and_field_errors(central):
    org, _ = central.organisation()
    device = central.device(org)
    now = central.clock()
    too_many = [scan("1", device.points[0], now) for _ in range(501)]
    r = device.post("/api/v1/scans", json={"scans": too_many})
    assert r.status_code == 400 and "scans" in r.json()["fields"]
    bad = scan("1", device.points[0], now)
    bad["service"] = "1"
    bad["scanned_at"] = "2026-03-10T10:00:00"  # no offset
    del bad["clock_synced"]
    r = device.post("/api/v1/scans", json={"scans": [bad]})
    assert r.status_code == 400
    fields = r.json()["fields"]
    assert {"scans.0.service", "scans.0.scanned_at", "scans.0.clock_synced"} <= set(fields)
    r = device.post("/api/v1/scans", data=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "request_entity_too_large"
    assert count(central, t.scans) == 0


def test_absurd_times_are_flagged_not_refused(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 10)
    far = [
        scan(passes[0], device.points[0], datetime(1, 1, 1, tzinfo=UTC), service=1),
        scan(passes[1], device.points[0], datetime(9999, 12, 31, 23, 59, tzinfo=UTC), service=2),
    ]
    far[1]["scanned_at"] = "9999-12-31T23:59:59-14:00"
    results = device.push(far)
    assert [(r["status"], r["flags"]) for r in results] == [("flagged", ["implausible_time"])] * 2
