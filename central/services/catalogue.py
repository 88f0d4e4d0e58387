"""An organisation's catalogue: which services of the national référentiel it offers, and at what price.

Two places hold it:

* ``organisations.catalogue``, the **selection**: a string such as ``"1-40,45,50-52"`` that the rules and the
  terminals' snapshots read (``common.catalogue_of``); NULL means the whole référentiel. Saving writes it in
  canonical form: ascending numbers and ranges of consecutive numbers, or NULL when every service of the
  référentiel is selected (so "everything" reads the same whether it was never edited or chosen service by
  service);
* ``catalogue_entries``, the **prices** of the selected services: a price in cents (NULL: none given) and
  whether the organisation accepts the regulated price ("tarif réglementé", the default). Only entries
  that differ from the default are stored (a price given, or the regulated price refused); the entries of
  services taken out of the selection are deleted.

A save that changes something is audited and recorded as a change of the organisation, so its terminals'
next snapshot carries the new selection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Connection, Engine, delete, insert, select, update

from aptic import referentiel
from aptic.referentiel import Category, Service
from central import schema as t
from central.db import write_transaction
from central.services.accounts import audit
from central.services.common import ServiceError, catalogue_of, load_organisation, record_change

MAX_PRICE_CENTS = 100_000  # 1,000 €
_PRICE = re.compile(r"^\d{1,4}(?:[.,]\d{1,2})?$")


@dataclass(frozen=True, slots=True)
class Choice:
    """One service as the organisation offers it (``selected`` false: not offered)."""

    selected: bool
    price_cents: int | None = None
    regulated: bool = True


@dataclass(frozen=True, slots=True)
class Line:
    service: Service
    choice: Choice


@dataclass(frozen=True, slots=True)
class Section:
    """A category of the référentiel with the organisation's choices for its services."""

    category: Category
    lines: list[Line]

    @property
    def selected(self) -> int:
        return sum(1 for line in self.lines if line.choice.selected)


def parse_price(text: str) -> int | None:
    """Cents of a price typed in euros (``12``, ``12,5``, ``12.50``, ``12,50 €``); None when left empty.

    >>> parse_price("12,5 €"), parse_price(" 8 "), parse_price("")
    (1250, 800, None)
    """
    text = "".join(text.replace("€", "").split())
    if not text:
        return None
    if not _PRICE.match(text):
        raise ValueError("Écrivez un montant en euros, comme 12,50.")
    try:
        cents = int(Decimal(text.replace(",", ".")) * 100)
    except InvalidOperation:  # pragma: no cover - the pattern already refused it
        raise ValueError("Écrivez un montant en euros, comme 12,50.") from None
    if cents > MAX_PRICE_CENTS:
        raise ValueError("Le tarif va de 0 à 1 000 €.")
    return cents


def format_price(cents: int | None) -> str:
    """How a price is written back into its field: ``1250`` → ``12,50``, ``800`` → ``8``."""
    if cents is None:
        return ""
    euros, rest = divmod(cents, 100)
    return f"{euros},{rest:02d}" if rest else str(euros)


def selection_of(numbers: frozenset[int]) -> str | None:
    """The canonical selection string of a set of service numbers; None for the whole référentiel.

    >>> selection_of(frozenset({1, 2, 3, 7, 9, 10}))
    '1-3,7,9-10'
    >>> selection_of(referentiel.ALL_NUMBERS) is None
    True
    """
    if numbers == referentiel.ALL_NUMBERS:
        return None
    parts: list[str] = []
    ordered = sorted(numbers)
    start = previous = None
    for n in [*ordered, None]:
        if previous is not None and n == previous + 1:
            previous = n
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = n
    return ",".join(parts)


def load(conn: Connection, organisation_id: int) -> dict[int, Choice]:
    """Every service of the référentiel with the organisation's choice for it."""
    org = load_organisation(conn, organisation_id)
    selected = catalogue_of(org.catalogue)
    entries = {
        row.service: row
        for row in conn.execute(
            select(t.catalogue_entries).where(t.catalogue_entries.c.organisation_id == organisation_id)
        )
    }
    choices = {}
    for number in referentiel.SERVICES:
        entry = entries.get(number)
        choices[number] = Choice(
            selected=number in selected,
            price_cents=entry.price_cents if entry else None,
            regulated=bool(entry.regulated_price) if entry else True,
        )
    return choices


