"""The qualified places as open data, in LaMednum's national format *standard-mediation-num* v1.0.2.

One row per point de présence of a qualified organisation, shaped by ``central/open_data/schema.json``
(32 columns, in that order). :func:`places` yields the rows as dicts of Python values; :func:`csv_chunks`
and :func:`json_chunks` turn any iterable of rows into text, row by row, so that the public URLs and the
``export-places`` command stream the national file without holding it whole.

The format's rules the writers follow: UTF-8, ``,`` between cells, ``.`` in decimals, every column present
and in the schema's order, several values in one cell joined with ``|``. A row is never exported invalid: a
point lacking a required field (its address, postcode or commune, even after falling back to its
organisation's) is left out, and the count of those left out is logged as a warning.

The référentiel #APTIC sorts its services into 9 categories of its own; the standard knows 9 other ones.
:data:`CATEGORY_SERVICES` maps the former to the latter: an organisation's catalogue becomes the
standard's ``services`` of each of its points.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from aptic import referentiel
from central import schema as t
from central.db import utc
from central.open_data import field_names, table_schema
from central.services.common import catalogue_of, local_date, split_codes

log = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = field_names()
SEPARATOR = "|"  # between the values of a cell holding several (never ";", which some tools take for a column)
SOURCE = "Pass numérique #APTIC"
FRAIS = "Gratuit sous condition"  # free for whoever holds a pass: the Pass numérique's condition
ID_PREFIX = "aptic-lieu-"

# The standard's 9 categories of services, in its order (the order of the values in a ``services`` cell).
STANDARD_SERVICES: tuple[str, ...] = (
    "Aide aux démarches administratives",
    "Maîtrise des outils numériques du quotidien",
    "Insertion professionnelle via le numérique",
    "Utilisation sécurisée du numérique",
    "Parentalité et éducation avec le numérique",
    "Loisirs et créations numériques",
    "Compréhension du monde numérique",
    "Accès internet et matériel informatique",
    "Acquisition de matériel informatique à prix solidaire",
)

# Each category of the référentiel #APTIC (aptic/data/referentiel.json) → the standard's category that
# describes its services best. The only place this correspondence is written.
CATEGORY_SERVICES: dict[str, str] = {
    "1.1": "Compréhension du monde numérique",  # S’informer: identité, risques, réseaux sociaux
    "1.2": "Compréhension du monde numérique",  # Comprendre: cloud, paiements, biens communs
    "2.1": "Maîtrise des outils numériques du quotidien",  # Utiliser: poste, messagerie, smartphone
    "2.2": "Aide aux démarches administratives",  # Faire ses démarches en ligne
    "3.1": "Utilisation sécurisée du numérique",  # Gérer son identité numérique
    "3.2": "Compréhension du monde numérique",  # Contribuer: Wikipédia, OpenStreetMap
    "3.3": "Utilisation sécurisée du numérique",  # Contrôler ses données: outils libres, sécurité
    "3.4": "Loisirs et créations numériques",  # Explorer: photo, vidéo, impression 3D
    "3.5": "Insertion professionnelle via le numérique",  # S’insérer professionnellement: CV, emploi
}


def _pattern(name: str) -> re.Pattern[str]:
    field = next(f for f in table_schema()["fields"] if f["name"] == name)
    return re.compile(field["constraints"]["pattern"])


# The schema's own patterns, so that what is checked here is what a validator checks.
_PIVOT, _POSTCODE, _INSEE, _PHONE = (_pattern(n) for n in ("pivot", "code_postal", "code_insee", "telephone"))

# French numbers whose national prefix is an overseas département's: their country code is not +33.
_OVERSEAS = {
    **dict.fromkeys(("590", "690", "691"), "+590"),  # Guadeloupe, Saint-Martin, Saint-Barthélemy
    **dict.fromkeys(("594", "694"), "+594"),  # Guyane
    **dict.fromkeys(("596", "696", "697"), "+596"),  # Martinique
    **dict.fromkeys(("262", "263", "692", "693", "269", "639"), "+262"),  # La Réunion, Mayotte
}


def standard_services(catalogue: frozenset[int]) -> list[str]:
    """The standard's categories covering these service numbers of the référentiel, in the standard's order."""
    wanted = {CATEGORY_SERVICES[referentiel.service(n).category.code] for n in catalogue}
    return [s for s in STANDARD_SERVICES if s in wanted]


def international_phone(phone: str | None) -> str | None:
    """A French phone number as the standard writes it (``+33556000000``), or None if it is not one.

    >>> international_phone("05 56 00 00 00")
    '+33556000000'
    >>> international_phone("0590 12 34 56")
    '+590590123456'
    >>> international_phone("12 34") is None
    True
    """
    digits = re.sub(r"[\s.\-()]", "", phone or "")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if re.fullmatch(r"0[1-9]\d{8}", digits):
        digits = _OVERSEAS.get(digits[1:4], "+33") + digits[1:]
    return digits if _PHONE.fullmatch(digits) else None


def _last_changes(conn: Connection) -> dict[tuple[str, str], datetime | None]:
    """When each point and each organisation last changed, from the terminals' change log."""
    changed = func.max(t.changes.c.created_at).label("at")
    rows = conn.execute(
        select(t.changes.c.kind, t.changes.c.ref, changed)
        .where(t.changes.c.kind.in_(("point", "organisation")))
        .group_by(t.changes.c.kind, t.changes.c.ref)
    )
    return {(row.kind, row.ref): utc(row.at) for row in rows}


