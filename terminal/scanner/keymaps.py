"""Key codes and keyboard layouts, as small tables, for decoding what a douchette types.

A USB barcode scanner is a keyboard: it sends the *key codes* that would produce the barcode's characters on
a host whose keyboard layout is the one the scanner was told to emulate (its "keyboard language" setting).
The kernel gives us key codes only, never characters, so we turn them back into characters here with the
layout's table, independent of any X server or console layout.

Each layout maps a key code to its characters on four levels: ``(base, shift, altgr, shift+altgr)``; ``None``
means the key types nothing on that level. A key listed in ``caps`` is affected by CapsLock, which then acts as
Shift for it (and Shift with CapsLock on gives the base level back).

- ``us``: US QWERTY. CapsLock affects letters only.
- ``fr``: French AZERTY as on Windows, the layout a douchette set to "France" emulates. Digits are on the
  *shifted* level of the top row (the base level is ``& é " ' ( - è _ ç à``). CapsLock affects letters *and
  the top row*: with CapsLock on, the top row types digits without Shift (Windows behaviour, which some
  scanners rely on; Linux's own ``fr`` xkb layout leaves the top row alone under CapsLock). The ``^`` and ``¨``
  key is a dead key: it combines with the next vowel, and gives itself before a space or another character.

Keypad keys are layout-independent (see ``KEYPAD``) and Alt+numpad decimal codes are decoded by the decoder.

The key code numbers are Linux's (``linux/input-event-codes.h``), written out so the decoder does not need
python-evdev; ``tests/scanner`` checks them against ``evdev.ecodes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Event types and codes (linux/input-event-codes.h).
EV_SYN, EV_KEY, EV_MSC = 0, 1, 4
SYN_REPORT, SYN_DROPPED = 0, 3
MSC_SCAN = 4
VALUE_UP, VALUE_DOWN, VALUE_REPEAT = 0, 1, 2  # EV_KEY values

KEY_ESC = 1
KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9, KEY_0 = range(2, 12)
KEY_MINUS, KEY_EQUAL, KEY_BACKSPACE, KEY_TAB = 12, 13, 14, 15
KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P = range(16, 26)
KEY_LEFTBRACE, KEY_RIGHTBRACE, KEY_ENTER, KEY_LEFTCTRL = 26, 27, 28, 29
KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L = range(30, 39)
KEY_SEMICOLON, KEY_APOSTROPHE, KEY_GRAVE, KEY_LEFTSHIFT, KEY_BACKSLASH = 39, 40, 41, 42, 43
KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M = range(44, 51)
KEY_COMMA, KEY_DOT, KEY_SLASH, KEY_RIGHTSHIFT, KEY_KPASTERISK, KEY_LEFTALT, KEY_SPACE, KEY_CAPSLOCK = range(51, 59)
KEY_NUMLOCK = 69
KEY_KP7, KEY_KP8, KEY_KP9, KEY_KPMINUS, KEY_KP4, KEY_KP5, KEY_KP6, KEY_KPPLUS = range(71, 79)
KEY_KP1, KEY_KP2, KEY_KP3, KEY_KP0, KEY_KPDOT = range(79, 84)
KEY_102ND = 86
KEY_KPENTER, KEY_RIGHTCTRL, KEY_KPSLASH, KEY_RIGHTALT = 96, 97, 98, 100
KEY_LEFTMETA, KEY_RIGHTMETA = 125, 126

DIGIT_KEYS = (KEY_0, KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9)
"""Top-row key codes of the digits 0-9, in order."""
KEYPAD_DIGIT_KEYS = (KEY_KP0, KEY_KP1, KEY_KP2, KEY_KP3, KEY_KP4, KEY_KP5, KEY_KP6, KEY_KP7, KEY_KP8, KEY_KP9)
"""Keypad key codes of the digits 0-9, in order."""

TERMINATOR_KEYS = {"enter": KEY_ENTER, "kpenter": KEY_KPENTER, "tab": KEY_TAB}
"""Names of the keys that may end a read (``DecoderConfig.terminators``)."""

KEYPAD: dict[int, str] = {code: str(d) for d, code in enumerate(KEYPAD_DIGIT_KEYS)}
KEYPAD.update({KEY_KPDOT: ".", KEY_KPSLASH: "/", KEY_KPASTERISK: "*", KEY_KPMINUS: "-", KEY_KPPLUS: "+"})
KEYPAD_NUMLOCK_ONLY = frozenset(KEYPAD_DIGIT_KEYS) | {KEY_KPDOT}
"""Keypad keys that type a character only with NumLock on (off, they are arrows, Home, End, Ins, Del)."""

Levels = tuple[str | None, str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class Layout:
    """One keyboard layout: ``keys[code] = (base, shift, altgr, shift+altgr)``, ``caps`` the CapsLock keys."""

    name: str
    keys: dict[int, Levels]
    caps: frozenset[int]
    dead_keys: frozenset[int] = frozenset()
    dead: dict[str, dict[str, str]] | None = None

    def char(self, code: int, shift: bool, altgr: bool, caps: bool) -> str | None:
        """The character ``code`` types with these modifiers, or None if it types nothing."""
        levels = self.keys.get(code)
        if levels is None:
            return None
        if caps and code in self.caps:
            shift = not shift
        return levels[(2 if altgr else 0) + (1 if shift else 0)]

    def strokes(self, ch: str) -> Iterator[tuple[int, bool, bool]]:
        """Every ``(code, shift, altgr)`` that types ``ch`` without CapsLock (for simulated scanners)."""
        for code, levels in self.keys.items():
            if code in self.dead_keys:
                continue
            for level, c in enumerate(levels):
                if c == ch:
                    yield code, bool(level & 1), bool(level & 2)


def _row(codes: tuple[int, ...], base: str, shifted: str) -> dict[int, Levels]:
    return {code: (b, s, None, None) for code, b, s in zip(codes, base, shifted, strict=True)}


_TOP = (KEY_GRAVE, KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9, KEY_0, KEY_MINUS, KEY_EQUAL)
_ROW_Q = (KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P, KEY_LEFTBRACE, KEY_RIGHTBRACE)
_ROW_A = (KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L, KEY_SEMICOLON, KEY_APOSTROPHE,
          KEY_BACKSLASH)  # fmt: skip
_ROW_Z = (KEY_102ND, KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M, KEY_COMMA, KEY_DOT, KEY_SLASH)
_LETTER_KEYS = frozenset(_ROW_Q[:10] + _ROW_A[:9] + _ROW_Z[1:8])

_US_KEYS: dict[int, Levels] = {
    **_row(_TOP, "`1234567890-=", "~!@#$%^&*()_+"),
    **_row(_ROW_Q, "qwertyuiop[]", "QWERTYUIOP{}"),
    **_row(_ROW_A, "asdfghjkl;'\\", 'ASDFGHJKL:"|'),
    **_row(_ROW_Z, "<zxcvbnm,./", ">ZXCVBNM<>?"),
    KEY_SPACE: (" ", " ", None, None),
}

US = Layout("us", _US_KEYS, _LETTER_KEYS)

_FR_TOP_ALTGR = (None, None, "~", "#", "{", "[", "|", "`", "\\", "^", "@", "]", "}")
_FR_KEYS: dict[int, Levels] = {
    **_row(_TOP, "²&é\"'(-è_çà)=", "~1234567890°+"),
    **_row(_ROW_Q, "azertyuiop^$", "AZERTYUIOP¨£"),
    **_row(_ROW_A, "qsdfghjklmù*", "QSDFGHJKLM%µ"),
    **_row(_ROW_Z, "<wxcvbn,;:!", ">WXCVBN?./§"),
    KEY_SPACE: (" ", " ", None, None),
}
for _code, _altgr in zip(_TOP, _FR_TOP_ALTGR, strict=True):
    _b, _s, _, _ = _FR_KEYS[_code]
    _FR_KEYS[_code] = (_b, _s, _altgr, None)
_FR_KEYS[KEY_E] = ("e", "E", "€", None)
_FR_KEYS[KEY_RIGHTBRACE] = ("$", "£", "¤", None)
del _code, _altgr, _b, _s

_FR_LETTERS = frozenset({KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P, KEY_A, KEY_S,
                         KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L, KEY_SEMICOLON, KEY_Z, KEY_X, KEY_C,
                         KEY_V, KEY_B, KEY_N})  # fmt: skip
_FR_DEAD = {
    "^": dict(zip("aeiouAEIOU", "âêîôûÂÊÎÔÛ", strict=True)),
    "¨": dict(zip("aeiouyAEIOU", "äëïöüÿÄËÏÖÜ", strict=True)),
}

FR = Layout("fr", _FR_KEYS, _FR_LETTERS | frozenset(DIGIT_KEYS), frozenset({KEY_LEFTBRACE}), _FR_DEAD)

LAYOUTS: dict[str, Layout] = {"us": US, "fr": FR}
"""The keyboard layouts a douchette may emulate, by name."""
