"""``GET /api/v1/snapshot``: the offline data of a terminal, compact and incremental."""

from __future__ import annotations

from central_fixtures import scan

from central.services import admin


def test_full_snapshot(central):
    org, points = central.organisation(insee="33063", typologies=("BIB",))
    device = central.device(org)
    here = central.carnets(100, 10, territories=["33"], territory_label="Gironde", services="1-10")
    elsewhere = central.carnets(5, 10, commanditaire="Ville de Paris", territories=["75"])
    other_kind = central.carnets(5, 10, place_types=["CCAS"])
    old = central.carnets(2, 5, millesime=2024)
    admin.block_carnet(central.engine, here[15][:10], central.clock())
    admin.block_carnet(central.engine, elsewhere[0][:10], central.clock())
    device.push([scan(here[0], points[0], central.clock(), service=2)])
    paris, paris_points = central.organisation("EPN de Paris", insee="75056", typologies=("EPN",))
    paris_device = central.device(paris, "pi-paris")
    paris_device.push([scan(elsewhere[20], paris_points[0], central.clock())])

    r = device.get("/api/v1/snapshot")
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"  # requests asks for it, and undoes it
    snap = r.json()
    plain = device.get("/api/v1/snapshot", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.json()["orders"] == snap["orders"]
    assert snap["full"] is True
    assert snap["organisation"]["id"] == org and len(snap["organisation"]["catalogue"]) == 129
    assert [p["id"] for p in snap["points_de_presence"]] == points
    # Every order of the country, even those that cannot apply here or are long expired: offline, their
    # passes are refused for that reason, not as never issued.
    by_first = {o["carnets"][0]["first"]: o for o in snap["orders"]}
    assert list(by_first) == [here[0][:10], elsewhere[0][:10], other_kind[0][:10], old[0][:10]]
    order = by_first[here[0][:10]]
    assert order["carnets"] == [{"first": here[0][:10], "last": here[-1][:10], "size": 10}]  # a range, not 1000 rows
    assert order["restrictions"]["territories"] == ["33"] and order["restrictions"]["services"] == list(range(1, 11))
    assert order["activated"] is True and order["valid_until"] == "2026-12-31"
    assert by_first[elsewhere[0][:10]]["restrictions"]["territories"] == ["75"]
    assert by_first[other_kind[0][:10]]["restrictions"]["place_types"] == ["CCAS"]
    assert by_first[old[0][:10]]["millesime"] == 2024 and by_first[old[0][:10]]["carnets"][0]["size"] == 5
    # Blocks come for every order: the central answers "blocked" before it looks at the territory.
    assert snap["blocked_carnets"] == sorted([here[15][:10], elsewhere[0][:10]])
    # Used passes only of orders that can apply here: the Paris use stays out.
    assert snap["used_passes"] == [
        {
            "pass_number": here[0],
            "service": 2,
            "organisation_id": org,
            "on": "2026-03-10",
            "place_name": "Médiathèque 0",
        }
    ]
    assert [u["pass_number"] for u in paris_device.get("/api/v1/snapshot").json()["used_passes"]] == [elsewhere[20]]


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
    far = central.carnets(1, 5, commanditaire="Ville de Paris", territories=["75"])
    admin.block_carnet(central.engine, first[0][:10], central.clock())
    admin.block_carnet(central.engine, far[0][:10], central.clock())
    device.push([scan(first[12], points[0], central.clock(), service=1)])
    central.clock.advance(minutes=1)
    delta = device.get("/api/v1/snapshot", params={"since": cursor}).json()
    assert delta["full"] is False
    assert [o["carnets"][0]["first"] for o in delta["orders"]] == [second[0][:10], far[0][:10]]
    assert delta["orders"][0]["activated"] is False
    assert delta["blocked_carnets"] == sorted([first[0][:10], far[0][:10]])
    assert [u["pass_number"] for u in delta["used_passes"]] == [first[12]]
    assert delta["cursor"] != cursor

    # after one new order, the next answer holds just that order
    third = central.carnets(1, 10, millesime=2025)
    central.clock.advance(minutes=1)
    one = device.get("/api/v1/snapshot", params={"since": delta["cursor"]}).json()
    assert one["full"] is False and [o["carnets"][0]["first"] for o in one["orders"]] == [third[0][:10]]
    assert (one["blocked_carnets"], one["used_passes"]) == ([], [])

    # a new point for the organisation makes the next answer a full one
    admin.add_point(central.engine, org, "Annexe", "33318", ["EPN"], central.clock())
    again = device.get("/api/v1/snapshot", params={"since": one["cursor"]}).json()
    assert again["full"] is True and len(again["points_de_presence"]) == 2

    assert device.get("/api/v1/snapshot", params={"since": "garbage"}).status_code == 400
