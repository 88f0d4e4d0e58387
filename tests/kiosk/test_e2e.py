"""The whole chain in real Chromium: the stack `make demo` starts (the central on SQLite, a terminal activated
against it running `aptic-terminal run` with the virtual douchette and mock GPIO), at both screen sizes.

A pass "scanned" here is typed as key events by the virtual douchette (AZERTY, 8 ms a key) and goes through the
same decoder and reader as a real douchette's, then the Terminal, the central's online check, the SSE stream and
the page.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from demo_stack import ROOT, Stack, demo_stack, free_port, login, start_entry
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "artifacts" / "screens"
SIZES = {"7in": {"width": 800, "height": 480}, "10in": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(tmp_path_factory.mktemp("demo")) as running:
        yield running


@pytest.fixture(params=list(SIZES))
def page(request: pytest.FixtureRequest, browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport=SIZES[request.param], has_touch=True)
    page = context.new_page()
    page.size_name = request.param  # type: ignore[attr-defined]
    page.goto(stack.kiosk)
    expect(page.locator("#place-name")).to_have_text("Médiathèque Mériadeck")
    page.wait_for_function("() => document.body.dataset.live === 'sse'")
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"e2e-{name}-{page.size_name}.png"))  # type: ignore[attr-defined]


def test_a_pass_scanned_by_the_douchette_shows_its_verdict_within_a_second(page: Page, stack: Stack) -> None:
    number = stack.passes("gironde")[0]
    scanned = stack.scan(number)
    expect(page.locator("#verdict")).to_be_visible(timeout=1000)
    assert time.monotonic() - scanned < 1.0
    expect(page.locator("#verdict")).to_have_attribute("data-tone", "valid")  # the central answered
    expect(page.locator("#verdict-title")).to_have_text("Pass valable")
    expect(page.locator("#verdict-pass")).to_contain_text(number[3:10])
    shot(page, "verdict")
    stack.scan(stack.passes("not_activated")[0])
    expect(page.locator("#verdict-title")).to_have_text("Pass non activé")
    expect(page.locator("#verdict")).to_have_attribute("data-tone", "refused")


def test_mediateur_flow_until_the_central_statement(page: Page, stack: Stack) -> None:
    # A pass pays once: each screen size spends its own passes (carnets 1, 1 and 2 of the Gironde order).
    small = page.size_name == "7in"  # type: ignore[attr-defined]
    service = 95 if small else 48
    gironde = stack.passes("gironde")
    first, sibling, other = (gironde[0], gironde[1], gironde[10]) if small else (gironde[2], gironde[3], gironde[11])
    before = {line["service"]: line["passes"] for line in stack.statement()["by_service"]}.get(service, 0)
    login(page)
    start_entry(page, service)
    stack.scan(first)
    expect(page.locator("#entry-passes li")).to_have_count(1)
    stack.scan(sibling)
    expect(page.locator("#entry-last")).to_contain_text("Un autre pass de ce carnet")
    stack.scan(other)
    expect(page.locator("#entry-passes li")).to_have_count(2)
    page.locator("#entry-submit").click()
    expect(page.locator("#confirm-title")).to_have_text("Enregistré")
    expect(page.locator("#pending")).to_have_text("0 en attente", timeout=15_000)  # the central has them
    shot(page, "submitted")
    lines = {line["service"]: line["passes"] for line in stack.statement()["by_service"]}
    assert lines.get(service, 0) == before + 2


def test_offline_banner_then_the_pending_count_drains(page: Page, stack: Stack) -> None:
    service, carnet = (12, 20) if page.size_name == "7in" else (124, 21)  # type: ignore[attr-defined]
    login(page)
    start_entry(page, service)
    os.kill(stack.central_pid, signal.SIGSTOP)  # the central stops answering (a bus in a white zone)
    try:
        scanned = stack.scan(stack.passes("gironde")[carnet])
        expect(page.locator("#entry-passes li")).to_have_count(1)
        assert time.monotonic() - scanned < 3.0  # the online check gives up within its timeout
        expect(page.locator("#entry-last")).to_have_attribute("data-tone", "provisional")  # judged offline
        page.locator("#entry-submit").click()
        expect(page.locator("#confirm-title")).to_have_text("Enregistré")
        expect(page.locator("#net")).to_have_text("Hors ligne", timeout=30_000)
        expect(page.locator("#pending")).to_have_text("1 en attente")
        shot(page, "offline")
    finally:
        os.kill(stack.central_pid, signal.SIGCONT)
    expect(page.locator("#pending")).to_have_text("0 en attente", timeout=60_000)
    expect(page.locator("#net")).to_have_text("En ligne")


@pytest.mark.parametrize("size", list(SIZES))
def test_a_new_terminal_is_activated_on_its_touchscreen(browser: Browser, stack: Stack, size: str) -> None:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/aptic-central"), "add-kit", "--organisation", str(stack.seed["organisation"]), "--json"],
        env=stack.env, check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    kit = json.loads(out.stdout)
    port = free_port()
    env = {**stack.env, "APTIC_TERMINAL_DATA_DIR": str(stack.data / f"new-{size}"),
           "APTIC_TERMINAL_KIOSK_PORT": str(port), "APTIC_TERMINAL_CENTRAL_URL": stack.central}  # fmt: skip
    fresh = subprocess.Popen([str(ROOT / ".venv/bin/aptic-terminal"), "run", "--no-scanner"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        context = browser.new_context(viewport=SIZES[size], has_touch=True)
        page = context.new_page()
        page.size_name = size  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                break
            except Exception:
                assert time.monotonic() < deadline and fresh.poll() is None, "the new terminal did not start"
                time.sleep(0.3)
        expect(page.locator("#activation")).to_be_visible()
        pad = page.locator("#activation-pad")

        def type_in(text: str) -> None:
            for char in text:
                pad.get_by_role("button", name=char, exact=True).click()

        type_in(kit["kit_number"].removeprefix("AK-"))
        expect(page.locator("#kit-display")).to_have_text(kit["kit_number"] + "▏")
        page.get_by_role("button", name="Champ suivant").click()
        type_in("ABCD2345")  # a wrong code
        page.get_by_role("button", name="Activer").click()
        expect(page.locator("#activation-error")).not_to_be_empty()
        shot(page, "activation")
        page.locator("#activation-pad").get_by_role("button", name="Tout effacer").click()
        type_in(kit["activation_code"].replace("-", ""))
        expect(page.locator("#code-display")).to_have_text(kit["activation_code"] + "▏")
        page.get_by_role("button", name="Activer").click()
        expect(page.locator("#home")).to_be_visible()
        expect(page.locator("#place-name")).not_to_have_text("Pass #APTIC")
        # The médiateur PIN came with the activation data: the organisation's, set on the central.
        login(page)
        status = subprocess.run([str(ROOT / ".venv/bin/aptic-terminal"), "status", "--json"], env=env,
                                check=True, capture_output=True, text=True, timeout=30)  # fmt: skip
        assert json.loads(status.stdout)["activation"] == "activated"
        context.close()
    finally:
        fresh.terminate()
        fresh.wait(timeout=30)
