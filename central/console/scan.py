"""Tester un pass and Scanner des pass: the views (the work is in ``central.services.console_scans``).

* ``/console/tester``: GET shows the form, POST judges the pass and shows the verdict; nothing is written.
  The number travels in a POST body, never in a URL (it would end up in histories and access logs, and a
  pass number is what pays).
* ``/console/scanner``: GET shows the scan page with a fresh batch id; POST records the listed passes (or the
  one typed, without JavaScript) and shows what became of each. ``/console/scanner/verifier`` is the scan
  page's pre-check (JSON, CSRF-protected, no side effect).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from aptic.passnumber import Authenticator, PassNumber, PassNumberError, parse
from central.console.access import client_ip, engine, member_required, now, organisation_id
from central.services import console_scans
from central.services.common import ServiceError

bp = Blueprint("console_scan", __name__, url_prefix="/console")


def _auth() -> Authenticator:
    auth: Authenticator = current_app.extensions["aptic_central"].auth
    return auth


@dataclass
class _Form:
    """The fields common to both pages, as typed, with the errors found reading them."""

    point: int | None = None
    service: int | None = None
    raw: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _read(form: MultiDict[str, str], *, required: bool) -> _Form:
    """Point and service from a form: numbers, or empty when not ``required`` (the test's defaults)."""
    out = _Form(raw={name: form.get(name, "").strip() for name in ("point", "service")})
    labels = {"point": "Choisissez un point de présence.", "service": "Choisissez le service rendu."}
    for name, message in labels.items():
        text = out.raw[name]
        if not text:
            if required:
                out.errors[name] = message
            continue
        if not text.isdigit() or len(text) > 9:
            out.errors[name] = message
            continue
        setattr(out, name, int(text))
    return out


def _choices() -> console_scans.Choices:
    with engine().connect() as conn:
        return console_scans.choices(conn, organisation_id())


@bp.route("/tester", methods=["GET", "POST"])
@member_required
def test_pass() -> Any:
    """The test: a verdict with what explains it, and nothing written."""
    choices = _choices()
    form = _read(request.form, required=False)
    text = request.form.get("pass", "")
    exam = None
    status = 200
    if request.method == "POST":
        if not text.strip():
            form.errors["pass"] = "Saisissez ou scannez le numéro du pass."
        if not form.errors:
            try:
                with engine().connect() as conn:
                    exam = console_scans.examine(
                        conn, _auth(), organisation_id(), form.point, form.service, text, now()
                    )
            except ServiceError as error:
                form.errors.update(error.fields or {"pass": error.message})
        status = 400 if form.errors else 200
    return render_template(
        "console/test_pass.html",
        choices=choices,
        form=form,
        text=text if form.errors else "",
        exam=exam,
        service_title=console_scans.service_title,
    ), status


@bp.route("/scanner", methods=["GET", "POST"])
@member_required
def scan() -> Any:
    """GET: the scan page, with a fresh batch id (its passes' scan ids derive from it). POST: record."""
    if request.method == "POST":
        return _record()
    form = _read(request.args, required=False)
    form.errors.clear()  # the query only pre-selects (the result page's "scan more" link)
    return _scan_page(form, uuid.uuid4(), [])


def _scan_page(form: _Form, batch: uuid.UUID, listed: list[str], status: int = 200, error: str = "") -> Any:
    return render_template(
        "console/scan.html", choices=_choices(), form=form, batch=batch, listed=listed, error=error,
        max_passes=console_scans.MAX_PASSES,
    ), status  # fmt: skip


def _record() -> Any:
    """Record the listed passes through the terminals' ingest; a resubmission gets the first results."""
    form = _read(request.form, required=True)
    texts = [p for p in request.form.getlist("pass") if p.strip()]
    try:
        batch = uuid.UUID(request.form.get("batch", ""))
    except ValueError:
        return _scan_page(form, uuid.uuid4(), texts, 400, "Le formulaire est incomplet : rechargez la page.")
    numbers: list[PassNumber] = []
    for text in texts:
        try:
            numbers.append(parse(text))
        except PassNumberError as bad:
            form.errors.setdefault("pass", f"« {text.strip()} » : pass non conforme. {bad.message_fr}")
    if not texts:
        form.errors.setdefault("pass", "Saisissez ou scannez au moins un pass.")
    if len(texts) > console_scans.MAX_PASSES:
        form.errors["pass"] = (
            f"Trop de pass à la fois ({len(texts)}) : {console_scans.MAX_PASSES} au plus par enregistrement."
        )
    if form.errors:
        return _scan_page(form, batch, texts, 400)
    assert form.point is not None and form.service is not None
    try:
        submission = console_scans.submit(
            engine(), _auth(), organisation_id=organisation_id(), user_id=current_user.id, point_id=form.point,
            service=form.service, batch=batch, numbers=numbers, now=now(), ip=client_ip(),
        )  # fmt: skip
    except ServiceError as refused:
        form.errors.update(refused.fields or {"pass": refused.message})
        return _scan_page(form, batch, texts, 400)
    return render_template(
        "console/scan_result.html", submission=submission, form=form,
        service_title=console_scans.service_title(form.service),
    )  # fmt: skip


@bp.post("/scanner/verifier")
@member_required
def precheck() -> Any:
    """The verdict of one pass for the scan page's list (JSON); ``entry`` holds the passes already listed."""
    form = _read(request.form, required=True)
    if form.errors:
        return jsonify(error="bad_request", message=next(iter(form.errors.values())), fields=form.errors), 400
    entry = [e for e in request.form.getlist("entry") if e.isdigit()][: console_scans.MAX_PASSES]
    try:
        with engine().connect() as conn:
            exam = console_scans.examine(
                conn, _auth(), organisation_id(), form.point, form.service, request.form.get("pass", ""), now(), entry
            )
    except ServiceError as error:
        return jsonify(error.as_dict()), error.status
    return jsonify(exam.as_json())
