"""Funders (commanditaires) in the console: their users, the orders they request, and what their carnets became.

A funder's user reads (role ``reader``) or also requests orders (``admin``). An order request is a draft, then
submitted; the operator activates it, which issues its carnets through ``services.admin.issue_carnets`` and links
the request to the new order. Every read here is scoped to one commanditaire: another funder's request or order
is "not found" (404), never "forbidden".
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from aptic import passnumber, referentiel
from aptic.places import TYPOLOGIES, is_commune, is_departement, typologie_label
from aptic.rules import Order as RuleOrder
from central import schema as t
from central.db import utc, write_transaction
from central.services import accounts, admin
from central.services.common import ServiceError, split_codes
from central.services.statement_files import neutralise

ROLES = ("reader", "admin")
SIZES = (5, 10)
MAX_QUANTITY = 10_000
ALERT_BEFORE = timedelta(days=30)
STATUS_LABELS = {"draft": "Brouillon", "submitted": "Soumise", "paid": "Payée", "activated": "Activée",
                 "withdrawn": "Retirée"}  # fmt: skip
DISTRIBUTOR_MAX = 200


def funder_id(conn: Connection, name: str, now: datetime) -> int:
    """The commanditaire named ``name``, created when missing (as ``issue_carnets`` does)."""
    found = conn.execute(select(t.commanditaires.c.id).where(t.commanditaires.c.name == name)).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            insert(t.commanditaires).values(name=name, created_at=now).returning(t.commanditaires.c.id)
        ).scalar_one()
    )


def add_user(engine: Engine, email: str, funder: str, now: datetime, *, role: str = "reader",
             password: str | None = None, name: str = "") -> int:  # fmt: skip
    """A console user of the funder ``funder`` (the CLI's ``add-user --funder``); an existing e-mail gets the
    membership added (or its role changed). Returns the user id."""
    if role not in ROLES:
        raise ServiceError(400, "invalid_role", "Rôle inconnu.", {"role": "reader or admin"})
    if not funder.strip():
        raise ServiceError(400, "invalid_funder", "Nom de financeur vide.", {"funder": "required"})
    user_id = accounts.create_user(engine, email, now, password=password, name=name)
    with write_transaction(engine) as conn:
        commanditaire = funder_id(conn, funder.strip(), now)
        where = (t.funder_memberships.c.user_id == user_id, t.funder_memberships.c.commanditaire_id == commanditaire)
        if conn.execute(select(t.funder_memberships.c.role).where(*where)).first() is None:
            conn.execute(insert(t.funder_memberships).values(user_id=user_id, commanditaire_id=commanditaire,
                                                             role=role, created_at=now))  # fmt: skip
        else:
            conn.execute(update(t.funder_memberships).where(*where).values(role=role))
        accounts.audit(conn, now, None, "funder.user_added", target=email,
                       details={"financeur": funder.strip(), "role": role})  # fmt: skip
    return user_id


def funder_name(conn: Connection, commanditaire_id: int) -> str:
    name = conn.execute(
        select(t.commanditaires.c.name).where(t.commanditaires.c.id == commanditaire_id)
    ).scalar_one_or_none()
    if name is None:
        raise ServiceError(404, "unknown_funder", "Financeur inconnu.")
    return str(name)


# --- Order requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    funder: str
    carnet_size: int
    quantity: int
    millesime: int
    starts_on: date | None
    territories: list[str]
    status: str
    created_at: datetime
    submitted_at: datetime | None
    order_id: int | None
    place_types: list[str]
    points: list[int]
    services: str  # a selection as the référentiel reads it: "1.2,84-95"
    paid_at: datetime | None
    payment_reference: str | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def form_values(self) -> dict[str, Any]:
        """The request as its form shows it again (to edit a draft)."""
        numbers, categories = referentiel.parse_selection(self.services)
        return {"carnet_size": str(self.carnet_size), "quantity": str(self.quantity),
                "millesime": str(self.millesime), "starts_on": self.starts_on.isoformat() if self.starts_on else "",
                "territories": ", ".join(self.territories), "place_types": self.place_types,
                "points": [str(p) for p in self.points], "categories": sorted(categories),
                "services": compress(numbers)}  # fmt: skip


def _request(row: Any) -> Request:
    return Request(row.id, row.funder, row.carnet_size, row.quantity, row.millesime, row.starts_on,
                   split_codes(row.territories), row.status, utc(row.created_at), utc(row.submitted_at),
                   row.order_id, split_codes(row.place_types), [int(p) for p in split_codes(row.points)],
                   row.services, utc(row.paid_at), row.payment_reference)  # fmt: skip


def compress(numbers: frozenset[int] | set[int]) -> str:
    """Service numbers as a short selection: ``{1, 2, 3, 7}`` → ``"1-3, 7"``."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def restrictions(request: Request, point_names: dict[int, str]) -> list[str]:
    """The request's restrictions as French sentences, one per kind; ``[]``: valid in every qualified place."""
    lines = []
    if request.territories:
        lines.append("Territoires : " + ", ".join(request.territories))
    if request.place_types:
        lines.append("Lieux : " + ", ".join(typologie_label(c) for c in request.place_types))
    if request.points:
        lines.append("Points désignés : " + ", ".join(point_names.get(p, f"n°\xa0{p}") for p in request.points))
    if request.services:
        numbers, categories = referentiel.parse_selection(request.services)
        parts = [f"{c} {referentiel.CATEGORIES[c].name}" for c in sorted(categories)]
        if numbers:
            parts.append("services " + compress(numbers))
        lines.append("Services : " + " ; ".join(parts))
    return lines


def point_names(conn: Connection, ids: set[int] | list[int]) -> dict[int, str]:
    """« name (commune) » of the points ``ids``, for the restrictions' sentences."""
    if not ids:
        return {}
    rows = conn.execute(select(t.points.c.id, t.points.c.name, t.points.c.commune).where(t.points.c.id.in_(ids)))
    return {r.id: f"{r.name} ({r.commune})" if r.commune else r.name for r in rows}


def designatable_points(conn: Connection) -> list[tuple[int, str]]:
    """The qualified places' points a funder may designate, by département and name: (id, label)."""
    p, o = t.points.c, t.organisations.c
    rows = conn.execute(
        select(p.id, p.name, p.commune, p.departement, o.name.label("organisation"))
        .join(t.organisations, t.organisations.c.id == p.organisation_id)
        .where(o.qualified.is_(True))
        .order_by(p.departement, p.name, p.id)
    )
    return [(r.id, f"{r.name} — {r.commune or r.departement} ({r.organisation})") for r in rows]


_REQUESTS = select(t.order_requests, t.commanditaires.c.name.label("funder")).join(
    t.commanditaires, t.commanditaires.c.id == t.order_requests.c.commanditaire_id
)


def requests(conn: Connection, commanditaire_id: int | None = None, status: str | None = None) -> list[Request]:
    """The order requests, newest first: one funder's (``commanditaire_id``) or everyone's (the operator)."""
    query = _REQUESTS.order_by(t.order_requests.c.id.desc())
    if commanditaire_id is not None:
        query = query.where(t.order_requests.c.commanditaire_id == commanditaire_id)
    if status is not None:
        query = query.where(t.order_requests.c.status == status)
    return [_request(r) for r in conn.execute(query)]


def _list(form: Any, name: str) -> list[str]:
    """A form's repeated field (checkboxes): ``getlist`` on a request's form, a comma-separated string else."""
    if hasattr(form, "getlist"):
        return [v for v in form.getlist(name) if v.strip()]
    value = form.get(name, "")
    return [v for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)


def check_request(form: Any, today: date) -> dict[str, Any]:
    """The request form's values, checked; a ServiceError naming the fields that are wrong. Designated points
    are checked against the database by the caller (:func:`_check_points`)."""
    fields: dict[str, str] = {}
    values: dict[str, Any] = {}
    size = form.get("carnet_size", "").strip()
    if size not in ("5", "10"):
        fields["carnet_size"] = "Choisissez des carnets de 5 ou de 10 pass."
    else:
        values["carnet_size"] = int(size)
    quantity = form.get("quantity", "").strip()
    if not quantity.isdigit() or not 1 <= int(quantity) <= MAX_QUANTITY:
        fields["quantity"] = f"Indiquez un nombre de carnets entre 1 et {MAX_QUANTITY:,}.".replace(",", "\u202f")
    else:
        values["quantity"] = int(quantity)
    starts = form.get("starts_on", "").strip()
    values["starts_on"] = None
    if starts:
        try:
            values["starts_on"] = date.fromisoformat(starts)
        except ValueError:
            fields["starts_on"] = "Indiquez une date valable (jour, mois, année)."
    millesime = form.get("millesime", "").strip()
    if millesime:
        if not millesime.isdigit() or not today.year <= int(millesime) <= today.year + 1:
            fields["millesime"] = f"Le millésime est {today.year} ou {today.year + 1}."
        else:
            values["millesime"] = int(millesime)
    elif values["starts_on"] is not None:
        values["millesime"] = values["starts_on"].year
    else:
        fields["millesime"] = "Indiquez un millésime ou une date de début."
    start = values["starts_on"]
    if start is not None and "millesime" in values and start.year != values["millesime"]:
        fields["starts_on"] = "La date de début tombe dans l’année du millésime."
    codes = sorted({c.strip().upper() for c in form.get("territories", "").replace(" ", ",").split(",") if c.strip()})
    bad = [c for c in codes if not (is_departement(c) or is_commune(c))]
    if bad:
        fields["territories"] = f"Code INSEE inconnu : {', '.join(bad)} (un département, 33, ou une commune, 33039)."
    values["territories"] = ",".join(codes)
    kinds = sorted({k.strip() for k in _list(form, "place_types")})
    if any(k not in TYPOLOGIES for k in kinds):
        fields["place_types"] = "Type de lieu inconnu."
    values["place_types"] = ",".join(kinds)
    try:
        values["points"] = ",".join(str(p) for p in sorted({int(p) for p in _list(form, "points")}))
    except ValueError:
        fields["points"] = "Point de présence inconnu."
    selection = ",".join([*_list(form, "categories"), form.get("services", "").replace(" ", "")])
    try:
        numbers, categories = referentiel.parse_selection(selection)
    except ValueError:
        fields["services"] = "Indiquez des numéros de services du référentiel (1 à 129), par exemple 84-95, 12."
    else:
        values["services"] = ",".join([*sorted(categories), *(str(n) for n in sorted(numbers))])
    if fields:
        raise ServiceError(400, "invalid_request", "La commande n’est pas valable : corrigez les champs signalés.",
                           fields)  # fmt: skip
    return values


def create_request(engine: Engine, commanditaire_id: int, form: dict[str, str], by: int, now: datetime, *,
                   ip: str | None = None) -> int:  # fmt: skip
    """A draft order request of the funder, from the form's values (checked)."""
    from central.services.common import local_date

    values = check_request(form, local_date(now))
    with write_transaction(engine) as conn:
        _check_points(conn, values["points"])
        new_id = conn.execute(
            insert(t.order_requests)
            .values(commanditaire_id=commanditaire_id, status="draft", created_by=by, created_at=now, **values)
            .returning(t.order_requests.c.id)
        ).scalar_one()
        accounts.audit(conn, now, by, "funder.request_created", target=str(new_id),
                       details={"carnets": values["quantity"], "taille": values["carnet_size"]}, ip=ip)  # fmt: skip
    return int(new_id)


def _check_points(conn: Connection, points: str) -> None:
    wanted = {int(p) for p in split_codes(points)}
    known = {p for p, _ in designatable_points(conn)} if wanted else set()
    if wanted - known:
        raise ServiceError(400, "invalid_request", "La commande n’est pas valable : corrigez les champs signalés.",
                           {"points": "Ce point de présence n’est pas celui d’un lieu qualifié."})  # fmt: skip


def update_request(engine: Engine, commanditaire_id: int, request_id: int, form: Any, by: int, now: datetime, *,
                   ip: str | None = None) -> None:  # fmt: skip
    """A draft changed: the same checks as a new request. A submitted request is the operator's: 409."""
    from central.services.common import local_date

    values = check_request(form, local_date(now))
    with write_transaction(engine) as conn:
        _check_points(conn, values["points"])
        if _load_request(conn, request_id, commanditaire_id).status != "draft":
            raise ServiceError(409, "not_a_draft", "Seul un brouillon se modifie : cette commande a été soumise.")
        conn.execute(update(t.order_requests).where(t.order_requests.c.id == request_id).values(**values))
        accounts.audit(conn, now, by, "funder.request_changed", target=str(request_id),
                       details={"carnets": values["quantity"], "taille": values["carnet_size"]}, ip=ip)  # fmt: skip


def withdraw_request(engine: Engine, commanditaire_id: int, request_id: int, by: int, now: datetime, *,
                     ip: str | None = None) -> Request:  # fmt: skip
    """A draft or a submitted request withdrawn by its funder (kept, as « Retirée »). Once paid, the money is
    the operator's to return: 409."""
    with write_transaction(engine) as conn:
        found = _load_request(conn, request_id, commanditaire_id)
        withdrawn = conn.execute(
            update(t.order_requests)
            .where(t.order_requests.c.id == request_id, t.order_requests.c.status.in_(("draft", "submitted")))
            .values(status="withdrawn")
        ).rowcount
        if not withdrawn:
            raise ServiceError(409, "not_withdrawable", "Cette commande ne peut plus être retirée : "
                               "elle est payée ou déjà retirée. Contactez l’opérateur.")  # fmt: skip
        accounts.audit(conn, now, by, "funder.request_withdrawn", target=str(request_id), ip=ip)
    return found


def _load_request(conn: Connection, request_id: int, commanditaire_id: int | None) -> Request:
    query = _REQUESTS.where(t.order_requests.c.id == request_id)
    if commanditaire_id is not None:
        query = query.where(t.order_requests.c.commanditaire_id == commanditaire_id)
    row = conn.execute(query).first()
    if row is None:
        raise ServiceError(404, "unknown_request", "Commande inconnue.")
    return _request(row)


def submit_request(engine: Engine, commanditaire_id: int, request_id: int, by: int, now: datetime, *,
                   ip: str | None = None) -> Request:  # fmt: skip
    """Draft → submitted: the operator now sees it, to activate once paid."""
    with write_transaction(engine) as conn:
        found = _load_request(conn, request_id, commanditaire_id)
        if found.status != "draft":
            raise ServiceError(409, "not_a_draft", "Cette commande a déjà été soumise.")
        conn.execute(update(t.order_requests).where(t.order_requests.c.id == request_id)
                     .values(status="submitted", submitted_at=now))  # fmt: skip
        accounts.audit(conn, now, by, "funder.request_submitted", target=str(request_id), ip=ip)
    return found


def record_payment(engine: Engine, request_id: int, reference: str, by: int | None, now: datetime, *,
                   ip: str | None = None) -> Request:  # fmt: skip
    """The operator's « Paiement reçu »: submitted → paid, with the transfer's or the mandat's reference."""
    reference = " ".join(reference.split())
    if not 3 <= len(reference) <= 100:
        raise ServiceError(
            400,
            "invalid_reference",
            "Indiquez la référence du paiement (virement ou mandat).",
            {"reference": "Indiquez la référence du virement ou le numéro de mandat (3 à 100 signes)."},
        )
    with write_transaction(engine) as conn:
        found = _load_request(conn, request_id, None)
        paid = conn.execute(
            update(t.order_requests)
            .where(t.order_requests.c.id == request_id, t.order_requests.c.status == "submitted")
            .values(status="paid", paid_at=now, payment_reference=reference)
        ).rowcount
        if not paid:
            raise ServiceError(409, "not_submitted", "Cette demande n’attend pas de paiement.")
        accounts.audit(conn, now, by, "operator.request_paid", target=str(request_id),
                       details={"reference": reference, "financeur": found.funder}, ip=ip)  # fmt: skip
    return found


def activate_request(engine: Engine, secret: bytes, request_id: int, reason: str, by: int | None, now: datetime, *,
                     ip: str | None = None) -> int:  # fmt: skip
    """The operator's « Activer » once the request is paid: issue its carnets (activated) with every restriction
    the funder asked for, link the new order. Returns its id.

    The request is claimed first (submitted → activated, in its own transaction), so a second click finds it
    activated and issues nothing; should the issue then fail, the claim is given back."""
    from central.services.operator import clean_reason

    reason = clean_reason(reason)
    with write_transaction(engine) as conn:
        found = _load_request(conn, request_id, None)
        claimed = conn.execute(
            update(t.order_requests)
            .where(t.order_requests.c.id == request_id, t.order_requests.c.status == "paid")
            .values(status="activated")
        ).rowcount
    if not claimed:
        raise ServiceError(409, "not_paid", "Cette commande n’est pas en attente d’activation : "
                           "son paiement doit être enregistré d’abord, et elle ne s’active qu’une fois.")  # fmt: skip
    try:
        issued = admin.issue_carnets(engine, secret, now, commanditaire=found.funder, millesime=found.millesime,
                                     carnets=found.quantity, size=found.carnet_size, territories=found.territories,
                                     starts_on=found.starts_on, activated=True, with_passes=False,
                                     place_types=found.place_types, points=found.points,
                                     services=found.services)  # fmt: skip
    except Exception:
        with write_transaction(engine) as conn:
            conn.execute(update(t.order_requests).where(t.order_requests.c.id == request_id)
                         .values(status="paid"))  # fmt: skip
        raise
    order_id = int(issued["order"])
    with write_transaction(engine) as conn:
        conn.execute(update(t.order_requests).where(t.order_requests.c.id == request_id).values(order_id=order_id))
        accounts.audit(conn, now, by, "operator.request_activated", target=str(request_id),
                       details={"reason": reason, "commande": order_id}, ip=ip)  # fmt: skip
    return order_id


# --- Orders and their use -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLine:
    id: int
    millesime: int
    carnet_size: int
    carnets: int
    activated: bool
    passes_used: int
    created_at: datetime

    @property
    def passes(self) -> int:
        return self.carnets * self.carnet_size


def orders(conn: Connection, commanditaire_id: int) -> list[OrderLine]:
    """The funder's orders (issued carnets), newest first, with how many of their passes were used."""
    o = t.orders.c
    used = (
        select(func.count())
        .select_from(t.pass_uses.join(t.carnets, t.carnets.c.carnet == t.pass_uses.c.carnet))
        .where(t.carnets.c.order_id == o.id)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(t.orders, used.label("used")).where(o.commanditaire_id == commanditaire_id).order_by(o.id.desc())
    )
    return [OrderLine(r.id, r.millesime, r.carnet_size, r.serial_last - r.serial_first + 1, bool(r.activated),
                      int(r.used), utc(r.created_at)) for r in rows]  # fmt: skip


def _order_row(conn: Connection, commanditaire_id: int, order_id: int) -> Any:
    row = conn.execute(
        select(t.orders).where(t.orders.c.id == order_id, t.orders.c.commanditaire_id == commanditaire_id)
    ).first()
    if row is None:
        raise ServiceError(404, "unknown_order", "Commande inconnue.")
    return row


def _uses(conn: Connection, order_id: int) -> list[Any]:
    u = t.pass_uses.c
    return list(
        conn.execute(
            select(
                u.local_date,
                u.pass_number,
                u.carnet,
                u.service,
                t.organisations.c.name.label("organisation"),
                t.points.c.name.label("point"),
            )
            .join(t.carnets, t.carnets.c.carnet == u.carnet)
            .join(t.organisations, t.organisations.c.id == u.organisation_id)
            .outerjoin(t.points, t.points.c.id == u.point_id)
            .where(t.carnets.c.order_id == order_id)
            .order_by(u.local_date, u.id)
        )
    )


def _service_title(number: int) -> str:
    try:
        return referentiel.service(number).title
    except KeyError:
        return f"Service {number}"


def report(conn: Connection, commanditaire_id: int, order_id: int, today: date) -> dict[str, Any]:
    """One order's use: carnets issued, started, used up, passes used, uses by month, place and service, and
    whether its validity ends within ``ALERT_BEFORE`` (the rules' ``valid_until``: 31 December of the
    millésime)."""
    row = _order_row(conn, commanditaire_id, order_id)
    carnets = row.serial_last - row.serial_first + 1
    # Grouped queries over the order's uses, never a loop over each use (an order of 1,000 carnets has up to
    # 10,000): the uses are selected by carnet, the prefix of pass_uses' unique index.
    u = t.pass_uses.c
    of_order = u.carnet.in_(select(t.carnets.c.carnet).where(t.carnets.c.order_id == order_id))

    def grouped(*columns: Any) -> list[Any]:
        return list(conn.execute(select(*columns, func.count().label("n")).where(of_order).group_by(*columns)))

    per_carnet = [r.n for r in grouped(u.carnet)]
    months: dict[str, int] = {}
    for r in grouped(u.local_date):  # a day a group: at most a few hundred
        months[r.local_date.strftime("%Y-%m")] = months.get(r.local_date.strftime("%Y-%m"), 0) + r.n
    places: dict[tuple[str, str], int] = {}
    by_point = grouped(u.organisation_id, u.point_id)
    organisations = dict(conn.execute(select(t.organisations.c.id, t.organisations.c.name).where(
        t.organisations.c.id.in_({r.organisation_id for r in by_point}))).all())  # fmt: skip
    points = dict(conn.execute(select(t.points.c.id, t.points.c.name).where(
        t.points.c.id.in_({r.point_id for r in by_point if r.point_id is not None}))).all())  # fmt: skip
    for r in by_point:
        place = (organisations.get(r.organisation_id, "?"), points.get(r.point_id, ""))
        places[place] = places.get(place, 0) + r.n
    services = {r.service: r.n for r in grouped(u.service)}
    rule = RuleOrder(commanditaire="", millesime=row.millesime, starts_on=row.starts_on)
    valid_until = rule.valid_until
    c = t.carnets.c
    handed = list(
        conn.execute(
            select(c.distributed_to, func.count().label("n"), func.min(c.serial).label("first"),
                   func.max(c.serial).label("last"), func.max(c.distributed_at).label("at"))
            .where(c.order_id == order_id, c.distributed_at.is_not(None))
            .group_by(c.distributed_to)
            .order_by(func.min(c.serial))
        )
    )  # fmt: skip
    distributed = sum(r.n for r in handed)
    distributions = [
        (r.distributed_to, r.n, passnumber.carnet_id(row.millesime, r.first),
         passnumber.carnet_id(row.millesime, r.last), utc(r.at))
        for r in handed
    ]  # fmt: skip
    return {
        "id": row.id,
        "millesime": row.millesime,
        "size": row.carnet_size,
        "activated": bool(row.activated),
        "carnets": carnets,
        "passes": carnets * row.carnet_size,
        "started": len(per_carnet),
        "distributed": distributed,
        "not_distributed": carnets - distributed,
        "distributions": distributions,
        "first_carnet": passnumber.carnet_id(row.millesime, row.serial_first),
        "last_carnet": passnumber.carnet_id(row.millesime, row.serial_last),
        "used_up": sum(1 for n in per_carnet if n >= row.carnet_size),
        "passes_used": sum(per_carnet),
        "by_month": sorted(months.items()),
        "by_place": sorted(places.items(), key=lambda item: (-item[1], item[0])),
        "by_service": sorted(((n, _service_title(n), c) for n, c in services.items()), key=lambda s: (-s[2], s[0])),
        "valid_from": rule.valid_from,
        "valid_until": valid_until,
        "ends_soon": today <= valid_until and valid_until - today <= ALERT_BEFORE,
        "days_left": (valid_until - today).days,
    }


def _serial(text: str, millesime: int) -> int | None:
    """A carnet as the funder types it: its 10 digits as printed (« 1 26 0001234 », spaces allowed) or its serial
    alone (« 1234 »)."""
    digits = "".join(text.split())
    if not digits.isdigit():
        return None
    if len(digits) == 10:
        return int(digits[3:]) if digits == passnumber.carnet_id(millesime, int(digits[3:])) else None
    return int(digits) if len(digits) <= 7 else None


def distribute(engine: Engine, commanditaire_id: int, order_id: int, form: Any, by: int, now: datetime, *,
               ip: str | None = None) -> int:  # fmt: skip
    """Carnets ``first``..``last`` of the order handed to a distributor (a CCAS, an association) who gives them
    to beneficiaries; a carnet already recorded is recorded again (a correction). Returns how many carnets."""
    fields: dict[str, str] = {}
    distributor = " ".join(form.get("distributor", "").split())
    if not 2 <= len(distributor) <= DISTRIBUTOR_MAX:
        fields["distributor"] = "Indiquez à qui les carnets ont été remis (une structure, un service)."
    with write_transaction(engine) as conn:
        row = _order_row(conn, commanditaire_id, order_id)
        bounds = []
        for name in ("first", "last"):
            serial = _serial(form.get(name, ""), row.millesime)
            if serial is None or not row.serial_first <= serial <= row.serial_last:
                first, last = (passnumber.carnet_id(row.millesime, s) for s in (row.serial_first, row.serial_last))
                fields[name] = (f"Indiquez un carnet de cette commande, de {first[0]} {first[1:3]} {first[3:]} "
                                f"à {last[0]} {last[1:3]} {last[3:]}.")  # fmt: skip
            bounds.append(serial or 0)
        if not fields and bounds[0] > bounds[1]:
            fields["last"] = "Le dernier carnet vient après le premier."
        if fields:
            raise ServiceError(400, "invalid_distribution", "La distribution n’est pas valable : corrigez les "
                               "champs signalés.", fields)  # fmt: skip
        count = conn.execute(
            update(t.carnets)
            .where(t.carnets.c.order_id == order_id, t.carnets.c.serial.between(bounds[0], bounds[1]))
            .values(distributed_at=now, distributed_to=distributor)
        ).rowcount
        accounts.audit(conn, now, by, "funder.carnets_distributed", target=str(order_id),
                       details={"carnets": count, "premier": passnumber.carnet_id(row.millesime, bounds[0]),
                                "dernier": passnumber.carnet_id(row.millesime, bounds[1]),
                                "distributeur": distributor}, ip=ip)  # fmt: skip
    return int(count)


CSV_FIELDS = ("date", "pass", "carnet", "service", "intitule_service", "organisation", "point")


def uses_csv(conn: Connection, commanditaire_id: int, order_id: int) -> str:
    """The order's uses, one line per pass used, as CSV (text cells neutralised against formula injection)."""
    _order_row(conn, commanditaire_id, order_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for use in _uses(conn, order_id):
        writer.writerow([use.local_date.isoformat(), use.pass_number, use.carnet, use.service,
                         neutralise(_service_title(use.service)), neutralise(use.organisation),
                         neutralise(use.point or "")])  # fmt: skip
    return out.getvalue()
