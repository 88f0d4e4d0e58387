"""The douchette decoder: a pure state machine from key events to finished reads.

One :class:`Decoder` per douchette. Feed it the device's events as ``(t, type, code, value)`` (the numbers of
``struct input_event``; ``t`` in seconds) and it returns what they finished::

    >>> from terminal.scanner.keymaps import EV_KEY, KEY_1, KEY_2, KEY_ENTER
    >>> d = Decoder(DecoderConfig(layout="us"))
    >>> d.feed(0.00, EV_KEY, KEY_1, 1), d.feed(0.01, EV_KEY, KEY_2, 1)
    ([], [])
    >>> d.feed(0.02, EV_KEY, KEY_ENTER, 1)
    [Read(text='12', layout='us', t=0.02)]

No I/O, no clock, no evdev: the reader feeds it, tests feed it lists. What it does, in order of the issue:

- Only key *down* (value 1) types; repeats (value 2) are ignored; key up matters for modifiers only.
- Modifiers are tracked from the events: both Shifts, CapsLock and NumLock (toggles), AltGr (right Alt), Alt
  and Ctrl. A key typed with Ctrl, Meta or left Alt held is a shortcut, not text, and is ignored.
- Enter, keypad Enter and Tab end a read (``DecoderConfig.terminators``). An optional ``prefix`` must start
  the read and is removed; an optional ``suffix`` ends the read by itself and is removed.
- A read whose keys stop for longer than ``idle_timeout`` without a terminator is discarded with reason
  ``timeout``, or delivered if ``flush_on_idle`` (terminator-less scanners). The decoder sees the gap on the
  next key, or when the reader calls :meth:`Decoder.tick` at :attr:`Decoder.deadline`.
- ``SYN_DROPPED`` (the kernel's buffer overflowed) discards the current read (``syn_dropped``), resets the
  modifiers, and skips what follows until the next terminator or idle gap, since that is the tail of the
  same, damaged scan. A read longer than ``max_length`` is discarded (``too_long``) the same way.
- Keys are kept as strokes (key code plus modifier state) and turned into text only when the read ends, so
  one read can be decoded in several layouts. ``layout="auto"`` keeps the layout that gives a well-formed pass
  number (18 digits, check digits; :func:`aptic.passnumber.is_well_formed`), trying the configured
  ``fallback`` first, otherwise decodes with the ``fallback``. When several layouts give the same pass number
  (digits typed with CapsLock on read the same in US and AZERTY) the read says the ``fallback``.
- Keypad digits and Alt+numpad decimal codes (Alt held, keypad digits, Alt released; ``0``-prefixed codes are
  Windows-1252, others code page 437) are the same in every layout; a read typed only with them says
  ``keypad`` or ``altnum``.
- Keypad digits are digits whatever the NumLock state, because a douchette that sends keypad keys always
  means digits and cannot know the host's NumLock; ``numlock_strict=True`` gives the keyboard behaviour
  (NumLock off: keypad digits are arrows and type nothing).

Discard reasons: ``timeout``, ``syn_dropped``, ``too_long``, ``missing_prefix``, ``unplugged`` (the reader
calls :meth:`Decoder.unplug`), ``stopped`` (the reader stops), ``end_of_input`` (``scanner decode`` at EOF).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aptic.passnumber import is_well_formed
from terminal.scanner.keymaps import (
    EV_KEY,
    EV_SYN,
    KEY_BACKSPACE,
    KEY_CAPSLOCK,
    KEY_ENTER,
    KEY_KPENTER,
    KEY_LEFTALT,
    KEY_LEFTCTRL,
    KEY_LEFTMETA,
    KEY_LEFTSHIFT,
    KEY_NUMLOCK,
    KEY_RIGHTALT,
    KEY_RIGHTCTRL,
    KEY_RIGHTMETA,
    KEY_RIGHTSHIFT,
    KEY_TAB,
    KEYPAD,
    KEYPAD_DIGIT_KEYS,
    KEYPAD_NUMLOCK_ONLY,
    LAYOUTS,
    SYN_DROPPED,
    SYN_REPORT,
    VALUE_DOWN,
    Layout,
)

AUTO = "auto"
LAYOUT_CHOICES = (AUTO, "us", "fr")
"""Values of ``DecoderConfig.layout``; a read's ``layout`` is one of ``us``, ``fr``, ``keypad``, ``altnum``."""

