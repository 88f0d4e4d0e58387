"""What the scheme's operator does in the console: qualify organisations, block carnets, activate orders, close
months and mark statements paid, act on the fleet, read the whole audit log.

Every action takes the operator's **reason** (required: the audit log must say why, not just what) and is
audited with it. Where this module writes itself, the audit entry is in the same transaction as the change;
where it reuses a service that opens its own transaction (``admin.set_order_activated``,
``statements.close_month``, ``fleet.send_command``, ``fleet.change_rollout``, ``admin.reissue_code``), the
entry is written right after that service succeeded: a refused action is never audited, a crash between the
two would lose the entry but not the change.

Changes the terminals must learn call ``record_change``: an organisation's qualification (its points then
refuse or accept passes offline too) and a carnet's block or unblock (``services.snapshot`` sends a full
snapshot after an unblock, since terminals only add to their set of blocked carnets).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, func, select, update

from aptic.passnumber import LENGTH, Authenticator, PassNumberError, carnet_id, normalise
from central import schema as t
from central.db import utc, write_transaction
from central.services import admin, fleet, statements
from central.services.accounts import audit
from central.services.common import ServiceError, local_date, record_change

REASON_MAX = 500
REASON_MISSING = "Indiquez le motif : il est conservé dans le journal."


def clean_reason(reason: str | None) -> str:
    """The operator's reason, trimmed; a 400 on the ``reason`` field when it is empty or too long."""
    text = " ".join((reason or "").split())
    if not text:
        raise ServiceError(400, "missing_reason", REASON_MISSING, {"reason": REASON_MISSING})
    if len(text) > REASON_MAX:
        message = f"Le motif est trop long ({REASON_MAX} caractères au plus)."
        raise ServiceError(400, "invalid_reason", message, {"reason": message})
    return text


# --- Organisations ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    siret: str
    qualified: bool
    reason: str
    decided_at: datetime | None
    points: int
    devices: int


def organisations(conn: Connection) -> list[Organisation]:
    """Every organisation, by name, with its qualification and how many points and active devices it has."""
    o = t.organisations.c
    points = select(func.count()).where(t.points.c.organisation_id == o.id).scalar_subquery()
    devices = (
        select(func.count())
        .where(t.devices.c.organisation_id == o.id, t.devices.c.revoked_at.is_(None))
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            o.id,
            o.name,
            o.siret,
            o.qualified,
            o.qualification_reason,
            o.qualified_at,
            points.label("points"),
            devices.label("devices"),
        ).order_by(o.name, o.id)
    )
    return [
        Organisation(
            r.id,
            r.name,
            r.siret,
            bool(r.qualified),
            r.qualification_reason or "",
            utc(r.qualified_at),
            int(r.points),
            int(r.devices),
        )
        for r in rows
    ]


def set_qualification(engine: Engine, organisation_id: int, qualified: bool, reason: str, by: int | None,
                      now: datetime, *, ip: str | None = None) -> str:  # fmt: skip
    """Qualify (or refuse) an organisation: while refused, its points refuse every pass (``place_not_qualified``),
    online and, once their snapshot is refreshed, offline. Returns its name."""
    reason = clean_reason(reason)
    with write_transaction(engine) as conn:
        name = conn.execute(
            select(t.organisations.c.name).where(t.organisations.c.id == organisation_id)
        ).scalar_one_or_none()
        if name is None:
            raise ServiceError(404, "unknown_organisation", "Organisation inconnue.")
        conn.execute(
            update(t.organisations)
            .where(t.organisations.c.id == organisation_id)
            .values(qualified=qualified, qualification_reason=reason, qualified_at=now)
        )
        record_change(conn, "organisation", organisation_id, now)
        audit(conn, now, by, "operator.qualified" if qualified else "operator.refused",
              organisation_id=organisation_id, target=str(name), details={"reason": reason}, ip=ip)  # fmt: skip
    return str(name)


# --- Carnets ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Carnet:
    carnet: str
    order_id: int
    funder: str
    millesime: int
    size: int
    activated: bool
    blocked_at: datetime | None
    blocked_reason: str


