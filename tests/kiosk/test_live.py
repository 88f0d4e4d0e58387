"""No lost page update: whatever happens to the live transport, the page in real Chromium converges to the
terminal's state.

Each test cuts the transport at the worst moment with :class:`Faults`, a WSGI wrapper around the real kiosk
app (served by waitress on loopback): a stream cut as it carries an event, a long poll that reaches the server
only after the event, a state answer computed before an event and delivered after it, a page kept away while
more events than the bus's ring buffer holds go by.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from tests.kiosk.conftest import PIN, Served, pass_number

pytestmark = pytest.mark.browser

# An EventSource waits the stream's `retry:` (2 s) before it reconnects, and a page refused a stream polls
# after 1 s: a resumed update may take that long more than a live one.
RECONNECT_MS = 8000


class Faults:
    """Between waitress and the kiosk app: holds, cuts or refuses what the page's requests get."""

    def __init__(self, app: Flask) -> None:
        self.inner = app.wsgi_app
        app.wsgi_app = self  # type: ignore[method-assign]
        self.changed = threading.Condition()
        self.hold_states = False  # /api/state answers computed meanwhile are delivered at release()
        self.hold_polls = False  # /api/updates requests reach the app only at release()
        self.drop_next_event = False  # a stream that is about to carry an event ends instead
        self.blocked = False  # /events and /api/updates answer 503; open streams end at their next write
        self.held = 0
        self.dropped: list[bytes] = []
        self.streams = 0
        self.refused: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        live = path in ("/events", "/api/updates")
        if live and self.blocked:
            with self.changed:
                self.refused.append(path)
                self.changed.notify_all()
            start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "1")])
            return [b'{"error": "blocked by the test"}']
        if path == "/api/updates" and self.hold_polls:
            self._hold()
        body = self.inner(environ, start_response)
        if path == "/api/state" and self.hold_states:
            answer = b"".join(body)  # computed now, from the terminal as it is now
            getattr(body, "close", lambda: None)()
            self._hold()
            return [answer]
        if path == "/events":
            return self._stream(body)
        return body

    def _hold(self) -> None:
        with self.changed:
            self.held += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: not (self.hold_states or self.hold_polls))

    def _stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        with self.changed:
            self.streams += 1
            self.changed.notify_all()
        try:
            for chunk in chunks:
                with self.changed:
                    cut = self.blocked or (self.drop_next_event and chunk.startswith(b"id:"))
                    if cut:
                        self.drop_next_event = False
                        self.dropped.append(chunk)
                        self.changed.notify_all()
                if cut:
                    return  # the response ends here: the browser sees a stream that closed
                yield chunk
        finally:
            getattr(chunks, "close", lambda: None)()
            with self.changed:
                self.streams -= 1
                self.changed.notify_all()

    def set(self, **flags: bool) -> None:
        with self.changed:
            for name, value in flags.items():
                setattr(self, name, value)
            self.changed.notify_all()

    def release(self) -> None:
        self.set(hold_states=False, hold_polls=False)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout), f"never happened: {what}"


def open_page(browser: Browser, kiosk: Served, live: str = "sse") -> Page:
    context = browser.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
    page = context.new_page()
    page.goto(kiosk.url)
    expect(page.locator("#place-name")).to_have_text("Médiathèque Jean-Jacques Rousseau")
    page.wait_for_function(f"() => document.body.dataset.live === {live!r}")
    return page


def login(page: Page) -> None:
    page.get_by_role("button", name="Espace médiateur").click()
    for digit in PIN:
        page.locator("#pin-pad").get_by_role("button", name=digit, exact=True).click()
    page.get_by_role("button", name="Entrer").click()


def test_a_state_answer_older_than_an_event_is_not_applied_over_it(browser: Browser, kiosk: Served) -> None:
    """The flake of issue 10: the "mode" event of a new entry makes the page reload its state; that answer is
    computed before the first scan and reaches the page after the scan's "entry" event."""
    faults = Faults(kiosk.app)
    page = open_page(browser, kiosk)
    login(page)
    expect(page.locator("#mediateur")).to_be_visible()
    faults.set(hold_states=True)
    page.locator("#service-search").fill("95")
    page.locator('#service-list li[data-service="95"]').click()
    expect(page.locator("#entry-service")).to_have_text("95. Plateforme France Connect")
    faults.wait_for(lambda: faults.held >= 1, "the page asked for the state after the entry's events")
    page.evaluate("() => { window.stateBefore = ui.state; }")
    kiosk.terminal.handle_code(pass_number(20, 1), device="douchette-test")
    expect(page.locator("#entry-passes li")).to_have_count(1)
    faults.release()  # the old answer, with an empty entry, reaches the page now
    page.wait_for_function("() => ui.state !== window.stateBefore")
    expect(page.locator("#entry-passes li")).to_have_count(1)
    page.context.close()


