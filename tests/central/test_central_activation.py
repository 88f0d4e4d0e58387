"""Activation by kit number: expiry, single use, lockout, revocation (over loopback HTTP, both databases)."""

from __future__ import annotations

import pytest

from central.services import admin


def test_activation_returns_token_organisation_and_points(central):
    org, points = central.organisation("Médiathèque Mériadeck", points=2)
    kit = central.kit(org)
    r = central.activate(kit)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"device_id", "token", "organisation", "points_de_presence"}
    assert len(body["token"]) >= 43  # 256 bits, url-safe base64
    assert body["organisation"]["id"] == org
    assert [p["id"] for p in body["points_de_presence"]] == points
    assert body["points_de_presence"][0]["insee"] == "33063"
    assert body["points_de_presence"][0]["departement"] == "33"
    # the token works; it is not stored in clear
    h = {"Authorization": f"Bearer {body['token']}"}
    assert central.http.get(central.url("/api/v1/desired-state"), headers=h).status_code == 200
    with central.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM devices").scalars().all()
    assert body["token"] not in stored and len(stored[0]) == 64


def test_code_is_single_use_until_reissued(central):
    org, _ = central.organisation()
    kit = central.kit(org)
    first = central.activate(kit)
    assert first.status_code == 201
    again = central.activate(kit)
    assert again.status_code == 409
    assert again.json()["error"] == "kit_already_activated"
    fresh = admin.reissue_code(central.engine, kit["kit_number"], central.clock())
    second = central.activate(fresh, serial="pi-0002")
    assert second.status_code == 201
    # the kit's earlier device is revoked by the new activation
    old = {"Authorization": f"Bearer {first.json()['token']}"}
    assert central.http.get(central.url("/api/v1/desired-state"), headers=old).status_code == 401


def test_wrong_code_and_unknown_kit_are_the_same_403(central):
    org, _ = central.organisation()
    kit = central.kit(org)
    wrong = central.activate({**kit, "activation_code": "AAAA-AAAA"})
    unknown = central.activate({**kit, "kit_number": "AK-00000000"})
    assert wrong.status_code == unknown.status_code == 403
    assert wrong.json() == unknown.json()
    # codes are read without case, spaces or hyphens
    assert (
        central.activate({**kit, "activation_code": kit["activation_code"].lower().replace("-", " ")}).status_code
        == 201
    )


def test_code_expires_after_seven_days(central):
    org, _ = central.organisation()
    kit = central.kit(org)
    central.clock.advance(days=7, seconds=1)
    r = central.activate(kit)
    assert r.status_code == 403
    assert r.json()["error"] == "activation_code_expired"
    fresh = admin.reissue_code(central.engine, kit["kit_number"], central.clock())
    assert central.activate(fresh).status_code == 201


def test_five_wrong_codes_lock_the_kit_for_fifteen_minutes(central):
    org, _ = central.organisation()
    kit = central.kit(org)
    for _ in range(5):
        assert central.activate({**kit, "activation_code": "WRONG-CODE"}).status_code == 403
    locked = central.activate(kit)  # even the right code
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    central.clock.advance(minutes=14)
    assert central.activate(kit).status_code == 429
    central.clock.advance(minutes=1, seconds=1)
    assert central.activate(kit).status_code == 201


def test_revoked_device_gets_401(central):
    org, _ = central.organisation()
    device = central.device(org)
    assert device.get("/api/v1/snapshot").status_code == 200
    admin.revoke_device(central.engine, device.id, central.clock())
    r = device.get("/api/v1/snapshot")
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert device.post("/api/v1/scans", json={"scans": []}).status_code == 401
    # Validity authenticates in the statement that reads the pass: it refuses a revoked device all the same.
    pass_number = central.carnets(1, 5)[0]
    r = device.get(f"/api/v1/passes/{pass_number}/validity", params={"service": 1})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


@pytest.mark.parametrize("path", ["/api/v1/snapshot", "/api/v1/passes/2026-0000000001-01-00/validity?service=1"])
def test_missing_or_bad_token_is_401(central, path):
    r = central.http.get(central.url(path))
    assert r.status_code == 401
    r = central.http.get(central.url(path), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert "Traceback" not in r.text


def test_activation_body_is_validated_field_by_field(central):
    r = central.http.post(
        central.url("/api/v1/activations"),
        json={"kit_number": "AK-1", "activation_code": 12, "device": {"serial": "x"}, "extra": 1},
    )
    assert r.status_code == 400
    fields = r.json()["fields"]
    assert "activation_code" in fields
    assert "device.model" in fields
    assert "extra" in fields
    r = central.http.post(
        central.url("/api/v1/activations"), data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_json"