def carnet_of(text: str) -> str:
    """The 10-digit carnet id named by ``text``: a carnet id, or a whole pass number (typed or scanned, with
    spaces or through an AZERTY keyboard). A 400 on the ``carnet`` field otherwise."""
    try:
        digits = normalise(text).digits
    except PassNumberError as error:
        raise ServiceError(400, "invalid_carnet", error.message_fr, {"carnet": error.message_fr}) from None
    if len(digits) == LENGTH:
        return digits[:10]
    if len(digits) == 10:
        return digits
    message = "Saisissez un numéro de carnet (10 chiffres) ou un numéro de pass (18 chiffres)."
    raise ServiceError(400, "invalid_carnet", message, {"carnet": message})


def find_carnet(conn: Connection, text: str) -> Carnet:
    """The carnet ``text`` names (see :func:`carnet_of`), with its order and funder; 404 when never issued."""
    carnet = carnet_of(text)
    row = conn.execute(
        select(t.carnets, t.orders.c.activated, t.commanditaires.c.name.label("funder"))
        .join(t.orders, t.orders.c.id == t.carnets.c.order_id)
        .join(t.commanditaires, t.commanditaires.c.id == t.orders.c.commanditaire_id)
        .where(t.carnets.c.carnet == carnet)
    ).first()
    if row is None:
        message = f"Aucun carnet {carnet} n’a été émis."
        raise ServiceError(404, "unknown_carnet", message, {"carnet": message})
    return Carnet(row.carnet, row.order_id, row.funder, row.millesime, row.size, bool(row.activated),
                  utc(row.blocked_at), row.blocked_reason or "")  # fmt: skip


def set_blocked(engine: Engine, carnet: str, blocked: bool, reason: str, by: int | None, now: datetime, *,
                ip: str | None = None) -> Carnet:  # fmt: skip
    """Block a carnet (lost, stolen, withdrawn by its funder) or unblock it. Scans made before a block still
    count. Doing what is already done is refused (409), so the log never holds an action that changed nothing."""
    reason = clean_reason(reason)
    with write_transaction(engine) as conn:
        found = find_carnet(conn, carnet)
        if (found.blocked_at is not None) == blocked:
            message = "Ce carnet est déjà bloqué." if blocked else "Ce carnet n’est pas bloqué."
            raise ServiceError(409, "unchanged", message)
        conn.execute(
            update(t.carnets)
            .where(t.carnets.c.carnet == found.carnet)
            .values(blocked_at=now if blocked else None, blocked_reason=reason if blocked else None)
        )
        record_change(conn, "carnet", found.carnet, now)
        audit(conn, now, by, "operator.carnet_blocked" if blocked else "operator.carnet_unblocked",
              target=found.carnet, details={"reason": reason}, ip=ip)  # fmt: skip
        return find_carnet(conn, found.carnet)


# --- Orders -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    funder: str
    millesime: int
    first: str
    last: str
    carnets: int
    size: int
    activated_at: datetime | None
    activated: bool
    cancelled: bool
    created_at: datetime


def orders(conn: Connection) -> list[Order]:
    """Every order, newest first, with its funder and its range of carnets."""
    o = t.orders.c
    rows = conn.execute(
        select(t.orders, t.commanditaires.c.name.label("funder"))
        .join(t.commanditaires, t.commanditaires.c.id == o.commanditaire_id)
        .order_by(o.id.desc())
    )
    return [
        Order(
            r.id,
            r.funder,
            r.millesime,
            carnet_id(r.millesime, r.serial_first),
            carnet_id(r.millesime, r.serial_last),
            r.serial_last - r.serial_first + 1,
            r.carnet_size,
            utc(r.activated_at),
            bool(r.activated),
            r.cancelled_at is not None,
            utc(r.created_at),
        )  # type: ignore[arg-type]
        for r in rows
    ]


def activate_order(engine: Engine, order_id: int, reason: str, by: int | None, now: datetime, *,
                   ip: str | None = None) -> None:  # fmt: skip
    """Mark an order paid: its passes become usable (``admin.set_order_activated``, which tells terminals)."""
    reason = clean_reason(reason)
    admin.set_order_activated(engine, order_id, now, activated=True)
    with write_transaction(engine) as conn:
        audit(conn, now, by, "operator.order_activated", target=str(order_id), details={"reason": reason}, ip=ip)


