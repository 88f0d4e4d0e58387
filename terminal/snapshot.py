"""The offline snapshot: what the terminal knows to judge passes without the network.

The central sends it as JSON (``GET /api/v1/snapshot``, gzipped on the wire) and the store keeps that JSON
as received; :func:`from_json` is the single place that turns it into the domain objects of ``aptic``.
The shape::

    {
      "cursor": "opaque string for ?since=",
      "full": true,
      "generated_at": "2026-11-22T14:00:00+00:00",
      "organisation": {"id": 1, "name": "Médiathèque de Bègles", "qualified": true,
                       "catalogue": [1, 2, 3]},                 # optional; absent = whole référentiel
      "points_de_presence": [{"id": 3, "name": "Bus numérique", "insee": "33039", "typologies": ["ITINERANT"],
                  "catalogue": [1, 2]}],                        # optional; absent = the organisation's
      "orders": [{"id": 7, "commanditaire": "Département de la Gironde", "millesime": 2026,
                  "value_cents": 1000, "activated": true, "cancelled": false, "starts_on": null,
                  "restrictions": {"territories": ["33"], "territory_label": "Gironde",
                                   "place_types": [], "points": [], "services": [], "categories": []},
                  "carnets": [{"first": "1260000001", "last": "1260000100", "size": 10}]}],  # id ranges
      "blocked_carnets": ["1260000042"],
      "used_passes": [{"pass_number": "18 digits", "service": 12, "organisation_id": 1,
                       "on": "2026-11-20", "place_name": "Médiathèque"}]
    }

``orders`` holds every order of the country, also those that cannot apply at this organisation and those
of past millésimes, and ``blocked_carnets`` every blocked carnet: so an offline refusal gives the reason
the central would give (``territory``, ``expired``, ``blocked``...) and only a number outside every range
is ``unknown_pass``. ``used_passes`` holds the uses of the orders in force that can apply here only.
Thousands of orders share a few hundred restriction sets: :func:`from_json` builds one ``Restrictions``
per distinct set.

(``points`` is read too, for data saved before the central's name was known.) With ``?since=CURSOR`` the
central answers with what changed (``"full": false``): :func:`merge` folds that into the saved JSON.

Carnet ids are the first 10 digits of a pass number (``aptic.passnumber``); a range is inclusive and all
carnet ids have the same length, so they compare as strings.

Offline the terminal cannot check a pass's authenticator (only the central has the key), so a well-formed
number in a known carnet range counts as issued: offline verdicts are provisional for that reason too.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from aptic import referentiel
from aptic.places import Place
from aptic.rules import Order, PriorUse, Restrictions


class SnapshotError(ValueError):
    """The central's snapshot JSON does not have the expected shape."""


@dataclass(frozen=True, slots=True)
class CarnetRange:
    first: str
    last: str
    order: Order
    size: int = 10
    """Passes per carnet (5 or 10): a position beyond it was never printed."""


@dataclass(frozen=True)
class Snapshot:
    """Offline data as domain objects. ``ranges`` are sorted by their first carnet id."""

    cursor: str | None = None
    generated_at: str | None = None
    organisation_id: int | None = None
    organisation_name: str = ""
    places: Mapping[int, Place] = field(default_factory=dict)
    ranges: tuple[CarnetRange, ...] = ()
    used: tuple[PriorUse, ...] = ()

    def order_for(self, carnet: str, position: int | None = None) -> Order | None:
        """The order a carnet belongs to, or None if no known range holds it (or, given the pass's
        ``position``, if its carnets are too small to hold it: a pass 07 of a carnet of 5 was never issued)."""
        i = bisect.bisect_right(self._starts, carnet) - 1
        if i >= 0 and self.ranges[i].first <= carnet <= self.ranges[i].last:
            found = self.ranges[i]
            return found.order if position is None or position <= found.size else None
        return None

    @cached_property
    def _starts(self) -> list[str]:
        return [r.first for r in self.ranges]

    def place(self, point_id: int) -> Place | None:
        return self.places.get(point_id)


def _ints(values: Iterable[Any] | None) -> frozenset[int]:
    return frozenset(int(v) for v in values or ())


def _strs(values: Iterable[Any] | None) -> frozenset[str]:
    return frozenset(str(v) for v in values or ())


def _restrictions(data: Mapping[str, Any] | None) -> Restrictions:
    data = data or {}
    return Restrictions(
        territories=_strs(data.get("territories")),
        place_types=_strs(data.get("place_types")),
        points=_ints(data.get("points")),
        services=_ints(data.get("services")),
        categories=_strs(data.get("categories")),
        territory_label=data.get("territory_label"),
    )