def _address(point: Any) -> tuple[str | None, str | None, str | None]:
    """The point's address, postcode and commune; a point with no street address of its own (a bus, say) is
    shown at its organisation's. The three are taken together, never mixed from the two."""
    if point.address:
        return point.address, point.postcode, point.commune
    return point.org_address, point.org_postcode, point.org_commune


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def places(conn: Connection) -> Iterator[dict[str, Any]]:
    """The rows of the national file: every point of every qualified organisation that has what the standard
    requires, by point id. Values are ``str``, ``float`` or None (an empty cell)."""
    changes = _last_changes(conn)
    query = (
        select(
            t.points,
            t.organisations.c.siret,
            t.organisations.c.catalogue,
            t.organisations.c.phone,
            t.organisations.c.address.label("org_address"),
            t.organisations.c.postcode.label("org_postcode"),
            t.organisations.c.commune.label("org_commune"),
        )
        .join(t.organisations, t.organisations.c.id == t.points.c.organisation_id)
        .where(t.organisations.c.qualified.is_(True))
        .order_by(t.points.c.id)
    )
    services_of: dict[int, str] = {}  # an organisation's services cell, computed once for all its points
    left_out = 0
    reasons: Counter[str] = Counter()  # which required field was missing, for the warning
    for point in conn.execute(query):
        address, postcode, commune = _address(point)
        missing = [
            name
            for name, ok in (
                ("pivot", bool(point.siret and _PIVOT.fullmatch(point.siret))),
                ("nom", bool(point.name and point.name.strip())),
                ("adresse", bool(address and address.strip())),
                ("code_postal", bool(postcode and _POSTCODE.fullmatch(postcode))),
                ("commune", bool(commune and commune.strip())),
            )
            if not ok
        ]
        if missing:
            left_out += 1
            reasons.update(missing)
            log.debug("open data: point %s left out, no valid %s", point.id, ", ".join(missing))
            continue
        if point.organisation_id not in services_of:
            catalogue = catalogue_of(point.catalogue)
            services_of[point.organisation_id] = SEPARATOR.join(standard_services(catalogue))
        moments = [
            utc(point.created_at),
            changes.get(("point", str(point.id))),
            changes.get(("organisation", str(point.organisation_id))),
        ]
        row = dict.fromkeys(FIELDS)
        row.update(
            id=f"{ID_PREFIX}{point.id}",
            pivot=point.siret,
            nom=point.name.strip(),
            commune=(commune or "").strip(),
            code_postal=postcode,
            code_insee=point.insee if point.insee and _INSEE.fullmatch(point.insee) else None,
            adresse=(address or "").strip(),
            latitude=_number(point.latitude),
            longitude=_number(point.longitude),
            telephone=international_phone(point.phone),
            horaires=point.opening_hours or None,
            source=SOURCE,
            date_maj=local_date(max(m for m in moments if m is not None)).isoformat(),
            services=services_of[point.organisation_id] or None,
            frais_a_charge=FRAIS,
            itinerance="Itinérant" if point.itinerant else "Fixe",
            typologie=SEPARATOR.join(split_codes(point.typologies)) or None,
            # Left empty: the standard's list of national programmes has no value for the Pass numérique, and
            # a value outside it would make the whole file invalid for the national aggregator.
            dispositif_programmes_nationaux="",
        )
        yield row
    if left_out:
        log.warning(
            "open data: %d point(s) of qualified organisations left out for lack of a required field (%s)",
            left_out,
            ", ".join(f"{name}: {n}" for name, n in sorted(reasons.items())),
        )


def _cell(value: Any) -> str:
    """A value as the CSV writes it: empty for None, numbers with a ``.`` and never in exponent form."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.7f}".rstrip("0").rstrip(".")
    return str(value)


def csv_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The CSV text: the header line, then one line per row (RFC 4180 quoting, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=",", lineterminator="\r\n")

    def line(cells: Iterable[str]) -> str:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(FIELDS)
    for row in rows:
        yield line(_cell(row[name]) for name in FIELDS)


def json_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The JSON text: an array of objects, one per line, every key present (null for an empty value)."""
    first = True
    for row in rows:
        yield ("[\n" if first else ",\n") + json.dumps({name: row[name] for name in FIELDS}, ensure_ascii=False)
        first = False
    yield "[]\n" if first else "\n]\n"


WRITERS = {"csv": csv_chunks, "json": json_chunks}
