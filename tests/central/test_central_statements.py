"""Statements: totals, lines per service and per funder, closing a month, late scans carried over."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from central_fixtures import scan

from central.services import statements
from central.services.common import ServiceError


def test_statement_totals_and_lines(central):
    org, _ = central.organisation()
    device = central.device(org)
    gironde = central.carnets(2, 10)
    town = central.carnets(1, 5, commanditaire="Ville de Bordeaux")
    now = central.clock()
    results = device.push(
        [
            scan(gironde[0], device.points[0], now, service=1),
            scan(gironde[10], device.points[0], now, service=1),
            scan(town[0], device.points[0], now, service=2),
            scan(town[1], device.points[0], now, service=2),  # same carnet, same service: rejected
        ]
    )
    assert [r["status"] for r in results] == ["accepted", "accepted", "accepted", "rejected"]
    r = device.get("/api/v1/statements", params={"month": "2026-03"})
    assert r.status_code == 200
    doc = r.json()
    assert (doc["month"], doc["status"], doc["passes"]) == ("2026-03", "open", 3)
    assert (doc["gross_cents"], doc["fee_cents"], doc["net_cents"]) == (3000, 120, 2880)
    assert [(x["service"], x["commanditaire"], x["passes"], x["net_cents"]) for x in doc["lines"]] == [
        (1, "Département de la Gironde", 2, 1920),
        (2, "Ville de Bordeaux", 1, 960),
    ]
    assert [(x["service"], x["passes"]) for x in doc["by_service"]] == [(1, 2), (2, 1)]
    assert [(x["commanditaire"], x["gross_cents"]) for x in doc["by_commanditaire"]] == [
        ("Département de la Gironde", 2000),
        ("Ville de Bordeaux", 1000),
    ]
    assert doc["carried_over"] == [] and doc["notes"] == []
    # default month: the current one
    assert device.get("/api/v1/statements").json()["month"] == "2026-03"
    assert device.get("/api/v1/statements", params={"month": "2026-13"}).status_code == 400


def test_closed_month_is_frozen_and_late_scans_go_to_the_next_open_month(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(3, 10)
    march = central.clock()
    device.push([scan(passes[0], device.points[0], march, service=1)])

    central.clock.set(datetime(2026, 4, 3, 9, tzinfo=UTC))
    closed = statements.close_month(central.engine, "2026-03", central.clock())
    assert closed["statements"] == [{"organisation": org, "passes": 1, "net_cents": 960}]
    with pytest.raises(ServiceError):
        statements.close_month(central.engine, "2026-03", central.clock())  # already closed
    with pytest.raises(ServiceError):
        statements.close_month(central.engine, "2026-05", central.clock())  # not begun

    # a scan made offline in March arrives in April
    [late] = device.push([scan(passes[10], device.points[0], march, service=2)])
    assert late["status"] == "accepted" and late["payment_month"] == "2026-04"
    frozen = device.get("/api/v1/statements", params={"month": "2026-03"}).json()
    assert frozen["status"] == "closed" and frozen["passes"] == 1 and frozen["closed_at"]
    april = device.get("/api/v1/statements", params={"month": "2026-04"}).json()
    assert april["status"] == "open" and april["passes"] == 1
    assert april["carried_over"] == [
        {"from_month": "2026-03", "passes": 1, "gross_cents": 1000, "fee_cents": 40, "net_cents": 960}
    ]
    assert "mars 2026" in april["notes"][0] and "déjà clos" in april["notes"][0]

    # with April closed too, a March scan skips to May
    statements.close_month(central.engine, "2026-04", central.clock())
    [later] = device.push([scan(passes[20], device.points[0], march, service=3)])
    assert later["payment_month"] == "2026-05"
