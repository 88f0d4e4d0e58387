"""The kiosk server: bound to loopback, host-checked, CSRF-protected, with live updates that resume."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from flask import Flask, jsonify, request

from terminal.events import EventBus


def extra_routes(app: Flask) -> None:
    # A state-changing route like the kiosk's own, to show what every POST goes through.
    @app.post("/api/echo")
    def echo():  # type: ignore[no-untyped-def]
        return jsonify(request.get_json())


def post(kiosk, **headers: str) -> requests.Response:
    return requests.post(f"{kiosk.url}/api/echo", data=json.dumps({"a": 1}), headers=headers, timeout=5)


def test_health(kiosk) -> None:
    r = requests.get(f"{kiosk.url}/healthz", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_health_says_how_long_ago_the_page_last_called(kiosk) -> None:
    # The screen's watchdog restarts the browser when the page stops calling (systemd/aptic-screen-watchdog).
    health = lambda: requests.get(f"{kiosk.url}/healthz", timeout=5).json()["page_quiet_s"]  # noqa: E731
    # Nobody called yet: the quiet counts from the kiosk's start, and asking for health is not the page calling.
    deadline = time.monotonic() + 30
    while health() < 1.0:
        assert time.monotonic() < deadline, "page_quiet_s does not grow"
    assert requests.get(f"{kiosk.url}/api/state", timeout=5).status_code == 200
    assert 0 <= health() < 1.0


@pytest.mark.parametrize("host", ["evil.example", "192.168.1.10:8080", "127.0.0.1.nip.io"])
def test_a_foreign_host_header_is_refused(kiosk, host: str) -> None:
    r = requests.get(f"{kiosk.url}/healthz", headers={"Host": host}, timeout=5)
    assert r.status_code == 400


def test_localhost_by_name_is_accepted(kiosk) -> None:
    r = requests.get(f"{kiosk.url}/healthz", headers={"Host": f"localhost:{kiosk.port}"}, timeout=5)
    assert r.status_code == 200


def test_post_needs_the_pages_csrf_token_and_json(kiosk) -> None:
    json_type = {"Content-Type": "application/json"}
    assert post(kiosk, **json_type).status_code == 403
    assert post(kiosk, **json_type, **{"X-CSRF-Token": "guess"}).status_code == 403
    ok = post(kiosk, **json_type, **{"X-CSRF-Token": kiosk.csrf})
    assert ok.status_code == 200 and ok.json() == {"a": 1}
    # What a cross-site HTML form can send: a form body, no custom header.
    form = requests.post(f"{kiosk.url}/api/echo", data={"a": "1"}, timeout=5)
    assert form.status_code == 403
    assert post(kiosk, **{"Content-Type": "text/plain", "X-CSRF-Token": kiosk.csrf}).status_code == 415


def test_a_foreign_origin_is_refused_even_with_the_token(kiosk) -> None:
    r = post(kiosk, **{"Content-Type": "application/json", "X-CSRF-Token": kiosk.csrf, "Origin": "http://evil.example"})
    assert r.status_code == 403
    r = post(kiosk, **{"Content-Type": "application/json", "X-CSRF-Token": kiosk.csrf, "Origin": kiosk.url})
    assert r.status_code == 200


def test_pages_forbid_outside_resources_and_framing(kiosk) -> None:
    csp = requests.get(f"{kiosk.url}/healthz", timeout=5).headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_stream_sends_its_first_bytes_at_once_then_events(kiosk, sse) -> None:
    started = time.monotonic()
    stream = sse(kiosk)
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    assert stream.message() == {"retry": "2000"}
    assert time.monotonic() - started < 1.0
    kiosk.bus.publish("scan", code="126000123407582112", reason="ok")
    msg = stream.event()
    assert msg["event"] == "scan"
    assert json.loads(msg["data"]) == {"code": "126000123407582112", "reason": "ok"}
    assert int(msg["id"]) == kiosk.bus.last_id
    stream.close()


def test_heartbeat_keeps_a_quiet_stream_alive(kiosk, sse) -> None:
    stream = sse(kiosk)
    stream.message()  # retry
    assert stream.message() == {":": "heartbeat"}  # HEARTBEAT is 0.3 s in these tests
    stream.close()


def test_a_reconnecting_page_gets_what_it_missed(kiosk, sse) -> None:
    seen = kiosk.bus.publish("scan", n=1).id
    kiosk.bus.publish("scan", n=2)
    kiosk.bus.publish("synced", n=3)
    stream = sse(kiosk, last_event_id=seen)
    stream.message()  # retry
    missed = [stream.event(), stream.event()]
    assert [json.loads(m["data"])["n"] for m in missed] == [2, 3]
    assert [m["event"] for m in missed] == ["scan", "synced"]
    stream.close()


@pytest.mark.parametrize("kiosk", [{"MAX_STREAMS": 2}], indirect=True)
def test_streams_are_capped_and_the_page_still_answers(kiosk, sse) -> None:
    streams = [sse(kiosk), sse(kiosk)]
    for s in streams:
        s.message()
    over = requests.get(f"{kiosk.url}/events", timeout=5)
    assert over.status_code == 503 and over.headers["Retry-After"] == "5"
    assert requests.get(f"{kiosk.url}/healthz", timeout=5).status_code == 200
    # A closed tab frees its slot once the server next writes to it (a heartbeat at most).
    streams[0].close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        again = requests.get(f"{kiosk.url}/events", stream=True, timeout=5)
        if again.status_code == 200:
            again.close()
            break
        time.sleep(0.1)
    else:
        pytest.fail("the closed stream's slot was never freed")
    streams[1].close()


def test_long_polling_fallback(kiosk) -> None:
    first = requests.get(f"{kiosk.url}/api/updates", timeout=5).json()
    assert first["events"] == []
    timer = threading.Timer(0.2, lambda: kiosk.bus.publish("scan", n=7))
    timer.start()
    started = time.monotonic()
    r = requests.get(f"{kiosk.url}/api/updates", params={"after": first["last_id"], "wait": 5}, timeout=10).json()
    assert time.monotonic() - started < 2
    assert [e["data"] for e in r["events"]] == [{"n": 7}]
    assert r["last_id"] == r["events"][0]["id"]
    empty = requests.get(f"{kiosk.url}/api/updates", params={"after": r["last_id"], "wait": 0.2}, timeout=5).json()
    assert empty == {"last_id": r["last_id"], "events": [], "gap": False}


def test_the_bus_says_when_it_no_longer_holds_what_was_missed() -> None:
    bus = EventBus(keep=3, first_id=10)
    assert bus.since(9) == [] and bus.since(8) is None  # nothing published yet; an id of a previous run
    ids = [bus.publish("scan", n=n).id for n in range(5)]  # 10..14, the bus keeps 12..14
    assert [e.id for e in bus.since(11)] == [12, 13, 14]
    assert bus.since(14) == []
    assert bus.since(10) is None  # 11 is gone
    assert bus.since(15) is None  # an id this bus never gave
    assert bus.wait_since(10, timeout=5) is None  # at once, not after the timeout
    assert ids[-1] == bus.last_id == 14


def test_the_state_carries_the_id_of_the_last_event_it_reflects(kiosk) -> None:
    first = requests.get(f"{kiosk.url}/api/state", timeout=5).json()
    assert first["event_id"] == kiosk.bus.last_id
    kiosk.terminal.start_entry(95)  # publishes "mode" then "entry"
    state = requests.get(f"{kiosk.url}/api/state", timeout=5).json()
    assert state["event_id"] == kiosk.bus.last_id == first["event_id"] + 2
    assert state["status"]["entry"]["service"] == 95


def test_a_stream_resumed_past_the_ring_buffer_says_reload(kiosk, sse) -> None:
    seen = kiosk.bus.publish("scan", n=0).id
    for n in range(300):  # the bus keeps 256
        kiosk.bus.publish("discarded", n=n)
    stream = sse(kiosk, last_event_id=seen)
    stream.message()  # retry
    reload = stream.event()
    assert reload["event"] == "reload" and int(reload["id"]) == kiosk.bus.last_id
    kiosk.bus.publish("scan", n=1)  # and the stream goes on from there
    after = stream.event()
    assert after["event"] == "scan" and json.loads(after["data"]) == {"n": 1}
    stream.close()


def test_the_page_can_start_its_stream_from_its_state(kiosk, sse) -> None:
    """EventSource cannot send Last-Event-ID on its first request: the page gives its state's id as last_id."""
    state = requests.get(f"{kiosk.url}/api/state", timeout=5).json()
    missed = kiosk.bus.publish("scan", n=1)  # between the state and the stream
    with requests.get(f"{kiosk.url}/events", params={"last_id": state["event_id"]}, stream=True, timeout=5) as r:
        lines = r.iter_lines(decode_unicode=True)
        assert [next(lines) for _ in range(5)] == [
            "retry: 2000",
            "",
            f"id: {missed.id}",
            "event: scan",
            'data: {"n":1}',
        ]


