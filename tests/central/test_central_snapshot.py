"""``GET /api/v1/snapshot``: the offline data of a terminal, compact and incremental."""

from __future__ import annotations

from central_fixtures import scan

from central.services import admin


def test_full_snapshot(central):
    org, points = central.organisation(insee="33063", typologies=("BIB",))
    device = central.device(org)
    here = central.carnets(100, 10, territories=["33"], territory_label="Gironde", services="1-10")
    elsewhere = central.carnets(5, 10, territories=["75"])
    other_kind = central.carnets(5, 10, place_types=["CCAS"])
    admin.block_carnet(central.engine, here[15][:10], central.clock())
    admin.block_carnet(central.engine, elsewhere[0][:10], central.clock())
    device.push([scan(here[0], points[0], central.clock(), service=2)])

    r = device.get("/api/v1/snapshot")
    assert r.status_code == 200
    snap = r.json()
    assert snap["full"] is True
    assert snap["organisation"]["id"] == org and len(snap["organisation"]["catalogue"]) == 129
    assert [p["id"] for p in snap["points_de_presence"]] == points
    assert len(snap["orders"]) == 1  # the Paris and CCAS orders cannot apply here
    order = snap["orders"][0]
    assert order["carnets"] == [{"first": here[0][:10], "last": here[-1][:10], "size": 10}]  # a range, not 1000 rows
    assert order["restrictions"]["territories"] == ["33"] and order["restrictions"]["services"] == list(range(1, 11))
    assert order["activated"] is True and order["valid_until"] == "2026-12-31"
    assert snap["blocked_carnets"] == [here[15][:10]]
    assert snap["used_passes"] == [
        {
            "pass_number": here[0],
            "service": 2,
            "organisation_id": org,
            "on": "2026-03-10",
            "place_name": "Médiathèque 0",
        }
    ]
    assert elsewhere and other_kind


def test_incremental_snapshot(central):
    org, points = central.organisation()
    device = central.device(org)
    first = central.carnets(2, 10)
    central.clock.advance(minutes=1)  # on PostgreSQL the cursor only covers rows older than a few seconds
    snap = device.get("/api/v1/snapshot").json()
    cursor = snap["cursor"]

    nothing = device.get("/api/v1/snapshot", params={"since": cursor}).json()
    assert nothing["full"] is False
    assert (nothing["orders"], nothing["blocked_carnets"], nothing["used_passes"]) == ([], [], [])

    second = central.carnets(1, 5, activated=False)
    admin.block_carnet(central.engine, first[0][:10], central.clock())
    device.push([scan(first[12], points[0], central.clock(), service=1)])
    central.clock.advance(minutes=1)
    delta = device.get("/api/v1/snapshot", params={"since": cursor}).json()
    assert delta["full"] is False
    assert [o["carnets"][0]["first"] for o in delta["orders"]] == [second[0][:10]]
    assert delta["orders"][0]["activated"] is False
    assert delta["blocked_carnets"] == [first[0][:10]]
    assert [u["pass_number"] for u in delta["used_passes"]] == [first[12]]
    assert delta["cursor"] != cursor

    # a new point for the organisation makes the next answer a full one
    admin.add_point(central.engine, org, "Annexe", "33318", ["EPN"], central.clock())
    again = device.get("/api/v1/snapshot", params={"since": delta["cursor"]}).json()
    assert again["full"] is True and len(again["points_de_presence"]) == 2

    assert device.get("/api/v1/snapshot", params={"since": "garbage"}).status_code == 400
