"""Validity rules: may this pass pay this service, here, today?

``judge()`` is a pure function. The caller gathers what it knows (the central from its database, the
terminal from its offline snapshot) and gets back a ``Verdict``: a reason code, a French message with the
details, and warnings. Checks run in a fixed order and the first failure is the answer
(``docs/domain.md`` gives each message in full):

 1. format and check digits          malformed
 2. issued, authenticator valid      unknown_pass   (the caller passes ``order=None``)
 3. order paid                       not_activated
 4. carnet not blocked or cancelled  blocked
 5. pass not already used            already_used
 6. start date reached               not_yet_valid
 7. millésime in force               expired        (January N+1: ok with a warning)
 8. territory                        territory
 9. kind of place                    place_type
10. designated points               place_not_designated
11. place qualified                  place_not_qualified
12. service in the point's catalogue service_not_in_catalogue
13. service allowed by the funder    service_not_covered
14. one pass per carnet, service,    same_carnet
    organisation and day
15. not twice in this entry          duplicate_in_entry
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from aptic import referentiel
from aptic.money import format_euros, net_cents
from aptic.passnumber import PassNumber, PassNumberError, format_pass, parse
from aptic.places import Place, territory_label, typologie_label
from aptic.reasons import Reason


def format_date(day: date) -> str:
    """Dates as the French read them: 31/12/2026."""
    return day.strftime("%d/%m/%Y")


@dataclass(frozen=True, slots=True)
class Restrictions:
    """What a funder may restrict. An empty set restricts nothing.

    ``territories``: département or INSEE commune codes; ``place_types``: typologie codes; ``points``:
    designated points de présence; ``services`` and ``categories``: service numbers and category codes
    (``"2.2"``) the passes may pay.
    """

    territories: frozenset[str] = frozenset()
    place_types: frozenset[str] = frozenset()
    points: frozenset[int] = frozenset()
    services: frozenset[int] = frozenset()
    categories: frozenset[str] = frozenset()
    territory_label: str | None = None  # the funder's own name for its perimeter, e.g. "Gironde"

    def covers_service(self, number: int) -> bool:
        if not self.services and not self.categories:
            return True
        if number in self.services:
            return True
        known = referentiel.SERVICES.get(number)
        return known is not None and known.category.code in self.categories


@dataclass(frozen=True, slots=True)
class Order:
    """A funder's order of carnets, as the rules need it."""

    commanditaire: str
    millesime: int
    value_cents: int = 1000
    activated: bool = True
    cancelled: bool = False
    blocked_carnets: frozenset[str] = frozenset()
    starts_on: date | None = None
    restrictions: Restrictions = field(default_factory=Restrictions)

    @property
    def valid_from(self) -> date:
        """The start date if the funder set one, else 1 January of the millésime."""
        return self.starts_on or date(self.millesime, 1, 1)

    @property
    def valid_until(self) -> date:
        return date(self.millesime, 12, 31)

    @property
    def tolerance_until(self) -> date:
        return date(self.millesime + 1, 1, 31)


@dataclass(frozen=True, slots=True)
class PriorUse:
    """An earlier accepted use of a pass, as far as the caller knows."""

    pass_number: str
    service: int
    organisation_id: int
    on: date
    place_name: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: Reason
    message: str
    warnings: tuple[str, ...] = ()
    number: PassNumber | None = None
    order: Order | None = None

    @property
    def valid(self) -> bool:
        return self.reason is Reason.OK

    def pass_info(self) -> dict[str, object] | None:
        """The ``pass`` object of the validity API; None when the number is unreadable or unknown."""
        if self.number is None or self.order is None:
            return None
        return {
            "number": self.number.digits,
            "carnet": self.number.carnet,
            "millesime": self.number.millesime,
            "value_cents": self.order.value_cents,
            "commanditaire": self.order.commanditaire,
            "valid_until": self.order.valid_until.isoformat(),
        }


def malformed(error: PassNumberError) -> Verdict:
    """The verdict for text that is not a well-formed pass number: it needs no order, place nor date."""
    return Verdict(Reason.MALFORMED, f"Pass non conforme : {error.message_fr}")


