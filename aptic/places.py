"""Where passes are used: points de présence, their territory and their kind (typologie).

Territories are written as INSEE codes: a commune has 5 characters (``33063`` Bordeaux, ``2A004`` Ajaccio),
a département 2 (``33``, ``2A``) or 3 for overseas (``971``).

>>> departement_of("33063"), departement_of("97105"), departement_of("2A004")
('33', '971', '2A')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_COMMUNE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_DEPARTEMENT = re.compile(r"^(?:\d{2}|2[AB]|97\d|98\d)$")

# data·inclusion typologie codes (as used by the national standard for mediation places), in plain French.
TYPOLOGIES: dict[str, str] = {
    "EPN": "espace public numérique",
    "BIB": "bibliothèque ou médiathèque",
    "CCAS": "centre communal d'action sociale",
    "CS": "centre social",
    "MUNI": "mairie",
    "ASSO": "association",
    "TIERS_LIEUX": "tiers-lieu",
    "FABLAB": "fablab",
    "RFS": "France Services",
    "PIJ": "point information jeunesse",
    "MDS": "maison départementale des solidarités",
    "ITINERANT": "lieu itinérant (bus)",
}


def typologie_label(code: str) -> str:
    return TYPOLOGIES.get(code, code)


def is_commune(code: str) -> bool:
    return bool(_COMMUNE.match(code))


def is_departement(code: str) -> bool:
    return bool(_DEPARTEMENT.match(code))


def departement_of(insee: str) -> str:
    """The département of a commune's INSEE code (3 characters overseas, 2 elsewhere)."""
    if not is_commune(insee):
        raise ValueError(f"not an INSEE commune code: {insee!r}")
    return insee[:3] if insee.startswith(("97", "98")) else insee[:2]


def territory_label(code: str) -> str:
    """``département 33`` or ``commune 33063``: how a territory code reads on screen."""
    return f"commune {code}" if is_commune(code) else f"département {code}"


@dataclass(frozen=True, slots=True)
class Place:
    """A point de présence as the rules see it.

    ``catalogue`` holds the service numbers this point offers; ``qualified`` is true while its organisation
    is qualified #APTIC and its subscription is paid.
    """

    point_id: int
    organisation_id: int
    name: str
    insee: str
    typologies: frozenset[str] = field(default_factory=frozenset)
    qualified: bool = True
    catalogue: frozenset[int] = field(default_factory=frozenset)

    @property
    def departement(self) -> str:
        return departement_of(self.insee)

    def in_territory(self, codes: frozenset[str]) -> bool:
        """True when this point lies in one of the communes or départements named."""
        return self.insee in codes or self.departement in codes
