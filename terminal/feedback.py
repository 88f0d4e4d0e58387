"""LEDs and buzzer: the verdict for people who are not looking at the screen.

Three LEDs (green, amber, red) and a buzzer, driven by gpiozero. Each verdict has a pattern a médiateur
learns within a day: green and one short beep for a valid pass, red and two long beeps for a refusal,
amber and one short beep for a provisional (offline) acceptance, red blinking and three short beeps for an
error (unreadable scan, full outbox).

>>> from gpiozero.pins.mock import MockFactory
>>> feedback = Feedback(Pins(), pin_factory=MockFactory())
>>> feedback.show("valid", wait=True)
>>> feedback.close()

Off the Pi, pass gpiozero's ``MockFactory`` (the demo and the tests do), or set
``GPIOZERO_PIN_FACTORY=mock``. When no pin factory works at all, ``open_feedback()`` logs why and returns a
``Feedback`` that does nothing: a terminal without LEDs still scans.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gpiozero import LED, Buzzer
from gpiozero.exc import BadPinFactory
from gpiozero.pins import Factory

if TYPE_CHECKING:
    from terminal.events import Event

log = logging.getLogger(__name__)

Kind = Literal["valid", "refused", "provisional", "error"]


@dataclass(frozen=True, slots=True)
class Pins:
    """BCM pin numbers (configurable: a HAT or a breadboard wires them differently)."""

    green: int = 17
    amber: int = 27
    red: int = 22
    buzzer: int = 23


@dataclass(frozen=True, slots=True)
class Pattern:
    """One LED lit ``blinks`` times for ``on`` seconds (``off`` between), while the buzzer beeps."""

    led: Literal["green", "amber", "red"]
    on: float
    off: float
    blinks: int
    beep_on: float
    beep_off: float
    beeps: int

    @property
    def duration(self) -> float:
        return max(self.blinks * (self.on + self.off), self.beeps * (self.beep_on + self.beep_off))


PATTERNS: dict[Kind, Pattern] = {
    "valid": Pattern("green", on=2.0, off=0.0, blinks=1, beep_on=0.12, beep_off=0.0, beeps=1),
    "refused": Pattern("red", on=3.0, off=0.0, blinks=1, beep_on=0.4, beep_off=0.2, beeps=2),
    "provisional": Pattern("amber", on=2.0, off=0.0, blinks=1, beep_on=0.12, beep_off=0.0, beeps=1),
    "error": Pattern("red", on=0.25, off=0.25, blinks=4, beep_on=0.08, beep_off=0.08, beeps=3),
}


class Feedback:
    """Shows verdicts on the LEDs and the buzzer. A new verdict interrupts the one still showing.

    ``show()`` returns at once; the pattern plays in gpiozero's background threads. ``wait=True`` blocks
    until it has played (tests and the LED test of the diagnostics screen use it).
    """

    def __init__(
        self,
        pins: Pins = Pins(),
        *,
        pin_factory: Factory | None = None,
        patterns: dict[Kind, Pattern] = PATTERNS,
    ) -> None:
        self._patterns = patterns
        self._lock = threading.Lock()
        self._leds = {
            "green": LED(pins.green, pin_factory=pin_factory),
            "amber": LED(pins.amber, pin_factory=pin_factory),
            "red": LED(pins.red, pin_factory=pin_factory),
        }
        self._buzzer = Buzzer(pins.buzzer, pin_factory=pin_factory)
        self.last: Kind | None = None

    def show(self, kind: Kind, *, wait: bool = False) -> None:
        pattern = self._patterns[kind]
        with self._lock:
            self.last = kind
            for led in self._leds.values():
                led.off()
            self._buzzer.off()
            self._buzzer.beep(pattern.beep_on, pattern.beep_off, n=pattern.beeps, background=True)
            led = self._leds[pattern.led]
            led.blink(pattern.on, pattern.off, n=pattern.blinks, background=not wait)
        if wait:
            # The LED blinked in this thread; the buzzer's pattern is never longer than the LED's here,
            # but join it anyway so "wait" means the whole pattern has played.
            thread = getattr(self._buzzer, "_blink_thread", None)
            if thread is not None:
                thread.join(pattern.duration + 1)

    def test(self) -> None:
        """Every pattern in turn, for the diagnostics screen's LED and buzzer test."""
        for kind in self._patterns:
            self.show(kind, wait=True)

    def close(self) -> None:
        with self._lock:
            for device in (*self._leds.values(), self._buzzer):
                device.close()


class NoFeedback:
    """What a terminal without working GPIO uses: the same calls, no light, no sound."""

    last: Kind | None = None

    def show(self, kind: Kind, *, wait: bool = False) -> None:
        self.last = kind

    def test(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_feedback(pins: Pins = Pins(), *, mock: bool = False) -> Feedback | NoFeedback:
    """LEDs and buzzer on this machine's GPIO, on gpiozero's mock pins (``mock=True``), or none at all."""
    factory: Factory | None = None
    if mock:
        from gpiozero.pins.mock import MockFactory

        factory = MockFactory()
    try:
        return Feedback(pins, pin_factory=factory)
    except (BadPinFactory, OSError, RuntimeError) as error:
        log.warning(
            "no usable GPIO (%s): LEDs and buzzer are off; on a Raspberry Pi install lgpio, elsewhere use "
            "the mock pins",
            error,
        )
        return NoFeedback()


def verdict_listener(feedback: Feedback | NoFeedback) -> Callable[[Event], None]:
    """A bus listener that shows each scan's verdict, and refusals of the terminal itself, on the LEDs:
    ``bus.subscribe(verdict_listener(feedback))``."""

    def listen(event: Event) -> None:
        if event.kind == "scan":
            result = event.data.get("result", {})
            if not result.get("valid"):
                feedback.show("error" if result.get("reason") == "malformed" else "refused")
            else:
                feedback.show("provisional" if result.get("provisional") else "valid")
        elif event.kind in ("refused", "late_rejection"):
            feedback.show("error")

    return listen