_SHIFTS = {KEY_LEFTSHIFT: 1, KEY_RIGHTSHIFT: 2}
_CTRLS = {KEY_LEFTCTRL: 1, KEY_RIGHTCTRL: 2}
_METAS = {KEY_LEFTMETA: 1, KEY_RIGHTMETA: 2}
_KEYPAD_DIGIT = {code: str(d) for d, code in enumerate(KEYPAD_DIGIT_KEYS)}
_TEXT_KEYS = frozenset().union(*(layout.keys for layout in LAYOUTS.values()))


def is_pass_number(text: str) -> bool:
    """What ``auto`` looks for: digits only (spaces allowed) that make a well-formed pass number."""
    return bool(text) and all(c in "0123456789 " for c in text) and is_well_formed(text)


@dataclass(frozen=True, slots=True)
class DecoderConfig:
    """How to decode one douchette. The defaults suit a scanner that ends each code with Enter."""

    layout: str = AUTO
    """``auto``, ``us`` or ``fr``: the layout the douchette emulates (``auto``: find it per read)."""
    fallback: str = "us"
    """The layout ``auto`` uses when no layout gives a well-formed pass number (and tries first)."""
    terminators: frozenset[int] = frozenset({KEY_ENTER, KEY_KPENTER, KEY_TAB})
    """Key codes that end a read (down event)."""
    prefix: str = ""
    suffix: str = ""
    idle_timeout: float = 0.2
    """Seconds without a key after which an unterminated read is discarded (or delivered)."""
    flush_on_idle: bool = False
    """Deliver, rather than discard, a read that ends by idle time (scanners that send no terminator)."""
    max_length: int = 64
    """Longest read in keystrokes; a longer one is discarded as ``too_long``."""
    numlock_strict: bool = False
    accept: Callable[[str], bool] = field(default=is_pass_number, compare=False)
    """The test ``auto`` uses to recognise the right layout."""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUT_CHOICES:
            raise ValueError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUT_CHOICES)}")
        if self.fallback not in LAYOUTS:
            raise ValueError(f"unknown fallback layout {self.fallback!r}; choose one of {', '.join(LAYOUTS)}")
        if self.idle_timeout <= 0 or self.max_length <= 0:
            raise ValueError("idle_timeout and max_length must be positive")


@dataclass(frozen=True, slots=True)
class Read:
    """A finished read: the code, the layout that decoded it, the time of its terminating key event."""

    text: str
    layout: str
    t: float


@dataclass(frozen=True, slots=True)
class Discard:
    """A read thrown away: what had been typed so far, why (a stable snake_case reason), and when."""

    text: str
    reason: str
    t: float


Result = Read | Discard
_NOTHING: list[Result] = []  # returned by feed() on the hot path; callers must not mutate it

# A stroke is (code, shift, altgr, caps) for a layout key, or (-1, char, kind) for a keypad or Alt+numpad one.
Stroke = tuple


def _altnum_char(digits: str) -> str:
    """The character of an Alt+numpad decimal code, as Windows reads it."""
    value = int(digits)
    if digits.startswith("0"):
        return bytes([value % 256]).decode("cp1252", errors="replace") if value < 256 else chr(value)
    return bytes([value % 256]).decode("cp437")


