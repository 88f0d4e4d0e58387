"""The kiosk page in real headless Chromium (Debian's), at the two screen sizes terminals have.

Scans arrive as the scanner daemon delivers them: ``terminal.handle_code(code, device=...)`` from another
thread, never through the page's keyboard. Screenshots go to ``artifacts/screens/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.kiosk.conftest import PIN, Served, pass_number, stop_server

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screens"
SIZES = {"7in": {"width": 800, "height": 480}, "10in": {"width": 1280, "height": 800}}


@pytest.fixture(params=list(SIZES))
def page(request: pytest.FixtureRequest, browser: Browser, kiosk: Served) -> Iterator[Page]:
    context = browser.new_context(viewport=SIZES[request.param], has_touch=True)
    page = context.new_page()
    page.size_name = request.param  # type: ignore[attr-defined]
    page.goto(kiosk.url)
    expect(page.locator("#home")).to_be_visible()
    expect(page.locator("#place-name")).to_have_text("Médiathèque Jean-Jacques Rousseau")
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{page.size_name}.png"))  # type: ignore[attr-defined]


def scan(kiosk: Served, code: str) -> float:
    """What the scanner daemon does with a finished read; returns when it did it."""
    started = time.monotonic()
    kiosk.terminal.handle_code(code, device="douchette-test")
    return started


def test_a_scanned_pass_shows_its_verdict_within_a_second(page: Page, kiosk: Served) -> None:
    started = scan(kiosk, pass_number(12, 3))
    expect(page.locator("#verdict")).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.0
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-tone", "provisional")  # no central: judged offline
    expect(page.locator("#verdict-title")).to_have_text("Pass valable (vérifié hors ligne)")
    expect(page.locator("#verdict-pass")).to_contain_text("10,00 €")
    expect(page.locator("#verdict-pass")).to_contain_text("Département de la Gironde")
    expect(page.locator("#verdict-notes")).to_contain_text("Uniquement sur ce territoire : Gironde.")
    shot(page, "verdict-valid")
    page.get_by_role("button", name="Terminé").click()
    expect(page.locator("#home")).to_be_visible()


def test_a_refused_pass_is_red_and_says_what_to_do(page: Page, kiosk: Served) -> None:
    scan(kiosk, pass_number(50, 1))  # a blocked carnet
    expect(page.locator("#verdict")).to_have_attribute("data-tone", "refused")
    expect(page.locator("#verdict-title")).to_have_text("Pass bloqué")
    expect(page.locator("#verdict-next")).to_have_text("Adressez-vous à la structure qui vous a remis le pass.")
    shot(page, "verdict-refused")
    scan(kiosk, "126000123407")  # a torn barcode
    expect(page.locator("#verdict-title")).to_have_text("Pass non conforme")
    expect(page.locator("#verdict-message")).to_contain_text("12 chiffres au lieu de 18")


def test_a_scan_while_a_text_field_has_focus_lands_as_a_scan(page: Page, kiosk: Served) -> None:
    login(page)
    field = page.locator("#service-search")
    field.click()
    field.fill("France")
    expect(field).to_be_focused()
    # The douchette is grabbed by the terminal: its keys never reach the focused field.
    kiosk.terminal.start_entry(95)
    scan(kiosk, pass_number(13, 1))
    expect(page.locator("#entry")).to_be_visible()
    expect(page.locator("#entry-passes li")).to_have_count(1)
    expect(field).to_have_value("France")


def test_manual_entry_on_the_keypad_is_grouped_as_printed(page: Page, kiosk: Served) -> None:
    number = pass_number(14, 2)
    page.get_by_role("button", name="Saisir le numéro").click()
    for digit in number[:9]:
        page.locator("#pad").get_by_role("button", name=digit, exact=True).click()
    expect(page.locator("#keypad-display")).to_have_text(f"{number[0]} {number[1:3]} {number[3:9]}")
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("#keypad-error")).to_contain_text("Il manque 9 chiffre(s)")
    for digit in number[9:]:
        page.locator("#pad").get_by_role("button", name=digit, exact=True).click()
    expect(page.locator("#keypad-display")).to_have_text(
        " ".join((number[:1], number[1:3], number[3:10], number[10:12], number[12:16], number[16:]))
    )
    shot(page, "keypad")
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("#verdict-title")).to_have_text("Pass valable (vérifié hors ligne)")


def test_where_to_use_my_pass(page: Page) -> None:
    page.get_by_role("button", name="Où utiliser mon pass ?").click()
    expect(page.locator("#where-services li")).to_have_count(7)
    expect(page.locator("#where-services")).to_contain_text("Plateforme France Connect")
    expect(page.locator("#where-points")).to_contain_text("Bus numérique")


def login(page: Page, pin: str = PIN) -> None:
    page.get_by_role("button", name="Espace médiateur").click()
    for digit in pin:
        page.locator("#pin-pad").get_by_role("button", name=digit, exact=True).click()
    page.get_by_role("button", name="Entrer").click()


def test_wrong_pins_lock_after_five_tries(page: Page) -> None:
    for left in (4, 3, 2, 1):
        login(page, "0000")
        expect(page.locator("#pin-error")).to_have_text(
            f"Code incorrect. Encore {left} essai{'s' if left > 1 else ''}."
        )
        page.get_by_role("button", name="Annuler").click()
    login(page, "0000")
    login_again = page.locator("#pin-error")
    expect(login_again).to_contain_text("Code incorrect")
    page.get_by_role("button", name="Annuler").click()
    login(page)  # even the right PIN is refused while locked
    expect(page.locator("#pin-error")).to_contain_text("Trop d'essais : code verrouillé pendant encore 5 minutes.")


def test_mediateur_entry_submit_and_cancel(page: Page, kiosk: Served) -> None:
    login(page)
    expect(page.locator("#mediateur")).to_be_visible()
    page.locator("#service-search").fill("france connect")
    expect(page.locator("#service-list li")).to_have_count(1)
    shot(page, "mediateur")
    page.locator("#service-list li").first.click()
    expect(page.locator("#entry-service")).to_have_text("95. Plateforme France Connect")
    first, sibling, other = pass_number(20, 1), pass_number(20, 2), pass_number(21, 1)
    scan(kiosk, first)
    expect(page.locator("#entry-passes li")).to_have_count(1)
    scan(kiosk, sibling)  # same carnet, same service: refused, not added
    expect(page.locator("#entry-last")).to_contain_text("Un autre pass de ce carnet")
    expect(page.locator("#entry-last")).to_have_attribute("data-tone", "refused")
    scan(kiosk, first)  # the same pass again: refused
    expect(page.locator("#entry-last")).to_contain_text("déjà d'être scanné")
    scan(kiosk, other)
    expect(page.locator("#entry-passes li")).to_have_count(2)
    page.locator("#entry-passes li").filter(has_text=other[3:10]).get_by_role("button", name="Retirer").click()
    expect(page.locator("#entry-passes li")).to_have_count(1)
    scan(kiosk, other)
    expect(page.locator("#entry-submit")).to_have_text("Soumettre le contre-paiement (2 pass · 19,20 €)")
    shot(page, "entry")
    page.locator("#entry-submit").click()
    expect(page.locator("#confirm-title")).to_have_text("Enregistré")
    # "Enregistré" is on screen: the two scans are already in the durable outbox.
    assert sorted(s["pass_number"] for s in kiosk.terminal.store.pending()) == sorted([first, other])
    shot(page, "submitted")
    page.get_by_role("button", name="Annuler cette saisie").click()
    expect(page.locator("#confirm-title")).to_have_text("Saisie annulée")
    assert kiosk.terminal.store.pending() == []


def test_todays_entries_show_sync_state_and_late_rejections(page: Page, kiosk: Served) -> None:
    kiosk.terminal.start_entry(84)
    scan(kiosk, pass_number(30, 1))
    receipt = kiosk.terminal.submit()
    kiosk.terminal.start_entry(85)
    scan(kiosk, pass_number(31, 1))
    late = kiosk.terminal.submit()
    # The central answers: the second scan was used elsewhere before this terminal synced.
    kiosk.terminal.apply_results(
        [{"id": late.scan_ids[0], "status": "rejected", "reason": "already_used",
          "message": "Pass déjà utilisé le 02/03/2026 (EPN de Pessac)."}]
    )  # fmt: skip
    # The page is not the médiateur's yet: it showed the scans as self-service verdicts. Dismiss the last one
    # rather than wait for it to go (VERDICT_SECONDS).
    expect(page.locator("#verdict-pass")).to_contain_text("0000031")
    page.get_by_role("button", name="Terminé").click()
    login(page)
    page.get_by_role("button", name="Saisies du jour").click()
    expect(page.locator("#late li")).to_have_count(1)
    expect(page.locator("#late")).to_contain_text("Refus tardif")
    expect(page.locator("#late")).to_contain_text("EPN de Pessac")
    items = page.locator("#today-list li")
    expect(items).to_have_count(2)
    expect(items.filter(has_text="84.")).to_contain_text("En attente d'envoi")
    expect(items.filter(has_text="85.")).to_contain_text("Refusé par le central")
    expect(items.filter(has_text="84.").get_by_role("button", name="Annuler")).to_be_visible()
    shot(page, "today")
    assert receipt.entry_id


def test_diagnostics_and_led_test(page: Page, kiosk: Served) -> None:
    login(page)
    page.get_by_role("button", name="Diagnostic").click()
    expect(page.locator("#diag")).to_contain_text("Virtual douchette (clavier fr)")
    expect(page.locator("#diag")).to_contain_text("injoignable")
    shot(page, "diagnostics")
    page.get_by_role("button", name="Tester voyants et buzzer").click()
    deadline = time.monotonic() + 15
    while kiosk.feedback.last != "error" and time.monotonic() < deadline:  # the last pattern of the test
        time.sleep(0.1)
    assert kiosk.feedback.last == "error"


def test_status_bar_and_touch_targets(page: Page) -> None:
    expect(page.locator("#net")).to_have_text("Hors ligne")
    expect(page.locator("#pending")).to_have_text("0 en attente")
    expect(page.locator("#scanner")).to_have_text("Douchette connectée")
    small = page.evaluate(
        """() => [...document.querySelectorAll('button, select, input, [role=button]')]
              .filter(e => e.offsetParent !== null)
              .map(e => [e.textContent.trim() || e.id, e.getBoundingClientRect()])
              .filter(([, r]) => r.width < 48 || r.height < 48)
              .map(([name, r]) => `${name}: ${r.width}x${r.height}`)"""
    )
    assert small == []
    shot(page, "home")


def test_the_page_is_small_and_self_contained(kiosk: Served) -> None:
    import requests

    html = requests.get(kiosk.url, timeout=5)
    total = len(html.content)
    for asset in ("/static/kiosk.css", "/static/kiosk.js"):
        r = requests.get(kiosk.url + asset, timeout=5)
        assert r.status_code == 200
        total += len(r.content)
    assert total < 300 * 1024
    assert "http://" not in html.text and "https://" not in html.text
    health = json.loads(requests.get(kiosk.url + "/healthz", timeout=5).text)
    assert health["status"] == "ok" and 0 <= health["page_quiet_s"] < 60  # the page was just fetched


@pytest.mark.parametrize("kiosk", [{"MAX_STREAMS": 1}], indirect=True)
def test_verdicts_still_arrive_when_no_live_stream_is_left(browser: Browser, kiosk: Served, sse) -> None:
    hog = sse(kiosk)  # another client holds the only stream: the page's EventSource gets 503
    hog.message()
    context = browser.new_context(viewport=SIZES["7in"])
    page = context.new_page()
    page.goto(kiosk.url)
    expect(page.locator("#place-name")).to_have_text("Médiathèque Jean-Jacques Rousseau")
    page.wait_for_function("() => document.body.dataset.live === 'poll'")  # it met the 503
    scan(kiosk, pass_number(40, 1))
    expect(page.locator("#verdict")).to_be_visible(timeout=3000)
    expect(page.locator("#verdict-pass")).to_contain_text("0000040")
    context.close()
    hog.close()


@pytest.mark.parametrize("terminal", [None], indirect=True)
def test_a_scan_before_the_point_is_chosen_says_why_and_who_can_fix_it(browser: Browser, kiosk: Served) -> None:
    context = browser.new_context(viewport=SIZES["7in"])
    page = context.new_page()
    page.goto(kiosk.url)
    expect(page.locator("#home-alert")).to_have_text(
        "Ce terminal attend qu'un médiateur choisisse le point de présence (Espace médiateur)."
    )
    page.wait_for_function("() => document.body.dataset.live === 'sse'")
    import queue

    from terminal.commands import _dispatch

    # The daemon's own hand-off from the douchette reader to the Terminal.
    codes: queue.Queue = queue.Queue()
    codes.put((pass_number(12, 1), "douchette-test"))
    codes.put(None)
    _dispatch(codes, kiosk.terminal)
    expect(page.locator("#verdict-message")).to_contain_text("Terminal pas prêt")
    expect(page.locator("#verdict-title")).to_have_text("Scan impossible")
    expect(page.locator("#verdict-next")).to_have_text("Appelez le médiateur.")
    context.close()


def test_services_by_level_and_category(page: Page) -> None:
    login(page)
    page.get_by_role("button", name="Niveau 2 · Maîtriser").click()
    expect(page.locator("#service-list li")).to_have_count(5)  # 48, 84, 85, 90, 95 of this point's catalogue
    shot(page, "services-level")
    # The list scrolls inside itself: at least three services in view, and the buttons under it too.
    in_view = page.evaluate(
        """() => { const l = document.querySelector('#service-list').getBoundingClientRect();
                   return [...document.querySelectorAll('#service-list li')]
                     .filter(e => e.getBoundingClientRect().bottom <= l.bottom + 1).length }"""
    )
    assert in_view >= 3
    expect(page.get_by_role("button", name="Quitter")).to_be_in_viewport(ratio=1)
    page.get_by_role("button", name="2.2 Faire ses démarches en ligne", exact=True).click()
    expect(page.locator("#service-list li")).to_have_count(4)
    expect(page.locator("#service-list")).not_to_contain_text("Internet : envoyer, recevoir")
    page.get_by_role("button", name="Récents").click()
    expect(page.locator("#service-list li")).to_have_count(7)


@pytest.mark.parametrize("kiosk", [{"MEDIATEUR_IDLE_SECONDS": 2.0}], indirect=True)
def test_an_idle_mediateur_is_logged_out_and_the_screen_goes_home(page: Page) -> None:
    login(page)
    expect(page.locator("#mediateur")).to_be_visible()
    expect(page.locator("#home")).to_be_visible(timeout=6000)  # nobody touched the screen for 2 s
    page.get_by_role("button", name="Espace médiateur").click()
    expect(page.locator("#pin")).to_be_visible()  # the PIN is asked again


@pytest.mark.parametrize("screen", ["home", "keypad", "pin", "activation"])
def test_fixed_screens_fit_without_scrolling(page: Page, screen: str) -> None:
    """A touchscreen user does not know a page can scroll: what a screen asks for must all be in view."""
    page.evaluate(f"show({screen!r})")
    expect(page.locator(f"#{screen}")).to_be_visible()
    overflow = page.evaluate("() => { const m = document.querySelector('main'); return m.scrollHeight-m.clientHeight }")
    width = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    shot(page, f"fit-{screen}")
    assert overflow <= 0 and width <= 0, f"{screen} overflows by {overflow}px down, {width}px across"


def test_a_long_entry_scrolls_its_list_and_keeps_submit_in_view(page: Page, kiosk: Served) -> None:
    """A workshop of nine: the passes list scrolls, the submit button stays where the finger expects it."""
    kiosk.terminal.start_entry(95)
    login(page)
    expect(page.locator("#entry")).to_be_visible()
    for serial in range(40, 49):
        scan(kiosk, pass_number(serial, 1))
    expect(page.locator("#entry-passes li")).to_have_count(9)
    expect(page.locator("#entry-submit")).to_be_in_viewport(ratio=1)
    expect(page.locator("#entry-service")).to_be_in_viewport(ratio=1)
    shot(page, "entry-long")
    page.locator("#entry-passes li").last.scroll_into_view_if_needed()
    expect(page.locator("#entry-passes li").last).to_be_in_viewport()
    expect(page.locator("#entry-submit")).to_be_in_viewport(ratio=1)
    kiosk.terminal.abandon_entry()


def test_the_screen_starts_on_its_own_page_and_turns_into_the_kiosk_once_the_terminal_answers(
    browser: Browser, kiosk: Served
) -> None:
    # On the device Chromium starts beside the terminal, on systemd/aptic-screen-starting.html: it must say
    # what is happening while nothing answers, and show the kiosk (never "connection refused") once it does.
    import socket
    import threading

    from waitress import create_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there yet: the terminal is still starting
    starting = Path(__file__).resolve().parents[2] / "systemd" / "aptic-screen-starting.html"
    context = browser.new_context(viewport=SIZES["7in"])
    page = context.new_page()
    page.goto(f"{starting.as_uri()}?kiosk=http://127.0.0.1:{port}/")
    expect(page.locator("body")).to_have_text("Le terminal démarre…")
    page.wait_for_timeout(1500)  # three of its tries refused: it is still there, not an error page
    assert page.url.startswith("file:") and page.locator("body").inner_text() == "Le terminal démarre…"

    server = create_server(kiosk.app, host="127.0.0.1", port=port, threads=4, asyncore_loop_timeout=0.1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()  # the terminal is up
    try:
        expect(page.locator("#home")).to_be_visible(timeout=30_000)
        assert page.url == f"http://127.0.0.1:{port}/"
    finally:
        context.close()
        stop_server(server, thread)


def test_the_clock_shows_the_time_and_is_redrawn_only_when_the_minute_changes(page: Page) -> None:
    # A text written each second made the page repaint each second, all day: a third of an idle emulated
    # machine's CPU, and a Pi's. Over three and a half seconds the page's one-second tick runs three times;
    # the clock may change once, if a minute turns meanwhile. (Watching for something that must not happen
    # takes a fixed window.)
    expect(page.locator("#clock")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    page.evaluate("""() => {
        window.clockWrites = 0;
        new MutationObserver((records) => { window.clockWrites += records.length; })
            .observe(document.getElementById("clock"), { childList: true, characterData: true, subtree: true });
    }""")
    page.wait_for_timeout(3500)
    assert page.evaluate("window.clockWrites") <= 1
