"""The HTTP API under ``/api/v1``: a Flask blueprint that maps requests onto ``central.services``.

Every error is JSON ``{"error": code, "message": "...", "fields": {...}}``; no traceback ever reaches a
client. Device calls carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from central import models
from central.db import write_transaction
from central.openapi import document
from central.services import activation, artifacts, fleet, ingest, snapshot, statements, validity
from central.services.common import ServiceError, month_of

log = logging.getLogger(__name__)
# One line per request for the operator: the route (its template: a pass number in a path is a voucher, and
# stays out of logs), the status, the time taken and the device.
access_log = logging.getLogger("central.access")
bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
M = TypeVar("M", bound=BaseModel)


def _ctx() -> Any:
    return current_app.extensions["aptic_central"]


def now() -> datetime:
    return current_app.config["NOW"]()


def error_response(error: ServiceError) -> Response:
    response = jsonify(error.as_dict())
    response.status_code = error.status
    if "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="aptic-central"'
    return response


def parse_body(model: type[M]) -> M:
    raw = request.get_data(cache=False)
    if b"\\u0000" in raw:  # PostgreSQL text cannot hold NUL; no field of ours has a use for it
        raise ServiceError(400, "invalid_request", "Caractère NUL refusé.", {"body": "NUL character"})
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as error:
        fields = models.field_errors(error)
        if any(e["type"] == "json_invalid" for e in error.errors()):
            raise ServiceError(400, "invalid_json", "Le corps de la requête n'est pas du JSON valable.") from None
        raise ServiceError(400, "invalid_request", "Requête non valable.", fields) from None


def bearer_token() -> str:
    """The device token of ``Authorization: Bearer <token>``, or a 401 when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise ServiceError(401, "unauthorized", "Jeton d'appareil manquant.")
    return token


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for reads; on PostgreSQL in autocommit, which skips BEGIN and ROLLBACK: two round trips."""
    with _ctx().engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def device_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Authenticate the bearer token; the device row lands in ``g.device``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        with read_connection() as conn:
            g.conn = conn  # read-only views reuse this connection: one pool checkout per request
            g.device = activation.authenticate(conn, token)
            try:
                return view(*args, **kwargs)
            finally:
                g.conn = None

    return wrapper


def int_arg(name: str, *, required: bool) -> int | None:
    value = request.args.get(name)
    if value is None:
        if required:
            raise ServiceError(400, "invalid_request", f"Paramètre « {name} » manquant.", {name: "required"})
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 9 or int(value) < 1:
        raise ServiceError(400, "invalid_request", f"Paramètre « {name} » non valable.", {name: "positive integer"})
    return int(value)


QUERY_PARAMETERS: dict[str, frozenset[str]] = {
    "api_v1.pass_validity": frozenset({"service", "point"}),
    "api_v1.get_snapshot": frozenset({"since"}),
    "api_v1.get_statement": frozenset({"month"}),
}


@bp.before_request
def start_clock() -> None:
    g.started = time.perf_counter()


@bp.after_request
def log_access(response: Response) -> Response:
    if access_log.isEnabledFor(logging.INFO):
        device = g.get("device")
        access_log.info(
            "%s %s %d %.1f ms device=%s",
            request.method,
            request.url_rule or "(no route)",
            response.status_code,
            (time.perf_counter() - g.get("started", time.perf_counter())) * 1000,
            device.id if device is not None else g.get("device_id", "-"),
        )
    return response


@bp.before_request
def refuse_unknown_query_parameters() -> None:
    """Query strings are as strict as bodies: a parameter the endpoint does not know is a 400."""
    unknown = sorted(set(request.args) - QUERY_PARAMETERS.get(request.endpoint or "", frozenset()))
    if unknown:
        fields = {name[:64]: "unknown parameter" for name in unknown[:20]}
        raise ServiceError(400, "invalid_request", "Paramètre inconnu.", fields)


@bp.get("/health")
def health() -> Any:
    return {"status": "ok"}


@bp.get("/openapi.json")
def openapi() -> Any:
    return document()


@bp.post("/activations")
def activate() -> Any:
    body = parse_body(models.ActivationRequest)
    result = activation.activate(_ctx().engine, body.kit_number, body.activation_code, body.device.model_dump(), now())
    log.info("kit %s activated as device %s", body.kit_number, result["device_id"])
    return result, 201


@bp.get("/passes/<path:number>/validity")
def pass_validity(number: str) -> Any:
    # Not @device_required: the hot path authenticates in the same statement that reads the pass.
    token = bearer_token()
    service = int_arg("service", required=True)
    point = int_arg("point", required=False)
    if len(number) > 64:
        raise ServiceError(400, "invalid_request", "Numéro de pass trop long.", {"number": "at most 64 characters"})
    assert service is not None
    with read_connection() as conn:
        g.device_id, answer = validity.validity(conn, _ctx().auth, token, number, service, point, now())
    return answer


@bp.post("/scans")
@device_required
def push_scans() -> Any:
    body = parse_body(models.ScanBatch)
    batch = [
        ingest.ScanIn(
            id=s.id.lower(),
            pass_number=s.pass_number,
            service=s.service,
            point=s.point,
            scanned_at=s.scanned_at,
            clock_synced=s.clock_synced,
            seq=s.seq,
            entry_id=s.entry_id,
            boot_id=s.boot_id,
        )
        for s in body.scans
    ]
    results = ingest.ingest(_ctx().engine, _ctx().auth, g.device.id, g.device.organisation_id, batch, now())
    return {"results": results}


@bp.get("/snapshot")
@device_required
def get_snapshot() -> Any:
    since = request.args.get("since")
    response = jsonify(snapshot.snapshot(g.conn, g.device.organisation_id, since, now()))
    # A full snapshot holds every order of the country (about 2 MB of JSON for 5,000 orders, 20 times less
    # gzipped): what a bus on a mobile link pulls at activation and whenever its points change.
    response.vary.add("Accept-Encoding")
    if "gzip" in request.accept_encodings:
        response.set_data(gzip.compress(response.get_data(), 6))
        response.content_encoding = "gzip"
    return response


@bp.get("/statements")
@device_required
def get_statement() -> Any:
    month = request.args.get("month")
    if month is None:
        month = month_of(now())
    return statements.statement(g.conn, g.device.organisation_id, month)


@bp.post("/heartbeat")
@device_required
def post_heartbeat() -> Any:
    body = parse_body(models.Heartbeat)
    with write_transaction(_ctx().engine) as conn:
        return fleet.heartbeat(conn, g.device.id, body.model_dump(mode="json"), now())


@bp.get("/desired-state")
@device_required
def get_desired_state() -> Any:
    # The device's row (read with its token) carries the generation: an unchanged device costs no more.
    tag = fleet.etag(g.device.generation)
    if request.if_none_match.contains_weak(tag):
        response = Response(status=304)
    else:
        response = jsonify(fleet.desired_state(g.conn, g.device, now()))
    response.set_etag(tag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.post("/report")
@device_required
def post_report() -> Any:
    body = parse_body(models.Report)
    return fleet.report(_ctx().engine, g.device.id, body.model_dump(mode="json"), now())


@bp.put("/commands/<command_id>/artifact")
@device_required
def put_artifact(command_id: str) -> Any:
    """The file a command brought back, as the raw body with its ``Content-Type`` (``central.services.artifacts``)."""
    # The one body allowed past MAX_BODY: a screen or logs, bounded on their own, refused before being read.
    request.max_content_length = artifacts.MAX_BYTES
    if (request.content_length or 0) > artifacts.MAX_BYTES:
        raise artifacts.too_large()
    try:
        data = request.get_data(cache=False)
    except RequestEntityTooLarge:  # no Content-Length (chunked), and longer than allowed
        raise artifacts.too_large() from None
    if not data:
        raise ServiceError(400, "invalid_request", "Fichier vide.", {"body": "empty"})
    if len(command_id) > 36:
        raise ServiceError(404, "unknown_command", "Commande inconnue.")
    stored, replaced = artifacts.store(_ctx().engine, g.device.id, command_id, request.content_type or "", data, now())
    log.info("command %s: %s of %d bytes from device %s%s", command_id, stored["content_type"], stored["size"],
             g.device.id, " (replaced)" if replaced else "")  # fmt: skip
    return stored, 200 if replaced else 201


def register_errors(app: Any) -> None:
    """JSON for every error, including Flask's own (404, 405, 413) and unexpected exceptions."""

    @app.errorhandler(ServiceError)
    def on_service_error(error: ServiceError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException) -> Response:
        messages = {
            404: "Ressource inconnue.",
            405: "Méthode non permise.",
            413: "Requête trop volumineuse.",
        }
        code = error.code or 500
        response = error_response(
            ServiceError(code, (error.name or "error").lower().replace(" ", "_"), messages.get(code, "Erreur."))
        )
        allowed = getattr(error, "valid_methods", None)
        if code == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def on_unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url_rule or "an unknown path")
        return error_response(ServiceError(500, "internal_error", "Erreur interne du serveur central."))