def from_json(data: Mapping[str, Any]) -> Snapshot:
    """The central's snapshot JSON as domain objects; raises :class:`SnapshotError` on a wrong shape."""
    try:
        return _from_json(data)
    except (KeyError, TypeError, ValueError) as error:
        raise SnapshotError(f"unexpected snapshot shape: {error!r}") from error


def _from_json(data: Mapping[str, Any]) -> Snapshot:
    organisation = data.get("organisation") or {}
    org_id = int(organisation["id"]) if organisation.get("id") is not None else None
    qualified = bool(organisation.get("qualified", True))
    default_catalogue = (
        _ints(organisation["catalogue"]) if organisation.get("catalogue") is not None
        else frozenset(referentiel.SERVICES)
    )  # fmt: skip
    places = {}
    for point in data.get("points_de_presence") or data.get("points") or ():
        catalogue = _ints(point["catalogue"]) if point.get("catalogue") is not None else default_catalogue
        places[int(point["id"])] = Place(
            point_id=int(point["id"]),
            organisation_id=int(point.get("organisation_id", org_id or 0)),
            name=str(point.get("name", "")),
            insee=str(point["insee"]),
            typologies=_strs(point.get("typologies")),
            qualified=bool(point.get("qualified", qualified)),
            catalogue=catalogue,
        )
    blocked = _strs(data.get("blocked_carnets"))
    # One Restrictions object per distinct set: a national snapshot has thousands of orders and a few
    # hundred sets, and building the frozensets is most of the parsing time.
    shared: dict[tuple[Any, ...], Restrictions] = {}
    ranges = []
    for raw in data.get("orders") or ():
        rules = raw.get("restrictions") or {}
        key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(rules.items()))
        if key not in shared:
            shared[key] = _restrictions(rules)
        own_blocks = raw.get("blocked_carnets")
        order = Order(
            commanditaire=str(raw["commanditaire"]),
            millesime=int(raw["millesime"]),
            value_cents=int(raw.get("value_cents", 1000)),
            activated=bool(raw.get("activated", True)),
            cancelled=bool(raw.get("cancelled", False)),
            blocked_carnets=blocked | _strs(own_blocks) if own_blocks else blocked,  # one set for all
            starts_on=date.fromisoformat(raw["starts_on"]) if raw.get("starts_on") else None,
            restrictions=shared[key],
        )
        for span in raw.get("carnets") or ():
            first, last = str(span["first"]), str(span["last"])
            if len(first) != 10 or len(last) != 10 or first > last:
                raise SnapshotError(f"bad carnet range {first!r}..{last!r}")
            ranges.append(CarnetRange(first, last, order, int(span.get("size") or 10)))
    ranges.sort(key=lambda r: r.first)
    used = tuple(
        PriorUse(
            pass_number=str(u["pass_number"]),
            service=int(u["service"]),
            organisation_id=int(u["organisation_id"]),
            on=date.fromisoformat(str(u["on"])[:10]),
            place_name=str(u.get("place_name") or ""),
        )
        for u in data.get("used_passes") or ()
    )
    return Snapshot(
        cursor=data.get("cursor"),
        generated_at=data.get("generated_at"),
        organisation_id=org_id,
        organisation_name=str(organisation.get("name", "")),
        places=places,
        ranges=tuple(ranges),
        used=used,
    )


def merge(saved: Mapping[str, Any] | None, received: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON to save after receiving ``received`` from the central on top of ``saved``.

    A full answer (``"full": true``, or nothing saved yet) replaces everything. An incremental one brings
    the organisation and its points whole, orders to upsert by id, and blocked carnets and used passes to add
    to the sets already known.
    """
    if saved is None or received.get("full", True):
        return dict(received)
    orders = {o["id"]: o for o in saved.get("orders") or ()}
    orders.update({o["id"]: o for o in received.get("orders") or ()})
    blocked = sorted({*(saved.get("blocked_carnets") or ()), *(received.get("blocked_carnets") or ())})
    used: dict[tuple[str, int, str], Any] = {}
    for use in [*(saved.get("used_passes") or ()), *(received.get("used_passes") or ())]:
        used[(use["pass_number"], use["service"], use["on"])] = use
    return {
        **saved,
        **received,
        "full": True,  # what is saved is always a whole snapshot
        "orders": list(orders.values()),
        "blocked_carnets": blocked,
        "used_passes": list(used.values()),
    }
