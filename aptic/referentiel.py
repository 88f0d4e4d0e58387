"""The national catalogue (référentiel national #APTIC): 129 services, 3 levels, 9 categories.

The data ships in ``aptic/data/referentiel.json``, taken from the numbered lists of the #APTICulteur guide
(its headings announce 25 and 6 services where the lists hold 23 and 4: the lists are the truth).

>>> service(95).title
'Plateforme France Connect'
>>> [s.number for s in search("france connect")]
[95]
>>> len(in_category("2.2"))
12
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Category:
    code: str  # "1.1" ... "3.5"
    name: str
    level: int


@dataclass(frozen=True, slots=True)
class Service:
    number: int
    title: str
    category: Category

    @property
    def level(self) -> int:
        return self.category.level

    @property
    def level_name(self) -> str:
        return LEVELS[self.category.level]

    def as_dict(self) -> dict[str, object]:
        """The shape of ``aptic-central referentiel --json``."""
        return {
            "number": self.number,
            "title": self.title,
            "level": self.level,
            "category": self.category.code,
            "category_name": self.category.name,
        }


def _load() -> tuple[dict[int, str], dict[str, Category], dict[int, Service]]:
    raw = json.loads(resources.files("aptic").joinpath("data/referentiel.json").read_text("utf-8"))
    levels = {row["level"]: row["name"] for row in raw["levels"]}
    categories = {row["category"]: Category(row["category"], row["name"], row["level"]) for row in raw["categories"]}
    services = {
        row["number"]: Service(row["number"], row["title"], categories[row["category"]]) for row in raw["services"]
    }
    return levels, categories, services


LEVELS, CATEGORIES, SERVICES = _load()
ALL_NUMBERS: frozenset[int] = frozenset(SERVICES)


def service(number: int) -> Service:
    """The service with this number; KeyError if the référentiel has none."""
    return SERVICES[number]


def in_category(code: str) -> list[Service]:
    """The services of a category such as ``"2.2"``, in catalogue order."""
    return [s for s in SERVICES.values() if s.category.code == code]


def _fold(text: str) -> str:
    """Lower case without accents, typographic apostrophes as plain ones: how people type a search."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@cache
def _folded_titles() -> dict[int, str]:
    return {n: _fold(f"{s.title} {s.category.name}") for n, s in SERVICES.items()}


def search(words: str) -> list[Service]:
    """Services whose title or category holds every word, ignoring case and accents; a number finds itself."""
    terms = _fold(words).split()
    if not terms:
        return list(SERVICES.values())
    titles = _folded_titles()
    found = []
    for number, folded in titles.items():
        if all(t == str(number) or t in folded for t in terms):
            found.append(SERVICES[number])
    return found


def parse_selection(spec: str) -> tuple[frozenset[int], frozenset[str]]:
    """Read a selection such as ``"84-95,1.2,7"`` into (service numbers, category codes).

    Used for funders' restrictions and organisations' catalogues. Raises ValueError on an unknown
    number or category, or a reversed range.
    """
    numbers: set[int] = set()
    categories: set[str] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if "." in item:
            if item not in CATEGORIES:
                raise ValueError(f"unknown category {item!r}")
            categories.add(item)
        elif "-" in item:
            low, _, high = item.partition("-")
            a, b = int(low), int(high)
            if a > b:
                raise ValueError(f"reversed range {item!r}")
            numbers.update(range(a, b + 1))
        else:
            numbers.add(int(item))
    unknown = numbers - ALL_NUMBERS
    if unknown:
        raise ValueError(f"unknown service numbers: {sorted(unknown)}")
    return frozenset(numbers), frozenset(categories)