def test_a_poll_resumed_past_the_ring_buffer_says_gap(kiosk) -> None:
    seen = kiosk.bus.publish("scan", n=0).id
    for n in range(300):
        kiosk.bus.publish("discarded", n=n)
    r = requests.get(f"{kiosk.url}/api/updates", params={"after": seen, "wait": 5}, timeout=10).json()
    assert r == {"last_id": kiosk.bus.last_id, "events": [], "gap": True}
    future = requests.get(f"{kiosk.url}/api/updates", params={"after": r["last_id"] + 1, "wait": 5}, timeout=10)
    assert future.json()["gap"] is True


def test_bad_event_ids_get_a_clear_400(kiosk) -> None:
    r = requests.get(f"{kiosk.url}/api/updates", params={"after": "x"}, timeout=5)
    assert r.status_code == 400 and "integer" in r.json()["message"]


@pytest.mark.parametrize("kiosk", [{"MAX_POLLS": 1}], indirect=True)
def test_waiting_polls_are_capped_too(kiosk) -> None:
    last = kiosk.bus.last_id
    waiting = threading.Thread(
        target=requests.get, args=(f"{kiosk.url}/api/updates",), kwargs={"params": {"after": last, "wait": 1.5}}
    )
    waiting.start()
    time.sleep(0.3)
    over = requests.get(f"{kiosk.url}/api/updates", params={"after": last, "wait": 1}, timeout=5)
    assert over.status_code == 503 and over.headers["Retry-After"] == "5"
    assert requests.get(f"{kiosk.url}/healthz", timeout=5).status_code == 200
    waiting.join()
    again = requests.get(f"{kiosk.url}/api/updates", params={"after": last, "wait": 0.1}, timeout=5)
    assert again.status_code == 200


def test_login_without_any_pin_says_who_sets_it(kiosk) -> None:
    kiosk.terminal.store.update_state(mediateur_pin_hash=None)  # and the snapshot brings none
    r = requests.post(f"{kiosk.url}/api/mediateur/login", data=json.dumps({"pin": "1234"}), timeout=5,
                      headers={"Content-Type": "application/json", "X-CSRF-Token": kiosk.csrf})  # fmt: skip
    assert r.status_code == 409
    assert r.json()["message"].startswith("Aucun code médiateur n'est défini pour ce lieu")
