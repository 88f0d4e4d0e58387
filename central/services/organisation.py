"""An organisation as its own members manage it in the console: administrative details, bank details, the
médiateur PIN of its kiosks, its members and invitations, and its audit log.

The rules that matter:

* the name and the SIRET are the operator's (it qualified the organisation with them): nothing here changes
  them;
* an IBAN is stored normalised (upper case, no spaces) once it passes ISO 13616's mod-97 check, and leaves
  this module only masked (:func:`mask_iban`): pages, and the audit log, show ``FR76 •••• … ••12 345``;
* every change is audited in its own transaction (``accounts.audit``), and a new PIN is recorded as a change
  the terminals pick up at their next sync.

Functions take the engine and ``now`` and raise :class:`~central.services.common.ServiceError` with a French
message and the fields at fault, like the other services.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from aptic.pin import hash_pin, valid_pin
from central import schema as t
from central.db import utc, write_transaction
from central.services import accounts
from central.services.common import ServiceError, load_organisation, record_change

# IBAN lengths of the countries a French mediation place may plausibly bank in (ISO 13616 registry); others
# are accepted within the standard's 15–34 characters.
IBAN_LENGTHS = {
    "FR": 27, "MC": 27, "DE": 22, "BE": 16, "ES": 24, "IT": 27, "LU": 20, "NL": 18, "PT": 25, "CH": 21,
    "GB": 22, "IE": 22, "AT": 20,
}  # fmt: skip
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_BIC_SHAPE = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_POSTCODE = re.compile(r"[0-9]{5}")
_PHONE = re.compile(r"\+?[0-9 .\-]{6,20}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MASK = "•"
SHOWN_AT_END = 5  # the last characters of a masked IBAN, enough to recognise one's account

DETAIL_FIELDS = ("address", "postcode", "commune", "contact_email", "phone")
_DETAIL_LIMITS = {"address": 300, "postcode": 5, "commune": 100, "contact_email": 254, "phone": 20}


# --- IBAN and BIC -------------------------------------------------------------------------------------------


def normalise_iban(text: str) -> str:
    """``fr76 3000 6000 …`` → ``FR7630006000…`` (what is stored and checked)."""
    return "".join(text.split()).replace("-", "").upper()


def iban_problem(iban: str) -> str | None:
    """Why a normalised IBAN is refused (a French sentence), or None when it passes ISO 13616's checks."""
    if not _IBAN_SHAPE.fullmatch(iban):
        return "Un IBAN commence par deux lettres (le pays) et deux chiffres, suivis de lettres et de chiffres."
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return f"Un IBAN {iban[:2]} compte {expected} caractères (celui-ci en compte {len(iban)})."
    # ISO 7064 mod 97-10: the first four characters moved to the end, letters as 10..35, the number ≡ 1 mod 97.
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    if int(digits) % 97 != 1:
        return "Cet IBAN n’est pas valable (la clé de contrôle ne correspond pas) : vérifiez chaque caractère."
    return None


def mask_iban(iban: str | None) -> str:
    """``FR7630006000011234567890189`` → ``FR76 •••• •••• •••• •••• ••01 89``-like: only the country, the
    check digits and the last characters, grouped by four like on a bank statement. Empty when unset."""
    if not iban:
        return ""
    hidden = len(iban) - 4 - SHOWN_AT_END
    masked = iban[:4] + MASK * max(hidden, 0) + iban[-SHOWN_AT_END:]
    return " ".join(masked[i : i + 4] for i in range(0, len(masked), 4))


def normalise_bic(text: str) -> str:
    return "".join(text.split()).upper()


def bic_problem(bic: str) -> str | None:
    if not _BIC_SHAPE.fullmatch(bic):
        return "Un BIC compte 8 ou 11 lettres et chiffres (par exemple AGRIFRPP ou AGRIFRPP882)."
    return None


# --- Details ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Details:
    """What the organisation page shows: never the IBAN itself, only its masked form."""

    id: int
    name: str
    siret: str
    address: str
    postcode: str
    commune: str
    contact_email: str
    phone: str
    iban_masked: str
    bic: str
    bank_holder: str
    has_pin: bool

    def value(self, name: str) -> str:
        return str(getattr(self, name))


def details(engine: Engine, organisation_id: int) -> Details:
    with engine.connect() as conn:
        row = load_organisation(conn, organisation_id)
    return Details(
        id=row.id, name=row.name, siret=row.siret, address=row.address or "", postcode=row.postcode or "",
        commune=row.commune or "", contact_email=row.contact_email or "", phone=row.phone or "",
        iban_masked=mask_iban(row.iban), bic=row.bic or "", bank_holder=row.bank_holder or "",
        has_pin=bool(row.mediateur_pin_hash),
    )  # fmt: skip


