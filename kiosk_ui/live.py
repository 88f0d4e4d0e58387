"""Live updates for the page: Server-Sent Events on ``/events``, long polling on ``/api/updates``.

The page never starts "from now": it loads ``/api/state``, which carries the id of the last event it
reflects (``event_id``), and asks for the events after it (``/events?last_id=ID``, then the browser's own
``Last-Event-ID`` on reconnects; ``/api/updates?after=ID``). When the bus's ring buffer no longer holds them
all, the page is told to reload the state: an SSE ``reload`` event (its id is the bus's last one), or
``"gap": true`` from ``/api/updates``.

waitress serves each open stream with one of its threads, so streams are capped (``MAX_STREAMS``, default
3): past the cap ``/events`` answers 503 with ``Retry-After`` while ``/healthz`` and the page still answer.
A stream sends ``retry:`` at once (waitress sends headers only with the first bytes), replays what the
browser missed since its last id, sends a comment every ``HEARTBEAT`` seconds (waitress notices a closed tab
only when it writes), and ends after ``STREAM_SECONDS`` so the thread comes back; EventSource reconnects by
itself and resumes from its last id.

When a browser cannot hold a stream, the page polls ``/api/updates?after=ID``, which waits up to
``wait`` seconds (at most 25) for news; waiting polls are capped too (``MAX_POLLS``, default 2).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app, jsonify, request

from terminal.events import Event, EventBus

live = Blueprint("live", __name__)


def _bus() -> EventBus:
    return current_app.extensions["aptic.bus"]


def _last_id(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        abort(400, description="event id must be an integer")


@live.get("/events")
def events() -> Response:
    slots: threading.BoundedSemaphore = current_app.extensions["aptic.stream_slots"]
    if not slots.acquire(blocking=False):
        return _busy("too many live streams")
    bus = _bus()
    config = current_app.config
    last = _last_id(request.headers.get("Last-Event-ID") or request.args.get("last_id"))
    heartbeat, lifetime = config["HEARTBEAT"], config["STREAM_SECONDS"]

    # A client without an id starts from now, fixed here and not in the generator: waitress runs the
    # generator's body only after the first chunk went out, and an event published in between would be skipped.
    if last is None:
        last = bus.last_id

    def stream() -> Iterator[str]:
        nonlocal last
        try:
            yield "retry: 2000\n\n"
            ends = time.monotonic() + lifetime
            while time.monotonic() < ends:
                found = bus.wait_since(last, timeout=min(heartbeat, max(0.0, ends - time.monotonic())))
                if found is None:
                    # Missed events are gone from the buffer: the page reloads its state and goes on from here.
                    last = bus.last_id
                    yield Event(last, "reload").sse()
                    continue
                for event in found:
                    yield event.sse()
                    last = event.id
                if not found:
                    yield ": heartbeat\n\n"
        finally:
            slots.release()

    return Response(
        stream(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@live.get("/api/updates")
def updates() -> Response:
    bus = _bus()
    last = _last_id(request.args.get("after"))
    try:
        wait = min(25.0, max(0.0, float(request.args.get("wait", "25"))))
    except ValueError:
        abort(400, description="wait must be a number of seconds")
    # A waiting poll holds a waitress thread until it times out, even after its tab has gone: cap them as
    # the streams are, so the page's own requests always find a free thread.
    slots: threading.BoundedSemaphore = current_app.extensions["aptic.poll_slots"]
    if last is not None and wait > 0 and not slots.acquire(blocking=False):
        return _busy("too many waiting polls")
    try:
        found = bus.wait_since(last, timeout=wait) if last is not None else []
    finally:
        if last is not None and wait > 0:
            slots.release()
    if last is None or found is None:
        # A first poll starts from now; a gap asks the page to reload its state and go on from here.
        return jsonify(last_id=bus.last_id, events=[], gap=found is None)
    return jsonify(last_id=found[-1].id if found else last, events=[e.as_dict() for e in found], gap=False)


def _busy(message: str) -> Response:
    response = jsonify(error="Service Unavailable", message=message)
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response
