"""The central's tables, as one SQLAlchemy Core ``MetaData``.

Passes are not stored one row per pass: an order owns a continuous range of carnet serials of one
millésime, each carnet has a row (so it can be blocked), and a pass is *issued* iff its carnet exists, its
position fits the carnet's size and its authenticator matches the secret key (which never enters the
database). The double-spend guard is ``pass_uses``: one row per accepted pass, with a primary key on the
pass number and a unique key on (carnet, service, organisation, local date) for the same-carnet rule, so
two devices racing for the same pass are settled by the database, not by a read-then-write.

Alembic migrations in ``central/migrations`` create these tables; this module is what the code queries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# Timestamps are timezone-aware and stored in UTC.
TS = DateTime(timezone=True)

commanditaires = Table(
    "commanditaires",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("commanditaire_id", Integer, ForeignKey("commanditaires.id"), nullable=False),
    Column("millesime", Integer, nullable=False),
    Column("value_cents", Integer, nullable=False, default=1000),
    Column("carnet_size", Integer, nullable=False),
    Column("serial_first", Integer, nullable=False),
    Column("serial_last", Integer, nullable=False),
    Column("activated", Boolean, nullable=False),
    Column("activated_at", TS),
    Column("cancelled_at", TS),
    Column("starts_on", Date),
    # Restrictions, as comma-separated codes ("" restricts nothing).
    Column("territories", Text, nullable=False, default=""),
    Column("territory_label", String(200)),
    Column("place_types", Text, nullable=False, default=""),
    Column("points", Text, nullable=False, default=""),
    Column("services", Text, nullable=False, default=""),
    Column("categories", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_orders_millesime_serials", "millesime", "serial_first", "serial_last"),
)

carnets = Table(
    "carnets",
    metadata,
    Column("carnet", String(10), primary_key=True),  # the 10-digit carnet id
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False, index=True),
    Column("millesime", Integer, nullable=False),
    Column("serial", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("blocked_at", TS),
    Column("blocked_reason", String(500)),  # the operator's reason, for the audit and the console
    # Handed by the funder to a distributor (a CCAS, an association) who gives carnets to beneficiaries.
    Column("distributed_at", TS),
    Column("distributed_to", String(200)),
    UniqueConstraint("millesime", "serial", name="uq_carnets_millesime_serial"),
)

organisations = Table(
    "organisations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("siret", String(14), nullable=False, unique=True),
    Column("qualified", Boolean, nullable=False, default=True),
    # The operator's last decision on the qualification: its reason and when (NULL: never decided in the console).
    Column("qualification_reason", String(500)),
    Column("qualified_at", TS),
    # The services offered, as a selection like "1-40,2.2"; NULL: the whole référentiel at 10 €.
    Column("catalogue", Text),
    # The médiateur PIN of its kiosks, hashed (aptic.pin); its terminals get the hash, never the PIN.
    Column("mediateur_pin_hash", String(200)),
    Column("created_at", TS, nullable=False),
    # Administrative details, kept up to date by its admins in the console.
    Column("address", String(300)),
    Column("postcode", String(5)),
    Column("commune", String(100)),
    Column("contact_email", String(254)),
    Column("phone", String(20)),
    # Where its counter-payments go. Shown masked; changed only after the admin typed their password again.
    Column("iban", String(34)),
    Column("bic", String(11)),
    Column("bank_holder", String(200)),
)

# An organisation's own price for a service of its catalogue (the selection itself is
# ``organisations.catalogue``), and whether it also accepts the regulated price ("tarif réglementé").
catalogue_entries = Table(
    "catalogue_entries",
    metadata,
    Column("organisation_id", Integer, ForeignKey("organisations.id"), primary_key=True),
    Column("service", Integer, primary_key=True),
    Column("price_cents", Integer),
    Column("regulated_price", Boolean, nullable=False, default=True, server_default="1"),
    Column("updated_at", TS, nullable=False),
)

points = Table(
    "points",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("insee", String(5), nullable=False),
    Column("departement", String(3), nullable=False),
    Column("typologies", Text, nullable=False, default=""),  # comma-separated data·inclusion codes
    Column("latitude", Float),
    Column("longitude", Float),
    Column("opening_hours", Text),  # OSM opening_hours syntax
    Column("created_at", TS, nullable=False),
    Column("address", String(300)),
    Column("postcode", String(5)),
    Column("commune", String(100)),
    # A bus or a travelling médiateur: where and when it stops ([{"place", "insee", "hours"}...]).
    Column("itinerant", Boolean, nullable=False, default=False, server_default="0"),
    Column("stops", JSON),
)

kits = Table(
    "kits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kit_number", String(20), nullable=False, unique=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("code_hash", String(64)),  # sha256 hex of the current activation code
    Column("code_expires_at", TS),
    Column("code_used_at", TS),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", TS),
    Column("created_at", TS, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kit_id", Integer, ForeignKey("kits.id"), nullable=False, index=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex; the token is never stored
    Column("serial", String(100), nullable=False),
    Column("model", String(100), nullable=False),
    Column("software_version", String(100), nullable=False),
    Column("activated_at", TS, nullable=False),
    Column("revoked_at", TS),
    Column("last_seen_at", TS),
    Column("last_status", JSON),
    # The desired state's version: bumped in the same transaction as any change to what the device should
    # be (its settings at any level, its commands), so a poll with an up-to-date ETag costs the token lookup.
    Column("generation", Integer, nullable=False, default=1, server_default="1"),
    Column("applied_generation", Integer),  # the last generation the device said it applied
    Column("reported", JSON),  # what it applied: config, release
    Column("reported_at", TS),
)

# Remote settings (aptic.settings) at three levels: the fleet's defaults (ref 0), an organisation's (ref: its
# id) and a device's (ref: its id); a device's config is the three merged, in that order.
fleet_settings = Table(
    "fleet_settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scope", String(12), nullable=False),  # fleet | organisation | device
    Column("ref", Integer, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("scope", "ref", name="uq_fleet_settings_scope_ref"),
)

# Rollouts of signed releases (central/releases.py): a version for a share of the fleet (a stable hash of the
# device id picks it) and/or a list of devices; started, paused or widened by the operator. A device's target
# version is that of the newest active rollout that picks it.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(20), nullable=False),
    Column("percent", Integer, nullable=False),
    Column("devices", JSON, nullable=False),  # device ids, always included
    Column("status", String(10), nullable=False),  # active | paused
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# Commands sent to devices, one row per (command, device): an id the device keeps in its journal, an expiry,
# and a status that only moves forward (pending, received, started, then done, failed, expired or interrupted).
commands = Table(
    "commands",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("device_id", Integer, ForeignKey("devices.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("args", JSON, nullable=False),
    Column("status", String(12), nullable=False),
    Column("result", JSON),
    Column("created_at", TS, nullable=False),
    Column("not_after", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# What a command brought back (upload_logs: a .tar.gz of the terminal's logs; screenshot: a PNG): at most one
# per command, so a device sending it again (a response lost on the way) replaces it rather than adding one.
# In the database, not in files: one place to back up, and the same on SQLite and PostgreSQL (a few MiB).
command_artifacts = Table(
    "command_artifacts",
    metadata,
    Column("command_id", String(36), ForeignKey("commands.id"), primary_key=True),
    Column("content_type", String(40), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", TS, nullable=False),
)

scans = Table(
    "scans",
    metadata,
    Column("id", String(36), primary_key=True),  # the terminal's UUID: a permanent idempotency key
    # Who scanned: a terminal, or a member in the web console (then the UUID is the form's).
    Column("device_id", Integer, ForeignKey("devices.id")),
    Column("user_id", Integer, ForeignKey("users.id")),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("point_id", Integer),
    Column("pass_number", String(64), nullable=False),
    Column("carnet", String(10)),
    Column("order_id", Integer),
    Column("commanditaire_id", Integer),
    Column("value_cents", Integer),
    Column("service", Integer, nullable=False),
    Column("entry_id", String(64)),
    Column("scanned_at", TS, nullable=False),
    Column("clock_synced", Boolean, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("boot_id", String(64)),
    Column("received_at", TS, nullable=False),
    Column("status", String(10), nullable=False),  # accepted | flagged | rejected
    Column("reason", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("flags", Text, nullable=False, default=""),  # comma-separated
    Column("service_month", String(7)),  # the month the service happened in (YYYY-MM), by the server rule
    Column("payment_month", String(7)),  # the month it is paid in: service_month or the next open one
    Index("ix_scans_payment", "organisation_id", "payment_month"),
    # The console's dashboard (migration 0006): covering indexes, so its per-month aggregates never read the table.
    Index("ix_scans_org_service_month", "organisation_id", "service_month", "service", "commanditaire_id"),
    Index("ix_scans_service_month_funder", "service_month", "commanditaire_id"),
)

pass_uses = Table(
    "pass_uses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # also the snapshot cursor for uses
    Column("pass_number", String(18), nullable=False, unique=True),
    Column("scan_id", String(36), ForeignKey("scans.id"), nullable=False, unique=True),
    Column("carnet", String(10), nullable=False),
    Column("service", Integer, nullable=False),
    Column("organisation_id", Integer, nullable=False),
    Column("point_id", Integer),
    Column("local_date", Date, nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("carnet", "service", "organisation_id", "local_date", name="uq_pass_uses_same_carnet"),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # the snapshot cursor for everything else
    Column("kind", String(20), nullable=False),  # order | carnet | point | organisation
    Column("ref", String(20), nullable=False),
    Column("created_at", TS, nullable=False),
)

closed_months = Table(
    "closed_months",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("closed_at", TS, nullable=False),
)

statements = Table(
    "statements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("month", String(7), nullable=False),
    Column("document", JSON, nullable=False),  # the frozen statement, exactly as served
    Column("closed_at", TS, nullable=False),
    Column("paid_at", TS),  # set by the operator once the transfer left
    UniqueConstraint("organisation_id", "month", name="uq_statements_organisation_month"),
)


# The web console's accounts (central/console). A user belongs to organisations through memberships (role
# member or admin); an operator sees everything. ``session_version`` is part of the session cookie's identity:
# bumping it (password change, "log out everywhere") ends every session of the user.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),  # stored lower-case
    Column("name", String(200), nullable=False, default=""),
    Column("password_hash", String(200)),  # argon2id; NULL until an invitation is accepted
    Column("is_operator", Boolean, nullable=False, default=False, server_default="0"),
    Column("session_version", Integer, nullable=False, default=1, server_default="1"),
    Column("created_at", TS, nullable=False),
    Column("password_changed_at", TS),
    Column("disabled_at", TS),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), primary_key=True, index=True),
    Column("role", String(10), nullable=False),  # member | admin
    Column("created_at", TS, nullable=False),
)

# Invitation and password-reset links: the link carries a random token, the database its sha256, an expiry and
# the time it was used (single use). An invitation names the organisation and role it grants.
account_tokens = Table(
    "account_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(12), nullable=False),  # invitation | reset
    Column("email", String(254), nullable=False),
    Column("organisation_id", Integer, ForeignKey("organisations.id")),
    Column("role", String(10)),
    Column("created_by", Integer, ForeignKey("users.id")),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS),
)

# Failed logins, by e-mail and by client address: the rate limit counts them over a window (in the database,
# so it holds across the central's worker processes and restarts).
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),  # "email:<address>" or "ip:<address>"
    Column("at", TS, nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),
)

# Who did what in the console: append-only, never updated.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id")),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), index=True),
    Column("action", String(60), nullable=False),
    Column("target", String(200), nullable=False, default=""),
    Column("details", JSON, nullable=False),
    Column("ip", String(45)),
)

# Funders (issue 14): a commanditaire's console users (role reader or admin), and the orders they request. A
# request is a draft, then submitted; the operator activates it, which issues its carnets (``order_id``).
funder_memberships = Table(
    "funder_memberships",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("commanditaire_id", Integer, ForeignKey("commanditaires.id"), primary_key=True, index=True),
    Column("role", String(10), nullable=False),  # reader | admin
    Column("created_at", TS, nullable=False),
)

order_requests = Table(
    "order_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("commanditaire_id", Integer, ForeignKey("commanditaires.id"), nullable=False, index=True),
    Column("carnet_size", Integer, nullable=False),  # 5 | 10
    Column("quantity", Integer, nullable=False),  # carnets, 1..10000
    Column("millesime", Integer, nullable=False),
    Column("starts_on", Date),
    Column("territories", Text, nullable=False),  # comma-separated INSEE codes; "" = no restriction
    # The other restrictions, as the order will carry them: typologie codes, point ids, a services selection.
    Column("place_types", Text, nullable=False, server_default=""),
    Column("points", Text, nullable=False, server_default=""),
    Column("services", Text, nullable=False, server_default=""),
    Column("status", String(10), nullable=False),  # draft | submitted | paid | activated | withdrawn
    Column("created_by", Integer, ForeignKey("users.id")),
    Column("created_at", TS, nullable=False),
    Column("submitted_at", TS),
    Column("paid_at", TS),
    Column("payment_reference", String(100)),  # the transfer's or the public buyer's mandat number
    Column("order_id", Integer, ForeignKey("orders.id")),
)