def print_order(engine: Engine, auth: Authenticator, order_id: int, reason: str, out: BinaryIO, by: int | None,
                now: datetime, *, ip: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The order's lettre d'orientation and carnets as one PDF written to ``out`` (``services.carnet_print``);
    audited, with the reason, once written: printed passes are money, whoever holds their numbers can spend
    them."""
    from central.services import carnet_print

    reason = clean_reason(reason)
    result = carnet_print.write(engine, auth, carnet_print.letter(engine, order_id, local_date(now)), out)
    with write_transaction(engine) as conn:
        audit(conn, now, by, "operator.carnets_printed", target=str(order_id),
              details={"reason": reason, "carnets": result["carnets"]}, ip=ip)  # fmt: skip
    return result


# --- Statements ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    organisation_id: int
    organisation: str
    month: str
    passes: int
    net_cents: int
    closed_at: datetime
    paid_at: datetime | None


def closed_statements(conn: Connection, limit: int = 200) -> list[Statement]:
    """The frozen statements, newest month first (then by organisation)."""
    s = t.statements.c
    rows = conn.execute(
        select(s.organisation_id, t.organisations.c.name, s.month, s.document, s.closed_at, s.paid_at)
        .join(t.organisations, t.organisations.c.id == s.organisation_id)
        .order_by(s.month.desc(), t.organisations.c.name)
        .limit(limit)
    )
    return [
        Statement(
            r.organisation_id,
            r.name,
            r.month,
            int(r.document["passes"]),
            int(r.document["net_cents"]),
            utc(r.closed_at),
            utc(r.paid_at),
        )  # type: ignore[arg-type]
        for r in rows
    ]


def closed_months(conn: Connection) -> list[str]:
    return sorted(statements.closed_month_set(conn), reverse=True)


def closable_month(now: datetime) -> str:
    """The month an operator usually closes: the previous one."""
    last_day = local_date(now).replace(day=1) - timedelta(days=1)
    return f"{last_day:%Y-%m}"


def close_month(engine: Engine, month: str, reason: str, by: int | None, now: datetime, *,
                ip: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Freeze a month's statements (``statements.close_month``)."""
    reason = clean_reason(reason)
    try:
        result = statements.close_month(engine, month.strip(), now)
    except ServiceError as error:
        raise ServiceError(error.status, error.code, error.message, {"month": error.message}) from None
    with write_transaction(engine) as conn:
        audit(conn, now, by, "operator.month_closed", target=month.strip(),
              details={"reason": reason, "statements": len(result["statements"])}, ip=ip)  # fmt: skip
    return result


def mark_paid(engine: Engine, organisation_id: int, month: str, reason: str, by: int | None, now: datetime, *,
              ip: str | None = None) -> None:  # fmt: skip
    """Record that an organisation's closed statement of ``month`` was paid (the transfer left): its members see
    « Payé le … ». 404 for a statement that does not exist (month not closed, nothing to pay), 409 if paid."""
    reason = clean_reason(reason)
    s = t.statements.c
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(s.id, s.paid_at).where(s.organisation_id == organisation_id, s.month == month)
        ).first()
        if row is None:
            raise ServiceError(404, "unknown_statement", f"Aucun relevé clos de {month} pour cette organisation.")
        if row.paid_at is not None:
            raise ServiceError(409, "already_paid", "Ce relevé est déjà marqué payé.")
        conn.execute(update(t.statements).where(s.id == row.id).values(paid_at=now))
        audit(conn, now, by, "operator.statement_paid", organisation_id=organisation_id, target=month,
              details={"reason": reason}, ip=ip)  # fmt: skip


# --- The fleet ----------------------------------------------------------------------------------------------

