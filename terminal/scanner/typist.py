"""A simulated douchette: text to the key events a scanner emulating a given layout would send.

Used by the virtual douchette (``virtual.py``), the tests and the bench. Each key transition comes out as the
kernel delivers it from a USB keyboard: ``MSC_SCAN``, ``EV_KEY``, ``SYN_REPORT``, all at the same time.

Styles (how the scanner produces the characters that need a modifier):

- ``plain``: Shift (or AltGr) pressed and released around each character that needs it;
- ``held_shift``: Shift held down across a run of characters that need it;
- ``capslock``: CapsLock toggled on for the whole code, Shift only where CapsLock does not already shift
  (on AZERTY this types digits without Shift, as some scanners do), CapsLock toggled off at the end;
- ``keypad``: digits (and ``. / * - +``) on the keypad, other characters as ``plain``;
- ``keypad_numlock_off``: the same after a NumLock press (the scanner toggled NumLock off), NumLock pressed
  again at the end;
- ``altnum``: every character as Alt + its decimal code on the keypad (``0``-prefixed Windows-1252 code for
  characters outside ASCII).

>>> [e[2:] for e in type_text("1", "fr") if e[1] == 1]
[(42, 1), (2, 1), (2, 0), (42, 0), (28, 1), (28, 0)]
"""

from __future__ import annotations

from terminal.scanner.keymaps import (
    EV_KEY,
    EV_MSC,
    EV_SYN,
    KEY_CAPSLOCK,
    KEY_ENTER,
    KEY_LEFTALT,
    KEY_LEFTSHIFT,
    KEY_NUMLOCK,
    KEY_RIGHTALT,
    KEYPAD,
    KEYPAD_DIGIT_KEYS,
    LAYOUTS,
    MSC_SCAN,
    SYN_REPORT,
    Layout,
)

Event = tuple[float, int, int, int]
"""``(t, type, code, value)``: one input event, ``t`` in seconds."""

STYLES = ("plain", "held_shift", "capslock", "keypad", "keypad_numlock_off", "altnum")
_KEYPAD_CODE = {ch: code for code, ch in KEYPAD.items()}


def _stroke(layout: Layout, ch: str) -> tuple[int, bool, bool]:
    """The simplest (code, shift, altgr) typing ``ch``: fewest modifiers first."""
    options = sorted(layout.strokes(ch), key=lambda s: (s[2], s[1]))
    if not options:
        raise ValueError(f"layout {layout.name!r} cannot type {ch!r}")
    return options[0]


def key_transitions(text: str, layout: str = "us", style: str = "plain") -> list[tuple[int, int]]:
    """The ``(code, value)`` key transitions (1 down, 0 up) that type ``text``; no terminator."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    keymap = LAYOUTS[layout]
    out: list[tuple[int, int]] = []

    def tap(code: int) -> None:
        out.extend(((code, 1), (code, 0)))

    if style == "altnum":
        for ch in text:
            digits = str(ord(ch)) if ord(ch) < 128 else "0" + str(ch.encode("cp1252")[0])
            out.append((KEY_LEFTALT, 1))
            for d in digits:
                tap(KEYPAD_DIGIT_KEYS[int(d)])
            out.append((KEY_LEFTALT, 0))
        return out
    caps = style == "capslock"
    if caps:
        tap(KEY_CAPSLOCK)
    if style == "keypad_numlock_off":
        tap(KEY_NUMLOCK)
    held = False
    for ch in text:
        if style.startswith("keypad") and ch in _KEYPAD_CODE:
            if held:
                out.append((KEY_LEFTSHIFT, 0))
                held = False
            tap(_KEYPAD_CODE[ch])
            continue
        code, shift, altgr = _stroke(keymap, ch)
        if caps and code in keymap.caps:
            shift = not shift
        if style == "held_shift":
            if shift != held:
                out.append((KEY_LEFTSHIFT, 1 if shift else 0))
                held = shift
            shift = False
        elif held:
            out.append((KEY_LEFTSHIFT, 0))
            held = False
        if shift:
            out.append((KEY_LEFTSHIFT, 1))
        if altgr:
            out.append((KEY_RIGHTALT, 1))
        tap(code)
        if altgr:
            out.append((KEY_RIGHTALT, 0))
        if shift:
            out.append((KEY_LEFTSHIFT, 0))
    if held:
        out.append((KEY_LEFTSHIFT, 0))
    if style == "keypad_numlock_off":
        tap(KEY_NUMLOCK)
    if caps:
        tap(KEY_CAPSLOCK)
    return out


def events_for(transitions: list[tuple[int, int]], start: float = 0.0, interval: float = 0.008) -> list[Event]:
    """Kernel-like events for key transitions, a key (down and up) every ``interval`` seconds."""
    events: list[Event] = []
    t = start
    step = interval / 2
    for code, value in transitions:
        events.append((t, EV_MSC, MSC_SCAN, code))
        events.append((t, EV_KEY, code, value))
        events.append((t, EV_SYN, SYN_REPORT, 0))
        t += step
    return events


def type_text(
    text: str,
    layout: str = "us",
    style: str = "plain",
    *,
    start: float = 0.0,
    interval: float = 0.008,
    terminator: int | None = KEY_ENTER,
) -> list[Event]:
    """The events of a scanner typing ``text`` then ``terminator`` (None: no terminator)."""
    transitions = key_transitions(text, layout, style)
    if terminator is not None:
        transitions += [(terminator, 1), (terminator, 0)]
    return events_for(transitions, start, interval)
