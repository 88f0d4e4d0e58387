"""What the page asks and does: JSON under ``/api``. Every answer a person may read is in French.

Self-service (anyone): ``GET /api/state`` (with ``event_id``, the id of the last event it reflects),
``POST /api/check`` (a number typed on the keypad), ``GET /api/services``. Médiateur (after the PIN): choose
the point, open an entry for a service, remove a pass, submit, abandon, cancel within 15 minutes, test LEDs
and buzzer. Scans from the douchette do not come through here: the scanner daemon hands them to the
Terminal, and the page learns of them on ``/events``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from aptic import referentiel
from kiosk_ui.mediateur import MediateurSession, PinLocked
from terminal.store import StoreError
from terminal.terminal import Terminal, TerminalError

api = Blueprint("api", __name__, url_prefix="/api")


def _terminal() -> Terminal:
    return current_app.extensions["aptic.kiosk"].terminal


def _session() -> MediateurSession:
    return current_app.extensions["aptic.kiosk"].mediateur


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="Requête illisible.")
    return data


def _refused(status: int, message_fr: str, error: str) -> Response:
    response = jsonify(error=error, message=message_fr)
    response.status_code = status
    return response


def mediateur_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse with 401 unless a médiateur is logged in (and count the call as activity)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not _session().active():
            return _refused(401, "Espace médiateur : saisissez votre code.", "mediateur_required")
        return view(*args, **kwargs)

    return guarded


@api.errorhandler(TerminalError)
def _terminal_error(error: TerminalError) -> Response:
    return _refused(409, error.message_fr, type(error).__name__)


@api.errorhandler(StoreError)
def _store_error(error: StoreError) -> Response:
    # A full outbox or a disk error: nothing was recorded, and the screen must say so plainly.
    return _refused(507, error.message_fr, type(error).__name__)


# -- reading ---------------------------------------------------------------------------------------------


def _catalogue(terminal: Terminal) -> list[dict[str, Any]]:
    place = terminal.place
    numbers = sorted(place.catalogue) if place else []
    return [referentiel.SERVICES[n].as_dict() for n in numbers if n in referentiel.SERVICES]


def _today(terminal: Terminal) -> list[dict[str, Any]]:
    """Today's recorded scans, newest first, each with its sync state: pending, accepted, rejected..."""
    today = terminal.clock.today().isoformat()
    rows = [{**scan, "status": "pending"} for scan in terminal.store.pending()]
    month = today[:7]
    if month in terminal.store.history_files():
        rows += terminal.store.history(month)
    keys = ("id", "entry_id", "pass_number", "service", "point", "scanned_at", "submitted_at", "status", "reason",
            "message", "offline_reason")  # fmt: skip
    picked = [{k: row.get(k) for k in keys} for row in rows if str(row.get("submitted_at", "")).startswith(today)]
    return sorted(picked, key=lambda r: str(r.get("submitted_at")), reverse=True)


@api.get("/state")
def state() -> Response:
    kiosk = current_app.extensions["aptic.kiosk"]
    terminal: Terminal = kiosk.terminal
    # Read before the state: the Terminal changes itself before it publishes, so what follows reflects every
    # event up to this id (and maybe later ones). The page never applies a state older than an event it showed.
    event_id = terminal.bus.last_id
    snapshot = terminal.snapshot
    logged_in = kiosk.mediateur.active(touch=False)
    return jsonify(
        event_id=event_id,
        status=terminal.status(),
        sync=kiosk.sync_status(),
        scanners=kiosk.scanners(),
        version=kiosk.version,
        organisation=snapshot.organisation_name,
        points=[{"id": p.point_id, "name": p.name, "insee": p.insee} for p in snapshot.places.values()],
        catalogue=_catalogue(terminal),
        mediateur=logged_in,
        mediateur_idle_s=current_app.config["MEDIATEUR_IDLE_SECONDS"],
        today=_today(terminal) if logged_in else [],
        late_rejections=terminal.late_rejections() if logged_in else [],
        csrf=current_app.config["CSRF_TOKEN"],
    )


@api.get("/services")
def services() -> Response:
    """Services of this point's catalogue matching the words or number typed (all of them for nothing)."""
    terminal = _terminal()
    offered = {s["number"] for s in _catalogue(terminal)}
    found = referentiel.search(request.args.get("q", ""))
    return jsonify(services=[s.as_dict() for s in found if s.number in offered])


@api.post("/check")
def check() -> Response:
    """A number typed on the keypad (a damaged barcode): judged exactly like a scan."""
    code = str(_body().get("code", ""))
    result = _terminal().handle_code(code, device="keypad")
    return jsonify(result.as_dict())


# -- médiateur ---------------------------------------------------------------------------------------------


@api.post("/mediateur/login")
def login() -> Response:
    if not current_app.extensions["aptic.kiosk"].pin_hash():
        return _refused(
            409,
            "Aucun code médiateur n'est défini pour ce lieu : l'administrateur du central le fixe (set-pin).",
            "no_pin",
        )
    session = _session()
    try:
        ok = session.login(str(_body().get("pin", "")))
    except PinLocked as locked:
        return _refused(429, locked.message_fr, "pin_locked")
    if not ok:
        left = session.tries_left
        message = f"Code incorrect. Encore {left} essai{'s' if left > 1 else ''}." if left < 5 else "Code incorrect."
        return _refused(403, message, "wrong_pin")
    return jsonify(mediateur=True)


@api.post("/mediateur/logout")
def logout() -> Response:
    _session().logout()
    terminal = _terminal()
    if terminal.entry is not None and not terminal.entry.scans:
        terminal.abandon_entry()
    return jsonify(mediateur=False)


@api.post("/point")
@mediateur_only
def choose_point() -> Response:
    place = _terminal().set_point(int(_body().get("point", 0)))
    return jsonify(point=place.point_id, name=place.name)


@api.post("/entry")
@mediateur_only
def start_entry() -> Response:
    number = _body().get("service")
    if not isinstance(number, int) or number not in referentiel.SERVICES:
        abort(400, description="Choisissez un service du catalogue.")
    entry = _terminal().start_entry(number)
    return jsonify(entry.as_dict())


@api.post("/entry/remove")
@mediateur_only
def remove() -> Response:
    removed = _terminal().remove(str(_body().get("pass_number", "")))
    return jsonify(removed=removed)


@api.post("/entry/submit")
@mediateur_only
def submit() -> Response:
    receipt = _terminal().submit()
    return jsonify(receipt.as_dict())


@api.post("/entry/abandon")
@mediateur_only
def abandon() -> Response:
    _terminal().abandon_entry()
    return jsonify(mode="test")


@api.post("/entry/cancel")
@mediateur_only
def cancel() -> Response:
    rows = _terminal().cancel_entry(str(_body().get("entry_id", "")))
    return jsonify(cancelled=[r.get("pass_number") for r in rows])


@api.post("/activate")
def activate() -> Response:
    """The activation screen: kit number and code, as printed on the kit's label."""
    kiosk = current_app.extensions["aptic.kiosk"]
    if kiosk.activate is None:
        return _refused(409, "L'activation n'est pas disponible sur ce terminal.", "no_activation")
    body = _body()
    kiosk.activate(str(body.get("kit", "")).strip(), str(body.get("code", "")).strip())
    return jsonify(activated=True)


@api.post("/diagnostics/led-test")
@mediateur_only
def led_test() -> Response:
    feedback = current_app.extensions["aptic.kiosk"].feedback
    if feedback is None:
        return _refused(409, "Ce terminal n'a ni voyants ni buzzer.", "no_feedback")
    feedback.test()
    return jsonify(tested=True)
