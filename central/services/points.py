"""Points de présence as an organisation's admins keep them in the console: check, list, create, edit.

A point is where passes are used: its commune (INSEE code, whose département the rules and funders'
territories look at), its kinds (data·inclusion typology codes), its opening hours in OpenStreetMap's
syntax (``aptic.opening_hours``), its position, and, for a bus, its stops. Every write is audited in the
same transaction and recorded as a change, so terminals pick the point up in their next snapshot.

:func:`check` turns what a form sent (strings) into :class:`PointValues`, collecting every field's error at
once; ``admin.add_point`` (the ``add-point`` command) goes through the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from aptic import opening_hours
from aptic.places import departement_of, is_commune
from central import schema as t
from central.db import write_transaction
from central.services.accounts import audit
from central.services.common import ServiceError, record_change, split_codes

_POSTCODE = re.compile(r"^\d{5}$")
# data·inclusion has many more codes than ``aptic.places.TYPOLOGIES`` names: the console offers those, the
# ``add-point`` command takes any well-formed code, and a point keeps the codes it has when edited.
_TYPOLOGY = re.compile(r"^[A-Z][A-Z0-9_]{0,30}$")
_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
MAX_STOPS = 50


@dataclass(frozen=True, slots=True)
class Stop:
    """Where and when an itinerant point stops (stored as ``{"place", "insee", "hours"}``)."""

    place: str
    insee: str
    hours: str


@dataclass(frozen=True, slots=True)
class PointValues:
    """A point's fields, checked and normalised: what is written to ``points``."""

    name: str
    insee: str
    address: str | None = None
    postcode: str | None = None
    commune: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    opening_hours: str | None = None
    typologies: tuple[str, ...] = ()
    itinerant: bool = False
    stops: tuple[Stop, ...] = field(default_factory=tuple)

    def columns(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "insee": self.insee,
            "departement": departement_of(self.insee),
            "address": self.address,
            "postcode": self.postcode,
            "commune": self.commune,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "opening_hours": self.opening_hours,
            "typologies": ",".join(self.typologies),
            "itinerant": self.itinerant,
            "stops": [asdict(s) for s in self.stops] if self.itinerant else None,
        }


@dataclass(frozen=True, slots=True)
class Point:
    """A point as the console shows it."""

    id: int
    organisation_id: int
    values: PointValues


def _text(value: str | None, limit: int) -> str | None:
    value = " ".join((value or "").split())
    return value[:limit] if value else None


def parse_coordinate(text: str, low: float, high: float) -> float:
    """A latitude or longitude typed by a French user: ``44,8378`` or ``44.8378``, within [low, high].

    >>> parse_coordinate(" 44,8378 ", -90, 90)
    44.8378
    >>> parse_coordinate("-0.5874", -180, 180)
    -0.5874
    """
    text = text.strip().replace(" ", "")
    if not _NUMBER.match(text):
        raise ValueError("un nombre décimal, comme 44,8378")
    value = float(text.replace(",", "."))
    if not low <= value <= high:
        raise ValueError(f"un nombre entre {low:g} et {high:g}")
    return value


def check(
    *,
    name: str,
    insee: str,
    address: str | None = None,
    postcode: str | None = None,
    commune: str | None = None,
    latitude: str | None = None,
    longitude: str | None = None,
    hours: str | None = None,
    typologies: Iterable[str] = (),
    itinerant: bool = False,
    stops: Iterable[Mapping[str, str]] = (),
) -> PointValues:
    """Check a point's fields as typed; ServiceError 400 ``invalid_point`` with every field's French error.

    Stop rows whose three fields are empty are ignored; the others' errors are keyed ``stop-<i>-place``,
    ``stop-<i>-insee``, ``stop-<i>-hours`` (``i`` the row's index in ``stops``).
    """
    errors: dict[str, str] = {}
    name_value = _text(name, 200)
    if not name_value:
        errors["name"] = "Indiquez le nom du point de présence."
    insee_value = (insee or "").strip().upper()
    if not is_commune(insee_value):
        errors["insee"] = "Le code INSEE d’une commune compte 5 caractères, comme 33063 (Bordeaux) ou 2A004."
    postcode_value = "".join((postcode or "").split()) or None
    if postcode_value and not _POSTCODE.match(postcode_value):
        errors["postcode"] = "Le code postal compte 5 chiffres, comme 33000."
    coordinates: dict[str, float | None] = {"latitude": None, "longitude": None}
    for key, text, low, high in (("latitude", latitude, -90, 90), ("longitude", longitude, -180, 180)):
        if text and text.strip():
            try:
                coordinates[key] = parse_coordinate(text, low, high)
            except ValueError as error:
                errors[key] = f"La {key} doit être {error}."
    if (coordinates["latitude"] is None) != (coordinates["longitude"] is None) and not errors.keys() & {
        "latitude",
        "longitude",
    }:
        missing = "longitude" if coordinates["longitude"] is None else "latitude"
        errors[missing] = "Indiquez la latitude et la longitude, ou aucune des deux."
    hours_value = None
    if hours and hours.strip():
        try:
            hours_value = opening_hours.normalise(hours)
        except ValueError as error:
            errors["hours"] = str(error)
    kinds = sorted({k.strip().upper() for k in typologies if k.strip()})
    malformed = [k for k in kinds if not _TYPOLOGY.match(k)]
    if malformed:
        errors["typologies"] = f"Code de typologie non valable : {', '.join(malformed)}."
    checked_stops = _check_stops(stops, errors)
    if checked_stops and not itinerant:
        errors["itinerant"] = "Cochez « Ce lieu se déplace » pour enregistrer des arrêts, ou videz les arrêts."
    if errors:
        raise ServiceError(400, "invalid_point", "Le point de présence n’a pas été enregistré : corrigez les champs "
                           "signalés.", errors)  # fmt: skip
    return PointValues(
        name=name_value or "",
        insee=insee_value,
        address=_text(address, 300),
        postcode=postcode_value,
        commune=_text(commune, 100),
        latitude=coordinates["latitude"],
        longitude=coordinates["longitude"],
        opening_hours=hours_value,
        typologies=tuple(kinds),
        itinerant=bool(itinerant),
        stops=tuple(checked_stops),
    )


