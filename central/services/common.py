"""What the services share: errors, time, and turning database rows into ``aptic`` objects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select

from aptic import referentiel
from aptic.places import Place
from aptic.rules import Order, Restrictions
from central import schema as t

PARIS = ZoneInfo("Europe/Paris")
"""Local time of the scheme: dates on passes, the same-carnet day and payment months are French dates."""

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ServiceError(Exception):
    """A refusal the client should see: an HTTP status, a stable error code, a French message and, for bad
    input, the fields at fault."""

    def __init__(
        self, status: int, code: str, message: str, fields: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "fields": self.fields}


def local_date(moment: datetime) -> date:
    return moment.astimezone(PARIS).date()


def month_of(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m")


def split_codes(text: str | None) -> list[str]:
    return [c for c in (text or "").split(",") if c]


def order_from_row(row: Any, commanditaire: str, blocked_carnets: frozenset[str] = frozenset()) -> Order:
    """An ``aptic.rules.Order`` from an ``orders`` row."""
    return Order(
        commanditaire=commanditaire,
        millesime=row.millesime,
        value_cents=row.value_cents,
        activated=bool(row.activated),
        cancelled=row.cancelled_at is not None,
        blocked_carnets=blocked_carnets,
        starts_on=row.starts_on,
        restrictions=restrictions_from_row(row),
    )


def restrictions_from_row(row: Any) -> Restrictions:
    return Restrictions(
        territories=frozenset(split_codes(row.territories)),
        place_types=frozenset(split_codes(row.place_types)),
        points=frozenset(int(p) for p in split_codes(row.points)),
        services=frozenset(int(s) for s in split_codes(row.services)),
        categories=frozenset(split_codes(row.categories)),
        territory_label=row.territory_label,
    )


def catalogue_of(selection: str | None) -> frozenset[int]:
    """The service numbers an organisation offers: its selection, or the whole référentiel when unset."""
    if selection is None:
        return referentiel.ALL_NUMBERS
    numbers, categories = referentiel.parse_selection(selection)
    extra = {s.number for code in categories for s in referentiel.in_category(code)}
    return frozenset(numbers | extra)


def place_from_rows(point: Any, organisation: Any) -> Place:
    return Place(
        point_id=point.id,
        organisation_id=point.organisation_id,
        name=point.name,
        insee=point.insee,
        typologies=frozenset(split_codes(point.typologies)),
        qualified=bool(organisation.qualified),
        catalogue=catalogue_of(organisation.catalogue),
    )


def point_dict(point: Any) -> dict[str, Any]:
    """A point de présence as the API shows it."""
    return {
        "id": point.id,
        "organisation_id": point.organisation_id,
        "name": point.name,
        "insee": point.insee,
        "departement": point.departement,
        "typologies": split_codes(point.typologies),
        "latitude": point.latitude,
        "longitude": point.longitude,
        "opening_hours": point.opening_hours,
    }


def organisation_dict(org: Any) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "siret": org.siret,
        "qualified": bool(org.qualified),
        "catalogue": sorted(catalogue_of(org.catalogue)),
        "mediateur_pin_hash": org.mediateur_pin_hash,
    }


def record_change(conn: Connection, kind: str, ref: object, now: datetime) -> None:
    """Note a change the terminals' offline snapshots must pick up (see ``services.snapshot``)."""
    conn.execute(insert(t.changes).values(kind=kind, ref=str(ref), created_at=now))


def load_organisation(conn: Connection, organisation_id: int) -> Any:
    row = conn.execute(select(t.organisations).where(t.organisations.c.id == organisation_id)).first()
    if row is None:
        raise ServiceError(404, "unknown_organisation", f"Organisation {organisation_id} inconnue.")
    return row
