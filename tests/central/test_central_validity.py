"""``GET /api/v1/passes/{number}/validity``: the aptic rules over the database state."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from central_fixtures import SECRET, scan

from aptic.passnumber import build, hmac_authenticator, parse
from central.services import admin


def forged(number: str) -> str:
    """The same pass with a wrong authenticator (and correct check digits)."""
    p = parse(number)
    real = hmac_authenticator(SECRET)
    return build(p.millesime, p.serial, p.position, lambda first12: (real(first12) + 1) % 10_000)


def test_valid_pass_with_its_details(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 10, territories=["33"], territory_label="Gironde")
    v = device.validity(passes[0], service=95)
    assert v["valid"] is True and v["reason"] == "ok"
    assert "9,60" in v["message"]
    assert v["pass"] == {
        "number": passes[0],
        "carnet": passes[0][:10],
        "millesime": 2026,
        "value_cents": 1000,
        "commanditaire": "Département de la Gironde",
        "valid_until": "2026-12-31",
    }
    # printed form with spaces is read too
    assert device.validity(parse(passes[1]).printed, service=95)["valid"] is True


def test_wrong_authenticator_is_indistinguishable_from_never_issued(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 5)
    never = build(2026, 9_999_999, 1, hmac_authenticator(SECRET))
    beyond_size = build(2026, parse(passes[0]).serial, 7, hmac_authenticator(SECRET))
    answers = [device.validity(n) for n in (forged(passes[0]), never, beyond_size)]
    assert all(a["reason"] == "unknown_pass" and a["valid"] is False and a["pass"] is None for a in answers)
    assert len({a["message"] for a in answers}) == 1


def test_refusals_in_rule_order(central):
    org, _ = central.organisation()
    device = central.device(org)
    unpaid = central.carnets(1, 5, activated=False)
    elsewhere = central.carnets(1, 5, territories=["75"], territory_label="Paris")
    restricted = central.carnets(1, 5, services="84-95")
    blocked = central.carnets(1, 5)
    admin.block_carnet(central.engine, blocked[0][:10], central.clock())
    assert device.validity(unpaid[0])["reason"] == "not_activated"
    assert device.validity(elsewhere[0])["reason"] == "territory"
    assert device.validity(restricted[0], service=1)["reason"] == "service_not_covered"
    assert device.validity(restricted[0], service=90)["reason"] == "ok"
    assert device.validity(blocked[3])["reason"] == "blocked"
    assert device.validity("1234")["reason"] == "malformed"


def test_used_pass_and_same_carnet(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 10)
    [result] = device.push([scan(passes[0], device.points[0], central.clock(), service=3)])
    assert result["status"] == "accepted"
    used = device.validity(passes[0], service=3)
    assert used["reason"] == "already_used" and "10/03/2026" in used["message"]
    assert device.validity(passes[1], service=3)["reason"] == "same_carnet"
    assert device.validity(passes[1], service=4)["reason"] == "ok"


def test_tolerance_month_and_expiry(central):
    org, _ = central.organisation()
    device = central.device(org)
    passes = central.carnets(1, 5)
    central.clock.set(datetime(2027, 1, 15, 12, tzinfo=UTC))
    v = device.validity(passes[0])
    assert v["reason"] == "ok" and v["warnings"]
    central.clock.set(datetime(2027, 2, 1, 12, tzinfo=UTC))
    assert device.validity(passes[0])["reason"] == "expired"


def test_bad_parameters(central):
    org, _ = central.organisation()
    _, other_points = central.organisation("Ailleurs")
    device = central.device(org)
    passes = central.carnets(1, 5)
    r = device.get(f"/api/v1/passes/{passes[0]}/validity")
    assert r.status_code == 400 and "service" in r.json()["fields"]
    r = device.get(f"/api/v1/passes/{passes[0]}/validity", params={"service": "x"})
    assert r.status_code == 400
    r = device.get(f"/api/v1/passes/{passes[0]}/validity", params={"service": 1, "point": other_points[0]})
    assert r.status_code == 404 and r.json()["error"] == "unknown_point"
    r = device.get(f"/api/v1/passes/{'1' * 80}/validity", params={"service": 1})
    assert r.status_code == 400


def test_the_point_asked_for_else_the_organisations_first(central):
    org, points = central.organisation(points=2)
    device = central.device(org)
    designated = central.carnets(1, 5, points=[points[1]])
    r = device.get(f"/api/v1/passes/{designated[0]}/validity", params={"service": 1})
    assert r.status_code == 200 and r.json()["reason"] == "place_not_designated"  # judged at the first point
    assert device.validity(designated[0], point=points[1])["reason"] == "ok"
    # Text that is no pass number at all still gets a verdict naming the fault, at a known point only.
    assert device.validity("garbage!", point=points[1])["reason"] == "malformed"
    r = device.get("/api/v1/passes/garbage!/validity", params={"service": 1, "point": 999_999})
    assert r.status_code == 404 and r.json()["error"] == "unknown_point"


def test_each_request_is_logged_for_the_operator_without_the_pass_number(central, caplog):
    caplog.set_level(logging.INFO, logger="central.access")
    org, _ = central.organisation()
    device = central.device(org)
    number = central.carnets(1, 5)[0]
    assert device.validity(number)["valid"] is True
    assert device.get("/api/v1/snapshot").status_code == 200
    r = device.get(f"/api/v1/passes/{number}/validity", params={"service": "x"})
    assert r.status_code == 400
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "central.access"]
    assert "GET /api/v1/passes/<path:number>/validity 200" in lines[-3]
    assert lines[-3].endswith(f"device={device.id}") and " ms " in lines[-3]
    assert lines[-2].startswith("GET /api/v1/snapshot 200") and lines[-2].endswith(f"device={device.id}")
    assert lines[-1].startswith("GET /api/v1/passes/<path:number>/validity 400")
    assert not any(number in line for line in lines)
