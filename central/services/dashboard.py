"""The figures of the console's dashboard: an organisation's passes over the last twelve months, the funders
of those passes, the national figures, and the qualified places to put on a map.

A pass counts in the month its service happened (``scans.service_month``, set on accepted and flagged scans
only, so ``service_month IS NOT NULL`` is "accepted"). Everything is aggregated in SQL on covering indexes
(migration 0006), so the cost follows the number of *groups*, not of scans:

* ``ix_scans_org_service_month (organisation_id, service_month, service, commanditaire_id)``: the
  organisation's figures, one index range, no table row read;
* ``ix_scans_service_month_funder (service_month, commanditaire_id)``: the national figures, an index-only
  range over twelve months of every organisation's scans. That one grows with the whole scheme (about 70 ms
  for 1 M scans on SQLite, ``bench.console``): the console caches it for a few minutes (``console.dashboard``).

``tests/console/test_console_dashboard.py`` checks with ``EXPLAIN`` that none of these queries scans the
``scans`` table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, func, select

from aptic import referentiel
from central import schema as t
from central.services.statements import month_label

TOP_SERVICES = 10


def last_months(current: str, count: int = 12) -> list[str]:
    """The ``count`` months ending with ``current`` (``AAAA-MM``), oldest first."""
    year, month = int(current[:4]), int(current[5:])
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


@dataclass
class Organisation:
    """An organisation's figures over ``months``."""

    months: list[str]
    by_month_level: dict[str, Counter[int]] = field(default_factory=dict)  # month → level → passes
    by_service: Counter[int] = field(default_factory=Counter)
    by_funder: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_service.values())

    def month_rows(self) -> list[dict[str, Any]]:
        """One row per month: its label, the passes per level (1, 2, 3) and their total."""
        rows = []
        for month in self.months:
            levels = self.by_month_level.get(month, Counter())
            rows.append({"month": month, "label": month_label(month), "levels": [levels[lv] for lv in (1, 2, 3)],
                         "total": sum(levels.values())})  # fmt: skip
        return rows

    def top_services(self) -> list[dict[str, Any]]:
        def title(number: int) -> str:
            known = referentiel.SERVICES.get(number)
            return known.title if known else f"Service {number}"

        ranked = sorted(self.by_service.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SERVICES]
        return [{"service": number, "title": title(number), "passes": n} for number, n in ranked]

    def funders(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "passes": n} for name, n in sorted(self.by_funder.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


def organisation_query(organisation_id: int, months: list[str]) -> Select[Any]:
    """Passes per (month, service, funder) of one organisation: a range of ``ix_scans_org_service_month``."""
    s = t.scans.c
    return (
        select(s.service_month, s.service, s.commanditaire_id, func.count().label("n"))
        .where(s.organisation_id == organisation_id, s.service_month >= months[0], s.service_month <= months[-1])
        .group_by(s.service_month, s.service, s.commanditaire_id)
    )


def national_query(months: list[str]) -> Select[Any]:
    """Passes per (month, funder), every organisation: a range of ``ix_scans_service_month_funder``."""
    s = t.scans.c
    return (
        select(s.service_month, s.commanditaire_id, func.count().label("n"))
        .where(s.service_month >= months[0], s.service_month <= months[-1])
        .group_by(s.service_month, s.commanditaire_id)
    )


def points_query() -> Select[Any]:
    """The points of presence of qualified organisations that have coordinates."""
    p, o = t.points.c, t.organisations.c
    return (
        select(p.id, p.name, p.insee, p.commune, p.postcode, p.latitude, p.longitude, o.name.label("organisation"))
        .join(t.organisations, t.organisations.c.id == p.organisation_id)
        .where(o.qualified.is_(True), p.latitude.is_not(None), p.longitude.is_not(None))
        .order_by(p.commune, p.name, p.id)
    )


def _funder_names(conn: Connection) -> dict[int | None, str]:
    names: dict[int | None, str] = dict(conn.execute(select(t.commanditaires.c.id, t.commanditaires.c.name)).all())
    names[None] = "Inconnu"
    return names


def organisation(conn: Connection, organisation_id: int, months: list[str]) -> Organisation:
    """The organisation's passes over ``months`` (oldest first): per month and level, per service, per funder."""
    names = _funder_names(conn)
    out = Organisation(months)
    for month, service, funder, n in conn.execute(organisation_query(organisation_id, months)):
        known = referentiel.SERVICES.get(service)
        out.by_month_level.setdefault(month, Counter())[known.level if known else 1] += n
        out.by_service[service] += n
        out.by_funder[names.get(funder, "Inconnu")] += n
    return out


@dataclass
class National:
    """Every organisation's figures over ``months``: passes per month and per funder, places."""

    months: list[str]
    by_month: Counter[str] = field(default_factory=Counter)
    by_funder: Counter[str] = field(default_factory=Counter)
    organisations: int = 0  # qualified ones
    points: int = 0  # of qualified organisations

    @property
    def total(self) -> int:
        return sum(self.by_month.values())

    def month_rows(self) -> list[dict[str, Any]]:
        return [{"month": m, "label": month_label(m), "passes": self.by_month[m]} for m in self.months]

    def funders(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "passes": n} for name, n in sorted(self.by_funder.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


def national(conn: Connection, months: list[str]) -> National:
    """The national figures over ``months``: passes per month and per funder, qualified organisations and points."""
    names = _funder_names(conn)
    out = National(months)
    for month, funder, n in conn.execute(national_query(months)):
        out.by_month[month] += n
        out.by_funder[names.get(funder, "Inconnu")] += n
    qualified = t.organisations.c.qualified.is_(True)
    out.organisations = conn.execute(select(func.count()).select_from(t.organisations).where(qualified)).scalar_one()
    out.points = conn.execute(
        select(func.count()).select_from(t.points).join(t.organisations).where(qualified)
    ).scalar_one()
    return out


def places(conn: Connection) -> list[dict[str, Any]]:
    """The qualified points with coordinates, for the map and the table beside it."""
    return [
        {
            "id": r.id,
            "name": r.name,
            "organisation": r.organisation,
            "commune": r.commune or r.insee,
            "postcode": r.postcode or "",
            "lat": r.latitude,
            "lon": r.longitude,
        }
        for r in conn.execute(points_query())
    ]