def test_a_stream_cut_as_it_carries_the_first_event_resumes_from_the_pages_state(
    browser: Browser, kiosk: Served
) -> None:
    """No event has reached this page yet, so its EventSource has no Last-Event-ID to reconnect with."""
    faults = Faults(kiosk.app)
    page = open_page(browser, kiosk)
    faults.set(drop_next_event=True)
    kiosk.terminal.handle_code(pass_number(12, 3), device="douchette-test")
    faults.wait_for(lambda: len(faults.dropped) == 1, "the stream was cut with the scan in it")
    expect(page.locator("#verdict")).to_be_visible(timeout=RECONNECT_MS)
    expect(page.locator("#verdict-pass")).to_contain_text("0000012")
    page.context.close()


@pytest.mark.parametrize("kiosk", [{"MAX_STREAMS": 0}], indirect=True)
def test_an_event_published_before_the_first_long_poll_arrives_is_not_lost(browser: Browser, kiosk: Served) -> None:
    """No stream for this page (all taken): it polls, and its first poll reaches the server after the scan."""
    faults = Faults(kiosk.app)
    faults.set(hold_polls=True)
    page = open_page(browser, kiosk, live="poll")
    faults.wait_for(lambda: faults.held >= 1, "the page's first poll")
    kiosk.terminal.handle_code(pass_number(40, 1), device="douchette-test")
    faults.release()
    expect(page.locator("#verdict")).to_be_visible(timeout=RECONNECT_MS)
    expect(page.locator("#verdict-pass")).to_contain_text("0000040")
    page.context.close()


def test_a_page_that_missed_more_than_the_ring_buffer_reloads_the_state(browser: Browser, kiosk: Served) -> None:
    """The page comes back asking for events the bus no longer holds: it must reload the whole state."""
    faults = Faults(kiosk.app)
    page = open_page(browser, kiosk)
    kiosk.terminal.start_entry(95)  # events the page sees: it has an event id to resume from
    login(page)
    expect(page.locator("#entry")).to_be_visible()
    faults.set(blocked=True)
    # Its stream ends, its EventSource is refused a new one, and its first poll is refused too.
    faults.wait_for(lambda: faults.refused[:2] == ["/events", "/api/updates"], "the page polling, refused")
    kiosk.terminal.handle_code(pass_number(20, 1), device="douchette-test")
    for _ in range(300):  # more than the bus keeps (256): the scan and its entry event are gone from it
        kiosk.bus.publish("discarded", device="douchette-test", reason="noise")
    faults.set(blocked=False)
    # Its next poll (within 1 s) must bring the entry back; left alone, the page would only catch up when it
    # next opens a stream, after 10 s of polling.
    expect(page.locator("#entry-passes li")).to_have_count(1)
    expect(page.locator("#entry-submit")).to_have_text("Soumettre le contre-paiement (1 pass · 9,60 €)")
    page.context.close()


def test_events_keep_flowing_after_a_stream_ends(browser: Browser, kiosk: Served) -> None:
    """A stream cut twice in a row: the page still sees every verdict, in order."""
    faults = Faults(kiosk.app)
    page = open_page(browser, kiosk)
    for serial in (12, 13):
        faults.set(drop_next_event=True)
        kiosk.terminal.handle_code(pass_number(serial, 1), device="douchette-test")
        expect(page.locator("#verdict-pass")).to_contain_text(f"00000{serial}", timeout=RECONNECT_MS)
    assert len(faults.dropped) == 2
    page.context.close()


def test_a_state_without_the_mediateur_takes_the_page_off_the_mediateur_screens(
    browser: Browser, kiosk: Served
) -> None:
    """The page follows the terminal's state: a médiateur session that ended elsewhere (idle on the server,
    logged out by another tab) leaves nothing of theirs on screen at the next state."""
    page = open_page(browser, kiosk)
    login(page)
    expect(page.locator("#mediateur")).to_be_visible()
    r = requests.post(f"{kiosk.url}/api/mediateur/logout", json={}, headers={"X-CSRF-Token": kiosk.csrf}, timeout=5)
    assert r.status_code == 200
    kiosk.bus.publish("synced", count=0, rejected=0, pending=0)  # an event the page reloads its state for
    expect(page.locator("#home")).to_be_visible()
    page.context.close()