def update_details(
    engine: Engine, organisation_id: int, form: Mapping[str, str], by: int, now: datetime, *, ip: str | None = None
) -> list[str]:
    """Save the address, postcode, commune, contact e-mail and phone; returns the fields that changed (audited
    with their new values: nothing secret among them). Empty values clear a field."""
    values = {name: " ".join(str(form.get(name, "")).split()) for name in DETAIL_FIELDS}
    values["contact_email"] = values["contact_email"].lower()
    problems: dict[str, str] = {}
    for name, limit in _DETAIL_LIMITS.items():
        if len(values[name]) > limit:
            problems[name] = f"{limit} caractères au plus."
    if values["postcode"] and not _POSTCODE.fullmatch(values["postcode"]):
        problems["postcode"] = "Un code postal compte 5 chiffres."
    if values["contact_email"] and not _EMAIL.fullmatch(values["contact_email"]):
        problems["contact_email"] = "Adresse e-mail invalide (par exemple contact@mediatheque.fr)."
    if values["phone"] and not _PHONE.fullmatch(values["phone"]):
        problems["phone"] = "Numéro de téléphone invalide (par exemple 05 56 00 00 00)."
    if problems:
        raise ServiceError(400, "invalid_details", "Certains champs sont à corriger.", problems)
    with write_transaction(engine) as conn:
        row = load_organisation(conn, organisation_id)
        changed = {name: values[name] for name in DETAIL_FIELDS if (getattr(row, name) or "") != values[name]}
        if changed:
            conn.execute(
                update(t.organisations)
                .where(t.organisations.c.id == organisation_id)
                .values({name: value or None for name, value in changed.items()})
            )
            accounts.audit(conn, now, by, "organisation.details", organisation_id=organisation_id,
                           target=row.name, details=changed, ip=ip)  # fmt: skip
    return sorted(changed)


def update_bank(
    engine: Engine, organisation_id: int, iban: str, bic: str, holder: str, by: int, now: datetime,
    *, ip: str | None = None,
) -> str:  # fmt: skip
    """Save new bank details (all three together); returns the masked IBAN. The audit entry holds the masked
    IBAN only."""
    iban, bic, holder = normalise_iban(iban), normalise_bic(bic), " ".join(holder.split())
    problems: dict[str, str] = {}
    iban_refusal = iban_problem(iban) if iban else "L’IBAN est obligatoire."
    if iban_refusal:
        problems["iban"] = iban_refusal
    bic_refusal = bic_problem(bic) if bic else "Le BIC est obligatoire."
    if bic_refusal:
        problems["bic"] = bic_refusal
    if not holder:
        problems["holder"] = "Le titulaire du compte est obligatoire."
    elif len(holder) > 200:
        problems["holder"] = "200 caractères au plus."
    if problems:
        raise ServiceError(400, "invalid_bank_details", "Certains champs sont à corriger.", problems)
    with write_transaction(engine) as conn:
        row = load_organisation(conn, organisation_id)
        conn.execute(
            update(t.organisations)
            .where(t.organisations.c.id == organisation_id)
            .values(iban=iban, bic=bic, bank_holder=holder)
        )
        accounts.audit(conn, now, by, "organisation.bank", organisation_id=organisation_id, target=row.name,
                       details={"iban": mask_iban(iban), "bic": bic, "holder": holder}, ip=ip)  # fmt: skip
    return mask_iban(iban)


def set_pin(engine: Engine, organisation_id: int, pin: str, by: int, now: datetime, *, ip: str | None = None) -> None:
    """Set the médiateur PIN of the organisation's kiosks (what ``services.admin.set_pin`` does, with the audit
    entry in the same transaction). Its terminals get the new hash at their next sync."""
    if not valid_pin(pin):
        raise ServiceError(400, "invalid_pin", "Le code médiateur doit compter de 4 à 8 chiffres.", {"pin": "4–8"})
    with write_transaction(engine) as conn:
        row = load_organisation(conn, organisation_id)
        conn.execute(
            update(t.organisations)
            .where(t.organisations.c.id == organisation_id)
            .values(mediateur_pin_hash=hash_pin(pin))
        )
        record_change(conn, "organisation", organisation_id, now)
        accounts.audit(conn, now, by, "organisation.pin", organisation_id=organisation_id, target=row.name, ip=ip)


# --- Members and invitations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    email: str
    name: str
    role: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Invitation:
    email: str
    role: str
    sent_at: datetime
    expires_at: datetime