class Decoder:
    """The state machine of one douchette (see the module docstring). Not thread-safe: one feeder."""

    def __init__(self, config: DecoderConfig | None = None) -> None:
        self.config = config or DecoderConfig()
        self.detected_layout: str | None = None
        """The layout of the last read that ``auto`` recognised as a pass number (for diagnostics)."""
        self.caps = False
        self.numlock = True
        self._strokes: list[Stroke] = []
        self._last = 0.0  # time of the last key down of the current read
        self._skipping = False  # after SYN_DROPPED or too_long: ignore keys until a terminator or idle gap
        self._dropping = False  # after SYN_DROPPED: ignore events until SYN_REPORT
        self._altnum = ""
        self._shift = self._ctrl = self._meta = 0
        self._alt = self._altgr = False
        self._terminators = self.config.terminators
        self._idle = self.config.idle_timeout

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """True while a read has started and not ended."""
        return bool(self._strokes or self._altnum or self._skipping)

    @property
    def deadline(self) -> float | None:
        """The time at which :meth:`tick` will end the pending read, or None when nothing is pending."""
        return self._last + self._idle if self.pending else None

    def reset_modifiers(self) -> None:
        """Forget held modifiers and lock states (after SYN_DROPPED, or a replugged device)."""
        self._shift = self._ctrl = self._meta = 0
        self._alt = self._altgr = False
        self.caps = False
        self.numlock = True
        self._altnum = ""

    # -- input ---------------------------------------------------------------------------------------------

    def feed(self, t: float, type_: int, code: int, value: int) -> list[Result]:
        """Take one event; return the reads and discards it finished (usually none)."""
        if type_ != EV_KEY:
            if type_ == EV_SYN:
                if code == SYN_DROPPED:
                    return self._drop(t)
                if code == SYN_REPORT:
                    self._dropping = False
            return _NOTHING
        if self._dropping or value > VALUE_DOWN:  # repeats (2) never type
            return _NOTHING
        down = value == VALUE_DOWN
        # Modifiers, on both edges.
        if code in _SHIFTS:
            self._shift = self._shift | _SHIFTS[code] if down else self._shift & ~_SHIFTS[code]
            return _NOTHING
        if code in (KEY_LEFTALT, KEY_RIGHTALT):
            if code == KEY_LEFTALT:
                self._alt = down
            else:
                self._altgr = down
            if not down and self._altnum and not (self._alt or self._altgr):
                digits, self._altnum = self._altnum, ""
                return self._add(t, (-1, _altnum_char(digits), "altnum"))
            return _NOTHING
        if code in _CTRLS:
            self._ctrl = self._ctrl | _CTRLS[code] if down else self._ctrl & ~_CTRLS[code]
            return _NOTHING
        if code in _METAS:
            self._meta = self._meta | _METAS[code] if down else self._meta & ~_METAS[code]
            return _NOTHING
        if not down:
            return _NOTHING
        # A key down: first, has the pending read timed out?
        results = self._expire(t) if self.pending and t - self._last > self._idle else _NOTHING
        if code == KEY_CAPSLOCK:
            self.caps = not self.caps
            return results
        if code == KEY_NUMLOCK:
            self.numlock = not self.numlock
            return results
        if code in self._terminators:
            return results + self._finish(t) if results else self._finish(t)
        if self._skipping:
            self._last = t
            return results
        if self._ctrl or self._meta:
            return results
        if code in KEYPAD:
            if (self._alt or self._altgr) and code in _KEYPAD_DIGIT:
                self._altnum += _KEYPAD_DIGIT[code]
                self._last = t
                return results
            if self.config.numlock_strict and not self.numlock and code in KEYPAD_NUMLOCK_ONLY:
                return results
            stroke: Stroke = (-1, KEYPAD[code], "keypad")
        elif code in _TEXT_KEYS:
            if self._alt:
                return results
            stroke = (code, bool(self._shift), self._altgr, self.caps)
        elif code == KEY_BACKSPACE:
            if self._strokes:
                self._strokes.pop()
                self._last = t
            return results
        else:
            return results  # function keys, arrows, Esc...: not text
        added = self._add(t, stroke)
        return results + added if results else added

    def tick(self, now: float) -> list[Result]:
        """End the pending read if its idle time has passed at ``now`` (same clock as the events)."""
        if self.pending and now - self._last > self._idle:
            return self._expire(now)
        return _NOTHING

    def unplug(self, t: float) -> list[Result]:
        """The device went away: discard the pending read (``unplugged``) and reset everything."""
        return self.abort(t, "unplugged")

    def abort(self, t: float, reason: str) -> list[Result]:
        """Discard the pending read, if any, with ``reason``; reset modifiers."""
        partial = self._text_for_discard() if (self._strokes or self._altnum) else None
        self._clear()
        self.reset_modifiers()
        self._dropping = False
        return [Discard(partial, reason, t)] if partial is not None else []

    # -- internals -----------------------------------------------------------------------------------------

    def _clear(self) -> None:
        self._strokes = []
        self._altnum = ""
        self._skipping = False

    def _drop(self, t: float) -> list[Result]:
        partial = self._text_for_discard()
        self._clear()
        self.reset_modifiers()
        self._dropping = True
        self._skipping = True
        self._last = t
        return [Discard(partial, "syn_dropped", t)]

    def _add(self, t: float, stroke: Stroke) -> list[Result]:
        self._strokes.append(stroke)
        self._last = t
        if len(self._strokes) > self.config.max_length:
            partial = self._text_for_discard()
            self._clear()
            self._skipping = True
            return [Discard(partial, "too_long", t)]
        suffix = self.config.suffix
        if suffix and self._decode(self._expected_layout())[0].endswith(suffix):
            return self._finish(t)
        return _NOTHING

    def _expire(self, now: float) -> list[Result]:
        if self._skipping:
            self._clear()
            return _NOTHING
        if self._altnum:  # Alt still held at the gap: keep the typed code
            self._strokes.append((-1, _altnum_char(self._altnum), "altnum"))
            self._altnum = ""
        at = self._last + self._idle
        if self.config.flush_on_idle:
            return self._finish(self._last)
        partial = self._text_for_discard()
        self._clear()
        return [Discard(partial, "timeout", min(now, at))]

    def _finish(self, t: float) -> list[Result]:
        """A terminator (or suffix, or idle flush) at ``t``: turn the strokes into a read."""
        if self._skipping or not self._strokes:
            self._clear()
            return _NOTHING
        text, label = self._choose()
        raw = self._text_for_discard()
        self._clear()
        prefix = self.config.prefix
        if prefix:
            if not text.startswith(prefix):
                return [Discard(raw, "missing_prefix", t)]
            text = text[len(prefix) :]
        if not text:
            return _NOTHING
        return [Read(text, label, t)]

    def _layouts(self) -> list[Layout]:
        fallback = self.config.fallback
        if self.config.layout != AUTO:
            return [LAYOUTS[self.config.layout]]
        return [LAYOUTS[fallback]] + [layout for name, layout in LAYOUTS.items() if name != fallback]

    def _expected_layout(self) -> Layout:
        """The layout this device is believed to use: fixed, else the last detected one, else the fallback."""
        if self.config.layout != AUTO:
            return LAYOUTS[self.config.layout]
        return LAYOUTS.get(self.detected_layout or "", LAYOUTS[self.config.fallback])

    def _candidates(self) -> list[tuple[str, str]]:
        return [self._decode(layout) for layout in self._layouts()]

    def _choose(self) -> tuple[str, str]:
        """The text and layout of the finished strokes (``auto``: the layout that gives a pass number)."""
        candidates = [(self._strip(text), label) for text, label in self._candidates()]
        if self.config.layout == AUTO:
            prefix, accept = self.config.prefix, self.config.accept
            for text, label in candidates:
                if accept(text[len(prefix) :] if prefix and text.startswith(prefix) else text):
                    self.detected_layout = label
                    return text, label
        return candidates[0]

    def _strip(self, text: str) -> str:
        suffix = self.config.suffix
        return text[: -len(suffix)] if suffix and text.endswith(suffix) else text

    def _text_for_discard(self) -> str:
        """The partial text in the layout reads would fall back to (for logs and the Terminal)."""
        text = self._decode(self._layouts()[0])[0] if self._strokes else ""
        return text + (_altnum_char(self._altnum) if self._altnum else "")

    def _decode(self, layout: Layout) -> tuple[str, str]:
        """The strokes as text in ``layout``, and the read's layout label."""
        out: list[str] = []
        dead: str | None = None
        used_layout = used_altnum = False
        for stroke in self._strokes:
            if stroke[0] < 0:
                ch = stroke[1]
                if stroke[2] == "altnum":
                    used_altnum = True
            else:
                code, shift, altgr, caps = stroke
                ch = layout.char(code, shift, altgr, caps)
                if ch is None:
                    continue
                used_layout = True
                if code in layout.dead_keys:
                    if dead is not None:
                        out.append(dead)
                    dead = ch
                    continue
            if dead is not None:
                composed = layout.dead[dead].get(ch) if layout.dead else None
                if composed:
                    out.append(composed)
                    dead = None
                    continue
                out.append(dead)
                dead = None
                if ch == " ":
                    continue
            out.append(ch)
        if dead is not None:
            out.append(dead)
        label = layout.name if used_layout else "altnum" if used_altnum else "keypad" if self._strokes else layout.name
        return "".join(out), label