def judge(
    text: str | PassNumber,
    *,
    order: Order | None,
    place: Place,
    service: int,
    today: date,
    uses: Iterable[PriorUse] = (),
    entry: Sequence[str] = (),
) -> Verdict:
    """The verdict for one pass.

    ``order`` is the pass's order, or None when the number was never issued or its authenticator is wrong
    (the two must look the same); ``uses`` are earlier accepted uses of this pass and of other passes of
    its carnet; ``entry`` holds the pass numbers (digits) already in the médiateur's current entry, all for
    this ``service`` at this ``place``.
    """
    if isinstance(text, PassNumber):
        number = text
    else:
        try:
            number = parse(text)
        except PassNumberError as error:
            return malformed(error)

    def refuse(reason: Reason, message: str) -> Verdict:
        return Verdict(reason, message, number=number, order=order)

    if order is None:
        return Verdict(Reason.UNKNOWN_PASS, "Pass inconnu : ce numéro n'a pas été émis.", number=number)
    funder = order.commanditaire
    if not order.activated:
        return refuse(
            Reason.NOT_ACTIVATED,
            f"Pass non activé : la commande du commanditaire {funder} n'est pas encore réglée.",
        )
    if order.cancelled or number.carnet in order.blocked_carnets:
        return refuse(Reason.BLOCKED, f"Pass bloqué ou annulé par le commanditaire {funder}.")

    uses = tuple(uses)
    for use in uses:
        if use.pass_number == number.digits:
            where = f" ({use.place_name})" if use.place_name else ""
            return refuse(Reason.ALREADY_USED, f"Pass déjà utilisé le {format_date(use.on)}{where}.")

    if today < order.valid_from:
        return refuse(Reason.NOT_YET_VALID, f"Pass pas encore valable (à partir du {format_date(order.valid_from)}).")
    warnings: tuple[str, ...] = ()
    if today > order.tolerance_until:
        n = order.millesime
        return refuse(
            Reason.EXPIRED,
            f"Pass périmé : millésime {n}, valable jusqu'au 31/12/{n} (tolérance 31/01/{n + 1}).",
        )
    if today > order.valid_until:
        warnings = (
            f"Millésime {order.millesime} accepté en période de tolérance "
            f"(jusqu'au {format_date(order.tolerance_until)}).",
        )

    rules = order.restrictions
    if rules.territories and not place.in_territory(rules.territories):
        perimeter = rules.territory_label or ", ".join(territory_label(c) for c in sorted(rules.territories))
        return refuse(Reason.TERRITORY, f"Pass non valable sur ce territoire (réservé à : {perimeter}).")
    if rules.place_types and not (place.typologies & rules.place_types):
        kinds = ", ".join(typologie_label(t) for t in sorted(rules.place_types))
        return refuse(Reason.PLACE_TYPE, f"Pass non accepté dans ce type de lieu (réservé à : {kinds}).")
    if rules.points and place.point_id not in rules.points:
        return refuse(Reason.PLACE_NOT_DESIGNATED, f"Pass réservé à des lieux désignés par le commanditaire {funder}.")
    if not place.qualified:
        return refuse(Reason.PLACE_NOT_QUALIFIED, "Votre lieu n'est pas habilité à encaisser des pass.")
    if service not in place.catalogue:
        return refuse(
            Reason.SERVICE_NOT_IN_CATALOGUE,
            f"Ce service ({service_label(service)}) ne figure pas au catalogue de ce point de présence.",
        )
    if not rules.covers_service(service):
        return refuse(
            Reason.SERVICE_NOT_COVERED,
            f"Service non couvert par ce pass (parcours restreint par le commanditaire {funder} : "
            f"{describe_services(rules)}).",
        )

    for use in uses:
        if (
            use.pass_number[:10] == number.carnet
            and use.service == service
            and use.organisation_id == place.organisation_id
            and use.on == today
        ):
            return refuse(
                Reason.SAME_CARNET,
                f"Un autre pass de ce carnet ({format_pass(use.pass_number)}) a déjà réglé ce service "
                f"le {format_date(use.on)}.",
            )
    for other in entry:
        if other != number.digits and other[:10] == number.carnet:
            return refuse(
                Reason.SAME_CARNET,
                f"Un autre pass de ce carnet ({format_pass(other)}) est déjà dans cette saisie pour ce service.",
            )
    if number.digits in entry:
        return refuse(Reason.DUPLICATE_IN_ENTRY, "Ce pass vient déjà d'être scanné dans cette saisie.")

    return Verdict(
        Reason.OK,
        f"Pass valable — {format_euros(order.value_cents)} (contre-paiement "
        f"{format_euros(net_cents(order.value_cents))}), millésime {order.millesime}, "
        f"commanditaire {funder}.",
        warnings,
        number,
        order,
    )


def service_label(number: int) -> str:
    known = referentiel.SERVICES.get(number)
    return f"n° {number} « {known.title} »" if known else f"n° {number}, inconnu du référentiel"


def _ranges(numbers: Iterable[int]) -> list[str]:
    """[84, 85, 86, 90] -> ['84 à 86', '90']"""
    out: list[str] = []
    ordered = sorted(numbers)
    start = prev = None
    for n in [*ordered, None]:
        if start is not None and (n is None or n != prev + 1):
            out.append(str(start) if start == prev else f"{start} à {prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return out


def describe_services(rules: Restrictions) -> str:
    """Services a funder allows, in plain words: ``catégorie 2.2 Faire ses démarches en ligne, services 1 à 3``."""
    parts = [
        f"catégorie {code} {referentiel.CATEGORIES[code].name}"
        for code in sorted(rules.categories)
        if code in referentiel.CATEGORIES
    ]
    if rules.services:
        spans = _ranges(rules.services)
        single = len(rules.services) == 1
        parts.append(("service " if single else "services ") + ", ".join(spans))
    return ", ".join(parts) or "tous les services"


def describe_restrictions(order: Order) -> list[str]:
    """The order's restrictions as short French sentences for the self-service screen."""
    rules = order.restrictions
    lines = [f"Valable du {format_date(order.valid_from)} au {format_date(order.valid_until)}."]
    if rules.territories:
        perimeter = rules.territory_label or ", ".join(territory_label(c) for c in sorted(rules.territories))
        lines.append(f"Uniquement sur ce territoire : {perimeter}.")
    if rules.place_types:
        lines.append("Dans ces lieux : " + ", ".join(typologie_label(t) for t in sorted(rules.place_types)) + ".")
    if rules.points:
        lines.append("Uniquement dans les lieux choisis par le commanditaire.")
    if rules.services or rules.categories:
        lines.append(f"Pour ces services : {describe_services(rules)}.")
    return lines
