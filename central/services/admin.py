"""Administration: organisations, points de présence, kits, funders' orders of carnets, blocking.

These back the ``aptic-central`` commands. Each runs in one write transaction and returns plain data.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from aptic import passnumber, referentiel
from aptic.pin import hash_pin, valid_pin
from aptic.places import is_commune, is_departement
from central import schema as t
from central.db import write_transaction
from central.services import points
from central.services.common import ServiceError, load_organisation, record_change

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read off a label and typed by hand
CODE_TTL = timedelta(days=7)
CARNET_SIZES = (5, 10)


def hash_secret(value: str) -> str:
    """sha256 hex of a token or a normalised activation code: what the database keeps instead of it."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalise_code(code: str) -> str:
    """Activation codes are compared without case, spaces or hyphens (``abcd-efgh`` = ``ABCDEFGH``)."""
    return "".join(c for c in code.upper() if c not in " -\t")


def new_activation_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def set_pin(engine: Engine, organisation_id: int, pin: str, now: datetime) -> None:
    """Set the médiateur PIN of an organisation's kiosks; its terminals get the new hash at their next sync."""
    if not valid_pin(pin):
        raise ServiceError(
            400, "invalid_pin", "Le code médiateur doit compter de 4 à 8 chiffres.", {"pin": "4 to 8 digits"}
        )
    with write_transaction(engine) as conn:
        load_organisation(conn, organisation_id)
        conn.execute(
            update(t.organisations)
            .where(t.organisations.c.id == organisation_id)
            .values(mediateur_pin_hash=hash_pin(pin))
        )
        record_change(conn, "organisation", organisation_id, now)


def add_organisation(engine: Engine, name: str, siret: str, now: datetime, catalogue: str | None = None) -> int:
    siret = siret.replace(" ", "")
    if not (siret.isdigit() and len(siret) == 14):
        raise ServiceError(400, "invalid_siret", "Le SIRET doit compter 14 chiffres.", {"siret": "14 digits"})
    if catalogue is not None:
        try:
            referentiel.parse_selection(catalogue)
        except ValueError as error:
            raise ServiceError(400, "invalid_catalogue", f"Catalogue non valable : {error}.") from None
    try:
        with write_transaction(engine) as conn:
            new_id = conn.execute(
                insert(t.organisations)
                .values(name=name, siret=siret, qualified=True, catalogue=catalogue, created_at=now)
                .returning(t.organisations.c.id)
            ).scalar_one()
            record_change(conn, "organisation", new_id, now)
            return int(new_id)
    except IntegrityError:
        raise ServiceError(409, "siret_taken", f"Le SIRET {siret} est déjà enregistré.") from None


def add_point(
    engine: Engine,
    organisation_id: int,
    name: str,
    insee: str,
    typologies: Iterable[str],
    now: datetime,
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    opening_hours: str | None = None,
    address: str | None = None,
    postcode: str | None = None,
    commune: str | None = None,
) -> int:
    """A new point de présence, checked as the console checks it (``services.points.check``)."""
    values = points.check(
        name=name,
        insee=insee,
        address=address,
        postcode=postcode,
        commune=commune,
        latitude=None if latitude is None else f"{latitude:.10f}",
        longitude=None if longitude is None else f"{longitude:.10f}",
        hours=opening_hours,
        typologies=typologies,
    )
    with write_transaction(engine) as conn:
        load_organisation(conn, organisation_id)
        return points.insert_point(conn, organisation_id, values, now)


def add_kit(engine: Engine, organisation_id: int, now: datetime, ttl: timedelta = CODE_TTL) -> dict[str, str]:
    """A new kit for an organisation, with its single-use activation code (shown once, stored hashed)."""
    code = new_activation_code()
    with write_transaction(engine) as conn:
        load_organisation(conn, organisation_id)
        for _ in range(20):
            number = f"AK-{secrets.randbelow(10**8):08d}"
            taken = conn.execute(select(t.kits.c.id).where(t.kits.c.kit_number == number)).first()
            if taken is None:
                break
        else:  # pragma: no cover - 10^8 numbers
            raise ServiceError(500, "kit_numbers_exhausted", "Plus de numéro de kit disponible.")
        conn.execute(
            insert(t.kits).values(
                kit_number=number,
                organisation_id=organisation_id,
                code_hash=hash_secret(normalise_code(code)),
                code_expires_at=now + ttl,
                failed_attempts=0,
                created_at=now,
            )
        )
    return {"kit_number": number, "activation_code": code}