def _member_query(organisation_id: int) -> Any:
    return (
        select(t.users.c.id, t.users.c.email, t.users.c.name, t.memberships.c.role, t.memberships.c.created_at)
        .join(t.memberships, t.memberships.c.user_id == t.users.c.id)
        .where(t.memberships.c.organisation_id == organisation_id, t.users.c.disabled_at.is_(None))
    )


def _member(row: Any) -> Member:
    return Member(row.id, row.email, row.name or "", row.role, utc(row.created_at))  # type: ignore[arg-type]


def members(engine: Engine, organisation_id: int) -> list[Member]:
    """The organisation's members, admins first, then by e-mail."""
    with engine.connect() as conn:
        rows = conn.execute(_member_query(organisation_id)).all()
    return sorted((_member(r) for r in rows), key=lambda m: (m.role != "admin", m.email))


def member(engine: Engine, organisation_id: int, user_id: int) -> Member:
    """One member; 404 for a user who is not a member of this organisation."""
    with engine.connect() as conn:
        row = conn.execute(_member_query(organisation_id).where(t.users.c.id == user_id)).first()
    if row is None:
        raise ServiceError(404, "unknown_member", "Membre inconnu.")
    return _member(row)


def pending_invitations(engine: Engine, organisation_id: int, now: datetime) -> list[Invitation]:
    """Invitations sent and neither used nor expired, newest first."""
    tokens = t.account_tokens.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(tokens.email, tokens.role, tokens.created_at, tokens.expires_at)
            .where(tokens.kind == "invitation", tokens.organisation_id == organisation_id, tokens.used_at.is_(None),
                   tokens.expires_at > now)
            .order_by(tokens.created_at.desc())
        ).all()  # fmt: skip
    return [Invitation(r.email, r.role or "member", utc(r.created_at), utc(r.expires_at)) for r in rows]  # type: ignore[arg-type]


def invite(engine: Engine, organisation_id: int, email: str, role: str, by: int, now: datetime) -> str:
    """A single-use invitation link's token for ``email`` to join with ``role`` (audited as
    ``invitation.sent``); refused for a malformed address or someone already a member."""
    email = accounts.normalise_email(email)
    if not _EMAIL.fullmatch(email) or len(email) > 254:
        raise ServiceError(400, "invalid_email", "Adresse e-mail invalide.", {"email": "Adresse e-mail invalide."})
    if role not in accounts.ROLES:
        raise ServiceError(400, "invalid_role", "Choisissez un rôle.", {"role": "Choisissez un rôle."})
    with engine.connect() as conn:
        already = conn.execute(_member_query(organisation_id).where(t.users.c.email == email)).first()
    if already is not None:
        message = "Cette personne est déjà membre de l’organisation."
        raise ServiceError(409, "already_member", message, {"email": message})
    token = accounts.new_link(engine, "invitation", email, now, organisation_id=organisation_id, role=role,
                              created_by=by)  # fmt: skip
    assert token is not None  # only a reset link can be None
    return token


def organisation_name(engine: Engine, organisation_id: int) -> str:
    with engine.connect() as conn:
        return str(load_organisation(conn, organisation_id).name)


# --- Audit log ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    email: str  # who (empty: the system or the operator's command line)
    action: str
    target: str
    details: dict[str, Any]
    ip: str


def journal(engine: Engine, organisation_id: int, *, page: int = 1, per_page: int = 50) -> tuple[list[Entry], int]:
    """One page of the organisation's audit log, newest first, and the number of entries in all. Member
    changes name the member by id in the log: shown here by their e-mail."""
    log = t.audit_log.c
    scope = log.organisation_id == organisation_id
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t.audit_log).where(scope)).scalar_one()
        rows = conn.execute(
            select(log.at, log.action, log.target, log.details, log.ip, t.users.c.email)
            .select_from(t.audit_log.outerjoin(t.users, t.users.c.id == log.user_id))
            .where(scope)
            .order_by(log.at.desc(), log.id.desc())
            .limit(per_page)
            .offset((max(page, 1) - 1) * per_page)
        ).all()
        ids = {int(r.target) for r in rows if r.action.startswith("member.") and r.target.isdigit()}
        emails = dict(conn.execute(select(t.users.c.id, t.users.c.email).where(t.users.c.id.in_(ids))).all())
    entries = [
        Entry(
            at=utc(r.at),  # type: ignore[arg-type]
            email=r.email or "",
            action=r.action,
            target=emails.get(int(r.target), r.target) if r.action.startswith("member.") and r.target.isdigit()
            else r.target,
            details=dict(r.details or {}),
            ip=r.ip or "",
        )
        for r in rows
    ]  # fmt: skip
    return entries, int(total)
