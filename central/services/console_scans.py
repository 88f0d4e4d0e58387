"""Tester un pass and Scanner des pass, the console's two pass pages, over the terminals' own code.

* :func:`examine` is the test: ``aptic.rules.judge`` over the database's state, as the validity API does,
  for a point of the member's organisation and a service (or *any* service of its catalogue). It reads and
  never writes, so a médiateur can check a pass in front of its holder without spending it.
* :func:`submit` records passes through ``services.ingest.ingest``, the very code the terminals' pushes go
  through: same-carnet and double-spending refusals, payment months and the race guard cannot differ
  between a kiosk and the console. The scan is the member's (``scans.user_id``, no device).

Idempotency, like a terminal's queue: the scan page carries a random *batch id* and each pass's scan id is
``uuid5(batch, organisation:user:digits)``. Submitting the same form again (a double click, a reload of the
POST, a replayed request) sends the same ids, which ingest answers with their first results: nothing is
paid twice. The organisation and the user are in the name so that nobody can replay someone else's scans
by guessing or copying a batch id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from aptic import referentiel
from aptic.money import format_euros, net_cents
from aptic.passnumber import Authenticator, PassNumber, PassNumberError, format_pass, parse
from aptic.places import Place
from aptic.reasons import Reason
from aptic.rules import Order, PriorUse, Verdict, describe_restrictions, format_date, judge
from central import schema as t
from central.services import ingest
from central.services.accounts import audit
from central.services.common import ServiceError, catalogue_of, local_date, place_from_rows
from central.services.passes import load_carnets, order_for, prior_uses
from central.services.statements import month_label

MAX_PASSES = 50
"""Passes recorded by one submission: a session's worth, and a bound on the work one request can ask."""

UNKNOWN_POINT = "Point de présence inconnu de votre organisation."
# Refusals that depend on the service: when testing for "any service", another service may still pass.
_SERVICE_BOUND = {Reason.SERVICE_NOT_IN_CATALOGUE, Reason.SERVICE_NOT_COVERED, Reason.SAME_CARNET}


@dataclass(frozen=True, slots=True)
class PointChoice:
    id: int
    name: str
    commune: str


@dataclass(frozen=True, slots=True)
class ServiceGroup:
    """A category of the référentiel with the organisation's services in it (an ``<optgroup>``)."""

    code: str
    name: str
    services: tuple[referentiel.Service, ...]

    @property
    def label(self) -> str:
        return f"{self.code} {self.name}"


@dataclass(frozen=True, slots=True)
class Choices:
    """What the forms offer: the organisation's points and its catalogue, grouped by category."""

    points: tuple[PointChoice, ...]
    groups: tuple[ServiceGroup, ...]
    catalogue: frozenset[int]