def sections(choices: Mapping[int, Choice]) -> dict[int, list[Section]]:
    """The choices grouped by level, then category, in the référentiel's order."""
    by_level: dict[int, list[Section]] = {level: [] for level in referentiel.LEVELS}
    for category in referentiel.CATEGORIES.values():
        lines = [Line(s, choices[s.number]) for s in referentiel.in_category(category.code)]
        by_level[category.level].append(Section(category, lines))
    return by_level


def read_form(form: Mapping[str, str]) -> tuple[dict[int, Choice], dict[str, str]]:
    """The choices a catalogue form sent (``service-N`` checked, ``price-N``, ``regulated-N`` checked) and the
    French error of each bad price, keyed by its field. The prices of unticked services are ignored."""
    choices: dict[int, Choice] = {}
    errors: dict[str, str] = {}
    for number in referentiel.SERVICES:
        if not form.get(f"service-{number}"):
            choices[number] = Choice(selected=False)
            continue
        price = None
        try:
            price = parse_price(form.get(f"price-{number}", ""))
        except ValueError as error:
            errors[f"price-{number}"] = str(error)
        choices[number] = Choice(True, price, bool(form.get(f"regulated-{number}")))
    return choices, errors


def save(
    engine: Engine,
    organisation_id: int,
    choices: Mapping[int, Choice],
    now: datetime,
    *,
    user_id: int,
    ip: str | None = None,
) -> dict[str, list[int]]:
    """Write the organisation's choices (one per service of the référentiel); return what changed:
    ``{"added": [...], "removed": [...], "prices": [...]}`` (all empty: nothing was written)."""
    if set(choices) != set(referentiel.SERVICES):
        raise ServiceError(400, "invalid_catalogue", "Le catalogue doit donner un choix pour chaque service.")
    bad = [n for n, c in choices.items() if c.price_cents is not None and not 0 <= c.price_cents <= MAX_PRICE_CENTS]
    if bad:
        raise ServiceError(400, "invalid_price", "Le tarif va de 0 à 1 000 €.", {f"price-{n}": "0-1000" for n in bad})
    chosen = frozenset(n for n, c in choices.items() if c.selected)
    with write_transaction(engine) as conn:
        before = load(conn, organisation_id)
        was = frozenset(n for n, c in before.items() if c.selected)
        changes = {
            "added": sorted(chosen - was),
            "removed": sorted(was - chosen),
            "prices": sorted(
                n
                for n in chosen & was
                if (before[n].price_cents, before[n].regulated) != (choices[n].price_cents, choices[n].regulated)
            ),
        }
        # Entries only for the selected services, and only where they differ from the default.
        new_entries = {
            n: c for n, c in choices.items() if c.selected and (c.price_cents is not None or not c.regulated)
        }
        old_entries = {n: c for n, c in before.items() if c.price_cents is not None or not c.regulated}
        if not any(changes.values()) and new_entries.keys() == old_entries.keys():
            return changes
        conn.execute(
            update(t.organisations)
            .where(t.organisations.c.id == organisation_id)
            .values(catalogue=selection_of(chosen))
        )
        conn.execute(delete(t.catalogue_entries).where(t.catalogue_entries.c.organisation_id == organisation_id))
        if new_entries:
            conn.execute(
                insert(t.catalogue_entries),
                [
                    {
                        "organisation_id": organisation_id,
                        "service": n,
                        "price_cents": c.price_cents,
                        "regulated_price": c.regulated,
                        "updated_at": now,
                    }
                    for n, c in sorted(new_entries.items())
                ],
            )
        record_change(conn, "organisation", organisation_id, now)
        audit(conn, now, user_id, "catalogue.update", organisation_id=organisation_id,
              target=f"organisation:{organisation_id}", details=changes, ip=ip)  # fmt: skip
    return changes