def reissue_code(engine: Engine, kit_number: str, now: datetime, ttl: timedelta = CODE_TTL) -> dict[str, str]:
    """A fresh activation code for a kit (lost code, replaced device); it also lifts a lockout."""
    code = new_activation_code()
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(t.kits)
            .where(t.kits.c.kit_number == kit_number)
            .values(
                code_hash=hash_secret(normalise_code(code)),
                code_expires_at=now + ttl,
                code_used_at=None,
                failed_attempts=0,
                locked_until=None,
            )
        ).rowcount
    if not done:
        raise ServiceError(404, "unknown_kit", f"Kit {kit_number} inconnu.")
    return {"kit_number": kit_number, "activation_code": code}


def kit_organisation(engine: Engine, kit_number: str) -> str:
    """The name of the organisation a kit belongs to: its label names it, so kits made for several places are
    not mixed up in the boxes."""
    with engine.connect() as conn:
        name = conn.execute(
            select(t.organisations.c.name)
            .join_from(t.kits, t.organisations, t.kits.c.organisation_id == t.organisations.c.id)
            .where(t.kits.c.kit_number == kit_number)
        ).scalar_one_or_none()
    if name is None:
        raise ServiceError(404, "unknown_kit", f"Kit {kit_number} inconnu.")
    return str(name)


