"""LEDs and buzzer, asserted on gpiozero's own mock pins."""

from __future__ import annotations

import logging

import pytest
from gpiozero.pins.mock import MockFactory

from terminal.feedback import PATTERNS, Feedback, NoFeedback, Pattern, Pins, open_feedback

# The real patterns, ten times faster, so the suite does not wait seconds for a light to go out.
FAST = {
    kind: Pattern(p.led, p.on / 10, p.off / 10, p.blinks, p.beep_on / 10, p.beep_off / 10, p.beeps)
    for kind, p in PATTERNS.items()
}
PINS = Pins(green=5, amber=6, red=13, buzzer=19)


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def feedback(factory: MockFactory):
    fb = Feedback(PINS, pin_factory=factory, patterns=FAST)
    yield fb
    fb.close()


def lit(factory: MockFactory, pin: int) -> list[bool]:
    """The on/off sequence a pin went through, repeats folded."""
    states = [s.state for s in factory.pin(pin).states]
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


def test_valid_is_green_and_one_beep(feedback: Feedback, factory: MockFactory) -> None:
    feedback.show("valid", wait=True)
    assert lit(factory, PINS.green) == [False, True, False]
    assert lit(factory, PINS.red) == [False]
    assert lit(factory, PINS.amber) == [False]
    assert lit(factory, PINS.buzzer) == [False, True, False]


def test_refused_is_red_and_two_beeps(feedback: Feedback, factory: MockFactory) -> None:
    feedback.show("refused", wait=True)
    assert lit(factory, PINS.red) == [False, True, False]
    assert lit(factory, PINS.green) == [False]
    assert lit(factory, PINS.buzzer) == [False, True, False, True, False]


def test_provisional_is_amber(feedback: Feedback, factory: MockFactory) -> None:
    feedback.show("provisional", wait=True)
    assert lit(factory, PINS.amber) == [False, True, False]
    assert lit(factory, PINS.green) == [False]


def test_error_blinks_red_and_beeps_three_times(feedback: Feedback, factory: MockFactory) -> None:
    feedback.show("error", wait=True)
    assert lit(factory, PINS.red) == [False] + [True, False] * 4
    assert lit(factory, PINS.buzzer) == [False] + [True, False] * 3
    assert lit(factory, PINS.green) == [False]


def test_a_new_verdict_interrupts_the_one_showing(feedback: Feedback, factory: MockFactory) -> None:
    feedback.show("refused")  # plays in the background
    assert factory.pin(PINS.red).state
    feedback.show("valid", wait=True)
    assert not factory.pin(PINS.red).state
    assert lit(factory, PINS.green) == [False, True, False]
    assert feedback.last == "valid"


def test_led_test_plays_every_pattern(feedback: Feedback, factory: MockFactory) -> None:
    feedback.test()
    assert lit(factory, PINS.green).count(True) == 1
    assert lit(factory, PINS.amber).count(True) == 1
    assert lit(factory, PINS.red).count(True) == 1 + 4


def test_pins_are_configurable(factory: MockFactory) -> None:
    fb = Feedback(Pins(green=20, amber=21, red=26, buzzer=16), pin_factory=factory, patterns=FAST)
    fb.show("valid", wait=True)
    fb.close()
    assert lit(factory, 20) == [False, True, False]


@pytest.mark.filterwarnings("ignore::gpiozero.PinFactoryFallback")  # gpiozero trying each factory is the case here
def test_no_gpio_means_no_feedback_and_a_clear_log(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with caplog.at_level(logging.WARNING):
        fb = open_feedback(PINS)
    assert isinstance(fb, NoFeedback)
    assert "no usable GPIO" in caplog.text and "mock" in caplog.text
    fb.show("valid")  # and it does not fail
    assert fb.last == "valid"


def test_mock_pins_for_the_demo() -> None:
    fb = open_feedback(PINS, mock=True)
    assert isinstance(fb, Feedback)
    fb.close()


def test_bus_events_drive_the_leds(feedback: Feedback) -> None:
    from terminal.events import EventBus
    from terminal.feedback import verdict_listener

    bus = EventBus()
    bus.subscribe(verdict_listener(feedback))
    shown = []
    for result in (
        {"valid": True, "provisional": False, "reason": "ok"},
        {"valid": True, "provisional": True, "reason": "ok"},
        {"valid": False, "reason": "expired"},
        {"valid": False, "reason": "malformed"},
    ):
        bus.publish("scan", result=result)
        shown.append(feedback.last)
    bus.publish("refused", message="Mémoire du terminal pleine")
    shown.append(feedback.last)
    assert shown == ["valid", "provisional", "refused", "error", "error"]
