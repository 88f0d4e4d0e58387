"""``aptic-central demo-seed``: a small, coherent world to show the terminal working.

A médiathèque in Bordeaux with two points de présence and one kit; a département that funds carnets
valid in Gironde, a town that funds carnets restricted to administrative services, and an order not paid
yet. The numbers printed let a demo show ``ok``, ``territory``-free passes, ``service_not_covered`` and
``not_activated``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from central.services import accounts, admin
from central.services.common import local_date

DEMO_PIN = "1234"


def seed(engine: Engine, secret: bytes, now: datetime) -> dict[str, Any]:
    year = local_date(now).year
    siret = f"{(int(now.timestamp()) % 10**14):014d}"
    org = admin.add_organisation(engine, "Médiathèque Mériadeck (démo)", siret, now)
    admin.set_pin(engine, org, DEMO_PIN, now)
    p1 = admin.add_point(
        engine, org, "Médiathèque Mériadeck", "33063", ["BIB"], now,
        latitude=44.8378, longitude=-0.5874, opening_hours="Tu-Sa 10:00-18:00",
    )  # fmt: skip
    p2 = admin.add_point(engine, org, "Bus numérique", "33318", ["ITINERANT"], now, opening_hours="We 09:00-12:00")
    kit = admin.add_kit(engine, org, now)
    gironde = admin.issue_carnets(
        engine, secret, now, commanditaire="Département de la Gironde", millesime=year, carnets=3, size=10,
        territories=["33"], territory_label="Gironde",
    )  # fmt: skip
    town = admin.issue_carnets(
        engine, secret, now, commanditaire="Ville de Bordeaux", millesime=year, carnets=2, size=5, services="2.2",
    )  # fmt: skip
    unpaid = admin.issue_carnets(
        engine, secret, now, commanditaire="Fondation Exemple", millesime=year, carnets=1, size=5, activated=False
    )
    return {
        "organisation": org,
        "mediateur_pin": DEMO_PIN,
        "points": [p1, p2],
        "kit_number": kit["kit_number"],
        "activation_code": kit["activation_code"],
        "orders": {
            "gironde": {"order": gironde["order"], "passes": gironde["passes"]},
            "bordeaux_demarches": {"order": town["order"], "passes": town["passes"]},
            "not_activated": {"order": unpaid["order"], "passes": unpaid["passes"]},
        },
    }


def seed_console(engine: Engine, organisation_id: int, now: datetime) -> dict[str, Any]:
    """The demo's console accounts: a médiateur (member) and an admin of the demo organisation, the scheme's
    operator, and an admin of the funder of the demo's first order (« Département de la Gironde »), with random
    passwords (printed by ``make demo``, kept in its private data directory: never a fixed demo password)."""
    from central.services import funders

    logins = {}
    people = (("member", "mediateur@demo.aptic.invalid", "Camille Médiatrice"),
              ("admin", "admin@demo.aptic.invalid", "Dominique Admin"),
              ("operator", "operateur@demo.aptic.invalid", "Opérateur #APTIC"),
              ("funder", "financeur@demo.aptic.invalid", "Claude Financeur"))  # fmt: skip
    for role, email, name in people:
        password = f"demo-{secrets.token_urlsafe(15)}"  # a 25-character passphrase: the CNIL rule accepts it
        if role == "operator":
            accounts.create_user(engine, email, now, password=password, name=name, is_operator=True)
        elif role == "funder":
            funders.add_user(engine, email, "Département de la Gironde", now, role="admin", password=password,
                             name=name)  # fmt: skip
        else:
            accounts.create_user(engine, email, now, password=password, organisation_id=organisation_id, role=role,
                                 name=name)  # fmt: skip
        logins[role] = {"email": email, "password": password}
    return logins