def revoke_device(engine: Engine, device_id: int, now: datetime) -> None:
    """Revoke a device: its token stops working at once (401)."""
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(t.devices)
            .where(t.devices.c.id == device_id, t.devices.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        if not done:
            exists = conn.execute(select(t.devices.c.id).where(t.devices.c.id == device_id)).first()
            if exists is None:
                raise ServiceError(404, "unknown_device", f"Appareil {device_id} inconnu.")


def _codes(values: Iterable[str]) -> list[str]:
    return sorted({v.strip().upper() for v in values if v.strip()})


def issue_carnets(
    engine: Engine,
    secret: bytes,
    now: datetime,
    *,
    commanditaire: str,
    millesime: int,
    carnets: int,
    size: int,
    territories: Iterable[str] = (),
    territory_label: str | None = None,
    services: str = "",
    place_types: Iterable[str] = (),
    points: Iterable[int] = (),
    activated: bool = True,
    starts_on: date | None = None,
    value_cents: int = 1000,
    with_passes: bool = True,
) -> dict[str, Any]:
    """Record a funder's order of ``carnets`` carnets of ``size`` passes and return the pass numbers.

    Serials continue the millésime's series. Restrictions: territories (département or commune INSEE codes),
    services (a selection such as ``84-95,1.2``), place types (typologie codes), designated points.
    ``with_passes=False`` skips computing the numbers (bulk loads).
    """
    if size not in CARNET_SIZES:
        raise ServiceError(400, "invalid_size", "Un carnet compte 5 ou 10 pass.", {"size": "5 or 10"})
    if not 2000 <= millesime <= 2099:
        raise ServiceError(400, "invalid_millesime", "Millésime hors limites.", {"millesime": "2000-2099"})
    if carnets < 1:
        raise ServiceError(400, "invalid_count", "Au moins un carnet.", {"carnets": ">= 1"})
    terr = _codes(territories)
    bad = [c for c in terr if not (is_departement(c) or is_commune(c))]
    if bad:
        raise ServiceError(400, "invalid_territory", f"Territoire inconnu : {', '.join(bad)}.", {"territory": "INSEE"})
    try:
        numbers, categories = referentiel.parse_selection(services)
    except ValueError as error:
        raise ServiceError(
            400, "invalid_services", f"Services non valables : {error}.", {"services": "selection"}
        ) from None
    point_ids = sorted(set(points))
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":  # two issuers must not both take the next serials
            conn.exec_driver_sql("LOCK TABLE carnets IN EXCLUSIVE MODE")
        if point_ids:
            found = set(conn.execute(select(t.points.c.id).where(t.points.c.id.in_(point_ids))).scalars())
            missing = [p for p in point_ids if p not in found]
            if missing:
                raise ServiceError(404, "unknown_point", f"Points de présence inconnus : {missing}.")
        funder_id = conn.execute(
            select(t.commanditaires.c.id).where(t.commanditaires.c.name == commanditaire)
        ).scalar_one_or_none()
        if funder_id is None:
            funder_id = conn.execute(
                insert(t.commanditaires).values(name=commanditaire, created_at=now).returning(t.commanditaires.c.id)
            ).scalar_one()
        last = conn.execute(
            select(func.max(t.carnets.c.serial)).where(t.carnets.c.millesime == millesime)
        ).scalar_one_or_none()
        first = (last or 0) + 1
        final = first + carnets - 1
        if final > 9_999_999:
            raise ServiceError(409, "serials_exhausted", f"Plus de numéro de carnet libre pour {millesime}.")
        order_id = conn.execute(
            insert(t.orders)
            .values(
                commanditaire_id=funder_id,
                millesime=millesime,
                value_cents=value_cents,
                carnet_size=size,
                serial_first=first,
                serial_last=final,
                activated=activated,
                activated_at=now if activated else None,
                starts_on=starts_on,
                territories=",".join(terr),
                territory_label=territory_label,
                place_types=",".join(_codes(place_types)),
                points=",".join(str(p) for p in point_ids),
                services=",".join(str(n) for n in sorted(numbers)),
                categories=",".join(sorted(categories)),
                created_at=now,
            )
            .returning(t.orders.c.id)
        ).scalar_one()
        chunk: list[dict[str, Any]] = []
        for serial in range(first, final + 1):
            chunk.append(
                {
                    "carnet": passnumber.carnet_id(millesime, serial),
                    "order_id": order_id,
                    "millesime": millesime,
                    "serial": serial,
                    "size": size,
                }
            )
            if len(chunk) >= 5000:
                conn.execute(insert(t.carnets), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(t.carnets), chunk)
        record_change(conn, "order", order_id, now)
    passes: list[str] = []
    if with_passes:
        auth = passnumber.hmac_authenticator(secret)
        passes = [
            passnumber.build(millesime, serial, position, auth)
            for serial in range(first, final + 1)
            for position in range(1, size + 1)
        ]
    return {
        "order": int(order_id),
        "carnets": [passnumber.carnet_id(millesime, first), passnumber.carnet_id(millesime, final)],
        "passes": passes,
    }


def set_order_activated(engine: Engine, order_id: int, now: datetime, activated: bool = True) -> None:
    """Mark an order paid (its passes become usable) or unpaid."""
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(t.orders)
            .where(t.orders.c.id == order_id)
            .values(activated=activated, activated_at=now if activated else None)
        ).rowcount
        if not done:
            raise ServiceError(404, "unknown_order", f"Commande {order_id} inconnue.")
        record_change(conn, "order", order_id, now)


def block_carnet(engine: Engine, carnet: str, now: datetime) -> None:
    """Block a carnet (lost, stolen, withdrawn by its funder). Scans made before ``now`` still count."""
    carnet = "".join(c for c in carnet if c.isdigit())
    if len(carnet) == passnumber.LENGTH:  # a whole pass number names its carnet
        carnet = carnet[:10]
    with write_transaction(engine) as conn:
        row = conn.execute(select(t.carnets.c.blocked_at).where(t.carnets.c.carnet == carnet)).first()
        if row is None:
            raise ServiceError(404, "unknown_carnet", f"Carnet {carnet} inconnu.")
        if row.blocked_at is None:
            conn.execute(update(t.carnets).where(t.carnets.c.carnet == carnet).values(blocked_at=now))
            record_change(conn, "carnet", carnet, now)