@dataclass(frozen=True, slots=True)
class Examination:
    """A pass tested here and now: the rules' verdict and what helps a médiateur explain it."""

    text: str
    verdict: Verdict
    point_name: str
    service: int | None  # None: judged for any service of the catalogue
    own_use: PriorUse | None = None  # the accepted use of this very pass, if any
    services_ok: int = 0  # with service None: how many services of the catalogue it may pay

    @property
    def valid(self) -> bool:
        return self.verdict.valid

    @property
    def message(self) -> str:
        return self.verdict.message

    @property
    def digits(self) -> str | None:
        return self.verdict.number.digits if self.verdict.number else None

    @property
    def printed(self) -> str:
        return format_pass(self.digits) if self.digits else self.text

    @property
    def malformed(self) -> bool:
        return self.verdict.reason is Reason.MALFORMED

    @property
    def order(self) -> Order | None:
        return self.verdict.order

    def facts(self) -> list[tuple[str, str]]:
        """(term, description) pairs for the page: funder, value, validity, restrictions, earlier use."""
        order = self.order
        if order is None:
            return []
        value, net = format_euros(order.value_cents), format_euros(net_cents(order.value_cents))
        lines = [
            ("Commanditaire", order.commanditaire),
            ("Valeur", f"{value} (contre-paiement {net})"),
            ("Millésime", str(order.millesime)),
            ("Validité", f"du {format_date(order.valid_from)} au {format_date(order.valid_until)} "
                         f"(tolérance jusqu’au {format_date(order.tolerance_until)})"),
        ]  # fmt: skip
        restrictions = describe_restrictions(order)[1:]  # the first line is the validity, shown above
        lines.append(("Restrictions", " ".join(restrictions) if restrictions else "Aucune."))
        if self.own_use is not None:
            use = self.own_use
            where = f" ({use.place_name})" if use.place_name else ""
            lines.append(("Déjà utilisé", f"Oui, le {format_date(use.on)}{where}, pour le service "
                                          f"{service_title(use.service)}."))  # fmt: skip
        else:
            lines.append(("Déjà utilisé", "Non."))
        if self.service is None and self.valid:
            lines.append(("Services possibles", f"{self.services_ok} service(s) du catalogue de votre organisation."))
        return lines

    def as_json(self) -> dict[str, Any]:
        """The pre-check of the scan page."""
        return {
            "valid": self.valid,
            "reason": self.verdict.reason.value,
            "message": self.message,
            "warnings": list(self.verdict.warnings),
            "digits": self.digits,
            "printed": self.printed,
            "malformed": self.malformed,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one submitted pass."""

    printed: str
    status: str  # accepted | flagged | rejected
    message: str
    payment_month: str | None = None

    @property
    def recorded(self) -> bool:
        return self.status in ("accepted", "flagged")

    @property
    def label(self) -> str:
        return {"accepted": "Enregistré", "flagged": "Enregistré, à vérifier"}.get(self.status, "Refusé")

    @property
    def paid_in(self) -> str:
        return month_label(self.payment_month) if self.payment_month else ""


@dataclass(frozen=True, slots=True)
class Submission:
    point_name: str
    service: int
    outcomes: tuple[Outcome, ...] = field(default=())

    @property
    def recorded(self) -> int:
        return sum(o.recorded for o in self.outcomes)

    @property
    def refused(self) -> int:
        return len(self.outcomes) - self.recorded


def service_title(number: int) -> str:
    known = referentiel.SERVICES.get(number)
    return f"n° {number} « {known.title} »" if known else f"n° {number}"


def choices(conn: Connection, organisation_id: int) -> Choices:
    """The organisation's points (by name) and its catalogue grouped by the référentiel's categories."""
    org = conn.execute(select(t.organisations.c.catalogue).where(t.organisations.c.id == organisation_id)).one()
    points = tuple(
        PointChoice(r.id, r.name, r.commune or "")
        for r in conn.execute(
            select(t.points.c.id, t.points.c.name, t.points.c.commune)
            .where(t.points.c.organisation_id == organisation_id)
            .order_by(t.points.c.name, t.points.c.id)
        )
    )
    catalogue = catalogue_of(org.catalogue)
    groups = []
    for code, category in referentiel.CATEGORIES.items():
        services = tuple(s for s in referentiel.in_category(code) if s.number in catalogue)
        if services:
            groups.append(ServiceGroup(code, category.name, services))
    return Choices(points, tuple(groups), catalogue)


def _place(conn: Connection, organisation_id: int, point_id: int | None) -> Place:
    """The point as the rules see it; the organisation's first point when none is asked for. A point of
    another organisation is unknown, like one that does not exist."""
    query = select(t.points).where(t.points.c.organisation_id == organisation_id)
    query = query.where(t.points.c.id == point_id) if point_id is not None else query.order_by(t.points.c.id)
    point = conn.execute(query.limit(1)).first()
    if point is None:
        raise ServiceError(400, "unknown_point", UNKNOWN_POINT, {"point": UNKNOWN_POINT})
    org = conn.execute(select(t.organisations).where(t.organisations.c.id == organisation_id)).one()
    return place_from_rows(point, org)


def check_service(place: Place, service: int | None) -> None:
    if service is not None and service not in place.catalogue:
        message = f"Le service {service_title(service)} ne figure pas au catalogue de votre organisation."
        if service not in referentiel.SERVICES:
            message = "Service inconnu du référentiel."
        raise ServiceError(400, "unknown_service", message, {"service": message})


def examine(
    conn: Connection,
    auth: Authenticator,
    organisation_id: int,
    point_id: int | None,
    service: int | None,
    text: str,
    now: datetime,
    entry: Sequence[str] = (),
) -> Examination:
    """Judge ``text`` at this point for this service (None: for any service of the catalogue), today, as a
    terminal would; ``entry`` holds the digits already listed on the scan page. Writes nothing.

    A 400 ServiceError (with the field at fault) for a point or service that is not the organisation's.
    """
    place = _place(conn, organisation_id, point_id)
    check_service(place, service)
    today = local_date(now)
    try:
        number: PassNumber | str = parse(text)
    except PassNumberError:
        number = text  # judged without an order: the verdict names the faulty part
    if not isinstance(number, PassNumber):
        verdict = judge(text, order=None, place=place, service=service or 0, today=today)
        return Examination(text, verdict, place.name, service)
    facts = load_carnets(conn, [number.carnet]).get(number.carnet)
    uses = prior_uses(conn, [number.carnet]).get(number.carnet, [])
    order = order_for(number, facts, auth, now)
    own = next((u for u in uses if u.pass_number == number.digits), None)

    def verdict_for(service_number: int) -> Verdict:
        return judge(number, order=order, place=place, service=service_number, today=today, uses=uses, entry=entry)

    if service is not None:
        return Examination(text, verdict_for(service), place.name, service, own)
    candidates = sorted(place.catalogue) or [min(referentiel.ALL_NUMBERS)]
    first = verdict_for(candidates[0])
    if first.valid or first.reason not in _SERVICE_BOUND:
        ok = sum(verdict_for(s).valid for s in candidates) if first.valid else 0
        return Examination(text, first, place.name, None, own, ok)
    valid = [v for v in map(verdict_for, candidates[1:]) if v.valid]
    return Examination(text, valid[0] if valid else first, place.name, None, own, len(valid))


def scan_id(batch: uuid.UUID, organisation_id: int, user_id: int, digits: str) -> str:
    """The scan id of a pass in a batch: the same inputs give the same id, so a resubmission is a replay."""
    return str(uuid.uuid5(batch, f"{organisation_id}:{user_id}:{digits}"))


def submit(
    engine: Engine,
    auth: Authenticator,
    *,
    organisation_id: int,
    user_id: int,
    point_id: int,
    service: int,
    batch: uuid.UUID,
    numbers: Sequence[PassNumber],
    now: datetime,
    ip: str | None = None,
) -> Submission:
    """Record passes scanned in the console (at most ``MAX_PASSES``, each once: duplicates are dropped) and
    audit the submission in the same transaction. Resubmitting the same batch returns the first results."""
    unique = list({n.digits: n for n in numbers}.values())
    if not unique:
        message = "Saisissez ou scannez au moins un pass."
        raise ServiceError(400, "no_pass", message, {"pass": message})
    if len(unique) > MAX_PASSES:
        message = f"Trop de pass à la fois ({len(unique)}) : {MAX_PASSES} au plus par enregistrement."
        raise ServiceError(400, "too_many_passes", message, {"pass": message})
    with engine.connect() as conn:
        place = _place(conn, organisation_id, point_id)
    check_service(place, service)
    scans = [
        ingest.ScanIn(
            id=scan_id(batch, organisation_id, user_id, n.digits),
            pass_number=n.digits,
            service=service,
            point=point_id,
            scanned_at=now,
            clock_synced=True,  # the central's own clock
            seq=0,
            entry_id=str(batch),
        )
        for n in unique
    ]

    def audit_submission(conn: Connection, results: list[dict[str, Any]], stored: int) -> None:
        if stored == 0:
            return  # a replay changed nothing
        accepted = sum(r["status"] != "rejected" for r in results)
        audit(conn, now, user_id, "scan.submit", organisation_id=organisation_id, target=str(batch), ip=ip,
              details={"point": point_id, "service": service, "passes": len(results), "new": stored,
                       "accepted": accepted, "rejected": len(results) - accepted})  # fmt: skip

    results = ingest.ingest(engine, auth, None, organisation_id, scans, now, user_id=user_id, then=audit_submission)
    outcomes = tuple(
        Outcome(format_pass(n.digits), r["status"], r["message"], r["payment_month"])
        for n, r in zip(unique, results, strict=True)
    )
    return Submission(place.name, service, outcomes)
