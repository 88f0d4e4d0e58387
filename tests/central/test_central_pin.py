"""The médiateur PIN travels as a hash: set on the central, sent with the activation and the snapshot."""

from __future__ import annotations

import pytest

from aptic.pin import verify_pin
from central.services import admin
from central.services.common import ServiceError


def test_pin_hash_comes_with_activation_and_snapshot(central):
    org, _ = central.organisation()
    r = central.activate(central.kit(org))
    assert r.json()["organisation"]["mediateur_pin_hash"] is None  # none set yet: the kiosk says so
    admin.set_pin(central.engine, org, "2468", central.clock())
    again = central.activate(central.kit(org), serial="pi-0002")
    sent = again.json()["organisation"]["mediateur_pin_hash"]
    assert verify_pin("2468", sent) and not verify_pin("1357", sent)
    assert "2468" not in again.text
    # A terminal already in the field gets the new PIN with its next snapshot.
    h = {"Authorization": f"Bearer {r.json()['token']}"}
    snapshot = central.http.get(central.url("/api/v1/snapshot"), headers=h).json()
    assert verify_pin("2468", snapshot["organisation"]["mediateur_pin_hash"])


@pytest.mark.parametrize("pin", ["123", "12345678901", "12ab"])
def test_a_pin_is_four_to_eight_digits(central, pin: str):
    org, _ = central.organisation()
    with pytest.raises(ServiceError) as refused:
        admin.set_pin(central.engine, org, pin, central.clock())
    error = refused.value
    assert (error.status, error.code) == (400, "invalid_pin")
    assert error.message == "Le code médiateur doit compter de 4 à 8 chiffres."
