"""Validity rules: each reason code, the order of checks, dates, restrictions, the same-carnet rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from aptic.passnumber import build, hmac_authenticator
from aptic.places import Place
from aptic.reasons import Reason
from aptic.rules import Order, PriorUse, Restrictions, describe_restrictions, judge

AUTH = hmac_authenticator(b"rules")
PASS = build(2026, 1234, 7, AUTH)
SIBLING = build(2026, 1234, 8, AUTH)  # same carnet
STRANGER = build(2026, 999, 1, AUTH)  # another carnet
TODAY = date(2026, 6, 15)

ORDER = Order(commanditaire="Département de la Gironde", millesime=2026)
BORDEAUX = Place(
    point_id=10,
    organisation_id=1,
    name="Médiathèque Mériadeck",
    insee="33063",
    typologies=frozenset({"BIB"}),
    catalogue=frozenset(range(1, 130)),
)


def verdict(number: str = PASS, *, order: Order | None = ORDER, place: Place = BORDEAUX, service: int = 90,
            today: date = TODAY, uses: tuple[PriorUse, ...] = (), entry: tuple[str, ...] = ()):  # fmt: skip
    return judge(number, order=order, place=place, service=service, today=today, uses=uses, entry=entry)


def restricted(**kwargs: object) -> Order:
    return replace(ORDER, restrictions=Restrictions(**kwargs))  # type: ignore[arg-type]


def test_a_valid_pass_says_value_payment_and_funder() -> None:
    v = verdict()
    assert v.valid and v.reason is Reason.OK and v.warnings == ()
    assert v.message == (
        "Pass valable — 10,00\u00a0€ (contre-paiement 9,60\u00a0€), millésime 2026, "
        "commanditaire Département de la Gironde."
    )
    assert v.pass_info() == {
        "number": PASS,
        "carnet": PASS[:10],
        "millesime": 2026,
        "value_cents": 1000,
        "commanditaire": "Département de la Gironde",
        "valid_until": "2026-12-31",
    }


# One case per reason code: (what differs from the valid case, expected reason, words of the message).
CASES = {
    "malformed": (dict(number="1260001234"), Reason.MALFORMED, "Pass non conforme : Le numéro a 10 chiffres"),
    "bad check digits": (dict(number=PASS[:-1] + str((int(PASS[-1]) + 1) % 10)), Reason.MALFORMED, "Clé de contrôle"),
    "unknown": (dict(order=None), Reason.UNKNOWN_PASS, "ce numéro n'a pas été émis"),
    "not activated": (dict(order=replace(ORDER, activated=False)), Reason.NOT_ACTIVATED, "pas encore réglée"),
    "blocked carnet": (dict(order=replace(ORDER, blocked_carnets=frozenset({PASS[:10]}))), Reason.BLOCKED, "bloqué"),
    "cancelled order": (dict(order=replace(ORDER, cancelled=True)), Reason.BLOCKED, "annulé par le commanditaire"),
    "already used": (
        dict(uses=(PriorUse(PASS, 12, 2, date(2026, 3, 2), "EPN de Pessac"),)),
        Reason.ALREADY_USED,
        "Pass déjà utilisé le 02/03/2026 (EPN de Pessac).",
    ),
    "not yet valid": (
        dict(order=replace(ORDER, starts_on=date(2026, 9, 1))),
        Reason.NOT_YET_VALID,
        "Pass pas encore valable (à partir du 01/09/2026).",
    ),
    "expired": (
        dict(today=date(2027, 2, 1)),
        Reason.EXPIRED,
        "Pass périmé : millésime 2026, valable jusqu'au 31/12/2026 (tolérance 31/01/2027).",
    ),
    "territory": (dict(order=restricted(territories=frozenset({"24"}))), Reason.TERRITORY, "à : département 24"),
    "place type": (dict(order=restricted(place_types=frozenset({"CS"}))), Reason.PLACE_TYPE, "centre social"),
    "not designated": (dict(order=restricted(points=frozenset({11}))), Reason.PLACE_NOT_DESIGNATED, "lieux désignés"),
    "not qualified": (dict(place=replace(BORDEAUX, qualified=False)), Reason.PLACE_NOT_QUALIFIED, "pas habilité"),
    "not in catalogue": (
        dict(place=replace(BORDEAUX, catalogue=frozenset({1, 2}))),
        Reason.SERVICE_NOT_IN_CATALOGUE,
        "Ce service (n° 90 « Gérer ses droits et allocations (CAF…) en ligne/sur internet ») ne figure pas",
    ),
    "not covered": (
        dict(order=restricted(services=frozenset({1, 2, 3, 7}))),
        Reason.SERVICE_NOT_COVERED,
        "parcours restreint par le commanditaire Département de la Gironde : services 1 à 3, 7",
    ),
    "same carnet used today": (
        dict(uses=(PriorUse(SIBLING, 90, 1, TODAY, "Médiathèque Mériadeck"),)),
        Reason.SAME_CARNET,
        "a déjà réglé ce service le 15/06/2026",
    ),
    "same carnet in entry": (dict(entry=(SIBLING,)), Reason.SAME_CARNET, "est déjà dans cette saisie"),
    "duplicate in entry": (dict(entry=(STRANGER, PASS)), Reason.DUPLICATE_IN_ENTRY, "déjà d'être scanné"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_reason_is_reached_with_its_details(case: str) -> None:
    changes, reason, words = CASES[case]
    v = verdict(**changes)  # type: ignore[arg-type]
    assert v.reason is reason and not v.valid
    assert words in v.message


def test_every_reason_code_is_covered_by_a_case() -> None:
    reached = {reason for _, reason, _ in CASES.values()} | {Reason.OK}
    assert reached == set(Reason)


def test_unknown_and_forged_look_the_same() -> None:
    # The caller passes order=None for both; the answer carries no pass details either way.
    v = verdict(order=None)
    assert v.pass_info() is None and v.number is not None


def test_first_failure_in_check_order_wins() -> None:
    # Not activated AND blocked AND used AND expired AND out of territory: activation comes first.
    everything_wrong = replace(
        ORDER,
        activated=False,
        blocked_carnets=frozenset({PASS[:10]}),
        restrictions=Restrictions(territories=frozenset({"24"}), services=frozenset({1})),
    )
    used = (PriorUse(PASS, 12, 2, date(2026, 3, 2)),)
    assert verdict(order=everything_wrong, uses=used, today=date(2027, 3, 1)).reason is Reason.NOT_ACTIVATED
    # Peel the failures off one at a time: each next one surfaces in the documented order.
    step = replace(everything_wrong, activated=True)
    assert verdict(order=step, uses=used, today=date(2027, 3, 1)).reason is Reason.BLOCKED
    step = replace(step, blocked_carnets=frozenset())
    assert verdict(order=step, uses=used, today=date(2027, 3, 1)).reason is Reason.ALREADY_USED
    assert verdict(order=step, today=date(2027, 3, 1)).reason is Reason.EXPIRED
    assert verdict(order=step).reason is Reason.TERRITORY
    step = replace(step, restrictions=Restrictions(services=frozenset({1})))
    assert verdict(order=step, place=replace(BORDEAUX, qualified=False)).reason is Reason.PLACE_NOT_QUALIFIED
    assert verdict(order=step).reason is Reason.SERVICE_NOT_COVERED
    # Catalogue comes before the funder's services; same carnet before duplicate.
    assert verdict(order=step, place=replace(BORDEAUX, catalogue=frozenset())).reason is Reason.SERVICE_NOT_IN_CATALOGUE
    assert verdict(entry=(SIBLING, PASS)).reason is Reason.SAME_CARNET


@pytest.mark.parametrize(
    ("today", "reason", "warned"),
    [
        (date(2026, 1, 1), Reason.OK, False),
        (date(2026, 12, 31), Reason.OK, False),
        (date(2027, 1, 1), Reason.OK, True),
        (date(2027, 1, 31), Reason.OK, True),
        (date(2027, 2, 1), Reason.EXPIRED, False),
        (date(2025, 12, 31), Reason.NOT_YET_VALID, False),
    ],
)
def test_date_boundaries(today: date, reason: Reason, warned: bool) -> None:
    v = verdict(today=today)
    assert v.reason is reason
    assert bool(v.warnings) is warned
    if warned:
        assert v.warnings == ("Millésime 2026 accepté en période de tolérance (jusqu'au 31/01/2027).",)


def test_start_date_boundary() -> None:
    order = replace(ORDER, starts_on=date(2026, 3, 1))
    assert verdict(order=order, today=date(2026, 2, 28)).reason is Reason.NOT_YET_VALID
    assert verdict(order=order, today=date(2026, 3, 1)).valid


@pytest.mark.parametrize(
    ("territories", "insee", "ok"),
    [
        ({"33"}, "33063", True),  # by département
        ({"33"}, "24322", False),
        ({"33063"}, "33063", True),  # by INSEE commune
        ({"33318"}, "33063", False),  # another commune of the same département
        ({"24", "33318", "33063"}, "33063", True),
        ({"2A"}, "2A004", True),  # Corsica
        ({"971"}, "97105", True),  # overseas: 3-character département
        ({"97"}, "97105", False),
    ],
)
def test_territory_by_departement_and_commune(territories: set[str], insee: str, ok: bool) -> None:
    v = verdict(order=restricted(territories=frozenset(territories)), place=replace(BORDEAUX, insee=insee))
    assert v.valid is ok
    if not ok:
        assert v.reason is Reason.TERRITORY


def test_territory_uses_the_funders_label_when_given() -> None:
    order = restricted(territories=frozenset({"24"}), territory_label="Dordogne")
    assert verdict(order=order).message == "Pass non valable sur ce territoire (réservé à : Dordogne)."


@pytest.mark.parametrize(
    ("services", "categories", "service", "ok"),
    [
        (set(), {"2.2"}, 84, True),  # by category
        (set(), {"2.2"}, 95, True),
        (set(), {"2.2"}, 83, False),  # last of 2.1
        ({12}, set(), 12, True),  # by service number
        ({12}, set(), 13, False),
        ({12}, {"3.5"}, 129, True),  # either
    ],
)
def test_services_by_category_and_number(services: set[int], categories: set[str], service: int, ok: bool) -> None:
    order = restricted(services=frozenset(services), categories=frozenset(categories))
    v = verdict(order=order, service=service)
    assert v.valid is ok
    if not ok:
        assert v.reason is Reason.SERVICE_NOT_COVERED


def test_place_types_match_any_of_the_places_types() -> None:
    order = restricted(place_types=frozenset({"CS", "EPN"}))
    assert verdict(order=order, place=replace(BORDEAUX, typologies=frozenset({"BIB", "EPN"}))).valid
    assert verdict(order=order).reason is Reason.PLACE_TYPE


@pytest.mark.parametrize(
    ("use", "same_carnet"),
    [
        (PriorUse(SIBLING, 90, 1, TODAY), True),
        (PriorUse(SIBLING, 91, 1, TODAY), False),  # another service
        (PriorUse(SIBLING, 90, 2, TODAY), False),  # another organisation
        (PriorUse(SIBLING, 90, 1, date(2026, 6, 14)), False),  # another day
        (PriorUse(STRANGER, 90, 1, TODAY), False),  # another carnet
    ],
)
def test_same_carnet_rule_is_per_carnet_service_organisation_and_day(use: PriorUse, same_carnet: bool) -> None:
    v = verdict(uses=(use,))
    assert (v.reason is Reason.SAME_CARNET) is same_carnet
    assert v.valid is not same_carnet


def test_restrictions_in_plain_words() -> None:
    order = replace(
        ORDER,
        starts_on=date(2026, 3, 1),
        restrictions=Restrictions(
            territories=frozenset({"33", "24322"}),
            place_types=frozenset({"BIB"}),
            points=frozenset({10}),
            categories=frozenset({"2.2"}),
            services=frozenset({1}),
        ),
    )
    assert describe_restrictions(order) == [
        "Valable du 01/03/2026 au 31/12/2026.",
        "Uniquement sur ce territoire : commune 24322, département 33.",
        "Dans ces lieux : bibliothèque ou médiathèque.",
        "Uniquement dans les lieux choisis par le commanditaire.",
        "Pour ces services : catégorie 2.2 Faire ses démarches en ligne, service 1.",
    ]
    assert describe_restrictions(ORDER) == ["Valable du 01/01/2026 au 31/12/2026."]