def _check_stops(rows: Iterable[Mapping[str, str]], errors: dict[str, str]) -> list[Stop]:
    stops = []
    for index, row in enumerate(rows):
        place = _text(row.get("place"), 200)
        insee = (row.get("insee") or "").strip().upper()
        hours = (row.get("hours") or "").strip()
        if not (place or insee or hours):
            continue
        key = f"stop-{index}"
        if not place:
            errors[f"{key}-place"] = "Indiquez le lieu de l’arrêt."
        if not is_commune(insee):
            errors[f"{key}-insee"] = "Le code INSEE de la commune de l’arrêt compte 5 caractères, comme 33318."
        if not hours:
            errors[f"{key}-hours"] = "Indiquez quand le bus s’y arrête, comme We 09:00-12:00."
        else:
            try:
                hours = opening_hours.normalise(hours)
            except ValueError as error:
                errors[f"{key}-hours"] = str(error)
        stops.append(Stop(place or "", insee, hours))
    if len(stops) > MAX_STOPS:
        errors["itinerant"] = f"Au plus {MAX_STOPS} arrêts."
    return stops


def _values(row: Any) -> PointValues:
    stops = tuple(Stop(s.get("place", ""), s.get("insee", ""), s.get("hours", "")) for s in (row.stops or []))
    return PointValues(
        name=row.name,
        insee=row.insee,
        address=row.address,
        postcode=row.postcode,
        commune=row.commune,
        latitude=row.latitude,
        longitude=row.longitude,
        opening_hours=row.opening_hours,
        typologies=tuple(split_codes(row.typologies)),
        itinerant=bool(row.itinerant),
        stops=stops,
    )


def list_points(conn: Connection, organisation_id: int) -> list[Point]:
    rows = conn.execute(
        select(t.points).where(t.points.c.organisation_id == organisation_id).order_by(t.points.c.name, t.points.c.id)
    ).all()
    return [Point(r.id, r.organisation_id, _values(r)) for r in rows]


def get_point(conn: Connection, organisation_id: int, point_id: int) -> Point:
    """The point ``point_id`` of this organisation; 404 when it belongs to another one or does not exist."""
    row = conn.execute(
        select(t.points).where(t.points.c.id == point_id, t.points.c.organisation_id == organisation_id)
    ).first()
    if row is None:
        raise ServiceError(404, "unknown_point", "Ce point de présence n’existe pas.")
    return Point(row.id, row.organisation_id, _values(row))


def insert_point(conn: Connection, organisation_id: int, values: PointValues, now: datetime) -> int:
    """Insert a checked point in the caller's transaction and note the change for the terminals."""
    new_id = conn.execute(
        insert(t.points)
        .values(organisation_id=organisation_id, created_at=now, **values.columns())
        .returning(t.points.c.id)
    ).scalar_one()
    record_change(conn, "point", new_id, now)
    return int(new_id)


def create_point(
    engine: Engine, organisation_id: int, values: PointValues, now: datetime, *, user_id: int, ip: str | None = None
) -> int:
    with write_transaction(engine) as conn:
        new_id = insert_point(conn, organisation_id, values, now)
        audit(conn, now, user_id, "point.create", organisation_id=organisation_id, target=f"point:{new_id}",
              details={"name": values.name, "insee": values.insee}, ip=ip)  # fmt: skip
    return new_id


def update_point(
    engine: Engine,
    organisation_id: int,
    point_id: int,
    values: PointValues,
    now: datetime,
    *,
    user_id: int,
    ip: str | None = None,
) -> bool:
    """Write ``values`` over the point; False (nothing written, nothing audited) when nothing changed."""
    with write_transaction(engine) as conn:
        before = get_point(conn, organisation_id, point_id).values
        if before == values:
            return False
        changed = sorted(k for k, v in values.columns().items() if before.columns()[k] != v)
        conn.execute(
            update(t.points)
            .where(t.points.c.id == point_id, t.points.c.organisation_id == organisation_id)
            .values(**values.columns())
        )
        record_change(conn, "point", point_id, now)
        audit(conn, now, user_id, "point.update", organisation_id=organisation_id, target=f"point:{point_id}",
              details={"fields": changed}, ip=ip)  # fmt: skip
    return True