COMMAND_LABELS = {
    "reboot": "Redémarrer",
    "resync": "Resynchroniser",
    "restart_kiosk": "Relancer le kiosque",
    "upload_logs": "Envoyer les journaux",
    "screenshot": "Capture d’écran",
    "reactivate": "Réactiver",
}
STATUS_LABELS = {
    "pending": "en attente", "received": "reçue", "started": "commencée", "done": "faite", "failed": "échouée",
    "expired": "expirée", "interrupted": "interrompue",
}  # fmt: skip


def fleet_view(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Every device (``fleet.list_devices``, with its alerts) with its organisation's name and points, and its
    latest commands."""
    names = dict(conn.execute(select(t.organisations.c.id, t.organisations.c.name)).all())
    points: dict[int, list[str]] = {}
    for org_id, name in conn.execute(select(t.points.c.organisation_id, t.points.c.name).order_by(t.points.c.id)):
        points.setdefault(org_id, []).append(name)
    devices = fleet.list_devices(conn, None, now)
    for device in devices:
        device["organisation"] = names.get(device["organisation_id"], "")
        device["points"] = points.get(device["organisation_id"], [])
        device["commands"] = fleet.commands_of(conn, device["id"], now, limit=5)
    return devices


def send_command(engine: Engine, device_id: int, kind: str, reason: str, by: int | None, now: datetime, *,
                 ip: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Queue a command for a device (``fleet.send_command``); it goes out with its next desired state."""
    reason = clean_reason(reason)
    command = fleet.send_command(engine, device_id, kind, now)
    with write_transaction(engine) as conn:
        audit(conn, now, by, "operator.command", target=str(device_id),
              details={"reason": reason, "command": kind, "id": command["id"]}, ip=ip)  # fmt: skip
    return command


SETTING_LABELS = {
    "point_id": "Point de présence (numéro)",
    "log_level": "Niveau du journal",
    "heartbeat_interval": "Intervalle des signes de vie (secondes)",
    "sync_interval": "Intervalle de synchronisation (secondes)",
    "check_timeout": "Attente de la vérification en ligne (secondes)",
    "poll_interval": "Intervalle de lecture des consignes (secondes)",
    "scanner_layout": "Clavier des douchettes (auto, us, fr)",
}
SCOPE_LABELS = {"fleet": "Tout le parc", "organisation": "Une organisation", "device": "Une borne"}


def setting_levels(conn: Connection) -> list[dict[str, Any]]:
    """Every level that sets something (the fleet, organisations, devices) with its settings, fleet first."""
    names = dict(conn.execute(select(t.organisations.c.id, t.organisations.c.name)).all())
    rows = conn.execute(select(t.fleet_settings).order_by(t.fleet_settings.c.scope.desc(), t.fleet_settings.c.ref))
    levels = []
    for row in rows:
        if not row.settings:
            continue
        where = {"fleet": "Tout le parc", "organisation": f"Organisation {row.ref} ({names.get(row.ref, '?')})",
                 "device": f"Borne {row.ref}"}[row.scope]  # fmt: skip
        levels.append({"scope": row.scope, "ref": row.ref, "where": where, "settings": sorted(row.settings.items())})
    return levels


def change_setting(engine: Engine, form: Mapping[str, str], by: int | None, now: datetime, *,
                   ip: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One fleet setting set (or, with an empty value, removed) at one level (``fleet.set_settings``): the devices
    it reaches learn it at their next read of their desired state. ``form``: scope, ref (an organisation's or a
    device's number), name, value, reason."""
    reason = clean_reason(form.get("reason", ""))
    scope, name, raw = form.get("scope", ""), form.get("name", ""), form.get("value", "").strip()
    fields: dict[str, str] = {}
    if scope not in SCOPE_LABELS:
        fields["scope"] = "Choisissez le niveau du réglage."
    ref = 0
    if scope in ("organisation", "device"):
        text = form.get("ref", "").strip()
        if not text.isdigit():
            fields["ref"] = "Indiquez le numéro de l’organisation ou de la borne."
        else:
            ref = int(text)
    if name not in SETTING_LABELS:
        fields["name"] = "Choisissez un réglage."
    if fields:
        raise ServiceError(400, "invalid_setting", "Le réglage n’est pas valable : corrigez les champs signalés.",
                           fields)  # fmt: skip
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw  # a word (INFO, fr), as the command line reads it
    try:
        if raw:
            result = fleet.set_settings(engine, scope, ref, {name: value}, now)
        else:
            result = fleet.set_settings(engine, scope, ref, {}, now, unset=[name])
    except ServiceError as error:
        field = "ref" if error.status == 404 else "value"
        message = "Numéro inconnu." if error.status == 404 else f"Valeur refusée : {error.fields.get('settings', '')}."
        raise ServiceError(error.status, error.code, error.message, {field: message}) from None
    with write_transaction(engine) as conn:
        audit(conn, now, by, "operator.setting", target=f"{scope}:{ref}" if scope != "fleet" else "fleet",
              details={"reason": reason, "setting": name, "value": raw or "(retiré)"}, ip=ip)  # fmt: skip
    return result


def reissue_code(engine: Engine, kit_number: str, reason: str, by: int | None, now: datetime, *,
                 ip: str | None = None) -> dict[str, str]:  # fmt: skip
    """A fresh activation code for a kit (``admin.reissue_code``). The code is shown once and never logged."""
    reason = clean_reason(reason)
    kit_number = kit_number.strip().upper()
    try:
        result = admin.reissue_code(engine, kit_number, now)
    except ServiceError as error:
        raise ServiceError(error.status, error.code, error.message, {"kit": error.message}) from None
    with write_transaction(engine) as conn:
        audit(conn, now, by, "operator.code_reissued", target=kit_number, details={"reason": reason}, ip=ip)
    return result


def rollouts(engine: Engine) -> list[dict[str, Any]]:
    """Every rollout, newest first, with how many devices it picks and how many run its version."""
    with engine.connect() as conn:
        ids = conn.execute(select(t.rollouts.c.id).order_by(t.rollouts.c.id.desc())).scalars().all()
    return [fleet.rollout(engine, rollout_id) for rollout_id in ids]


def change_rollout(engine: Engine, rollout_id: int, action: str, reason: str, by: int | None, now: datetime, *,
                   percent: str = "", ip: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Pause, resume or widen (to ``percent``) a rollout (``fleet.change_rollout``)."""
    reason = clean_reason(reason)
    if action == "widen":
        try:
            share = int(percent)
        except ValueError:
            message = "Indiquez un pourcentage entier entre 0 et 100."
            raise ServiceError(400, "invalid_percent", message, {"percent": message}) from None
        try:
            result = fleet.change_rollout(engine, rollout_id, now, percent=share)
        except ServiceError as error:
            raise ServiceError(error.status, error.code, error.message, {"percent": error.message}) from None
    elif action in ("pause", "resume"):
        result = fleet.change_rollout(engine, rollout_id, now, status="paused" if action == "pause" else "active")
    else:
        raise ServiceError(400, "invalid_request", "Action inconnue.")
    with write_transaction(engine) as conn:
        audit(conn, now, by, f"operator.rollout_{action}", target=str(rollout_id),
              details={"reason": reason, "percent": result["percent"], "status": result["status"]}, ip=ip)  # fmt: skip
    return result


# --- The audit log ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    email: str
    organisation: str
    action: str
    target: str
    details: dict[str, Any]
    ip: str


def journal(conn: Connection, *, page: int = 1, per_page: int = 50) -> tuple[list[Entry], int]:
    """One page of the whole audit log, newest first, and its number of entries."""
    log = t.audit_log.c
    total = conn.execute(select(func.count()).select_from(t.audit_log)).scalar_one()
    rows = conn.execute(
        select(log.at, log.action, log.target, log.details, log.ip, t.users.c.email, t.organisations.c.name)
        .select_from(
            t.audit_log.outerjoin(t.users, t.users.c.id == log.user_id).outerjoin(
                t.organisations, t.organisations.c.id == log.organisation_id
            )
        )
        .order_by(log.at.desc(), log.id.desc())
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    )
    entries = [
        Entry(utc(r.at), r.email or "", r.name or "", r.action, r.target, dict(r.details or {}), r.ip or "")  # type: ignore[arg-type]
        for r in rows
    ]
    return entries, int(total)
