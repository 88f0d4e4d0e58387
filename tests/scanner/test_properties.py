"""Property-based: whatever a simulated scanner types, in any supported layout and style, decodes exactly."""

from __future__ import annotations

import evdev.ecodes
from hypothesis import given, settings
from hypothesis import strategies as st

from aptic.passnumber import build, hmac_authenticator
from terminal.scanner import keymaps
from terminal.scanner.decoder import Decoder, DecoderConfig, Read
from terminal.scanner.typist import STYLES, events_for, key_transitions, type_text

AUTH = hmac_authenticator(b"test")
pass_numbers = st.builds(
    lambda millesime, serial, position: build(millesime, serial, position, AUTH),
    st.integers(2000, 2099),
    st.integers(0, 9_999_999),
    st.integers(1, 10),
)
layouts = st.sampled_from(["us", "fr"])
styles = st.sampled_from(STYLES)
intervals = st.floats(0.001, 0.05)


def decode(events: list, config: DecoderConfig) -> list:
    d = Decoder(config)
    out: list = []
    for e in events:
        out += d.feed(*e)
    return out


@settings(max_examples=300, deadline=None)
@given(pass_numbers, layouts, styles, intervals, st.sampled_from(["us", "fr"]))
def test_any_pass_number_in_any_layout_decodes_exactly_in_auto(
    number: str, layout: str, style: str, interval: float, fallback: str
) -> None:
    events = type_text(number, layout, style, start=100.0, interval=interval)
    [read] = decode(events, DecoderConfig(fallback=fallback))
    assert isinstance(read, Read)
    assert read.text == number
    expected = {"keypad": "keypad", "keypad_numlock_off": "keypad", "altnum": "altnum"}.get(style, layout)
    if style == "capslock":  # CapsLock + unshifted top row is digits in both layouts
        assert read.layout in ("us", "fr")
    else:
        assert read.layout == expected


@settings(max_examples=200, deadline=None)
@given(pass_numbers, layouts, styles, st.data())
def test_key_repeats_and_stray_key_ups_change_nothing(number: str, layout: str, style: str, data) -> None:
    transitions = [*key_transitions(number, layout, style), (keymaps.KEY_ENTER, 1), (keymaps.KEY_ENTER, 0)]
    noisy = []
    for code, value in transitions:
        noisy.append((code, value))
        if value == 1 and data.draw(st.booleans()):
            noisy.append((code, 2))  # autorepeat of the key just pressed
        if data.draw(st.booleans()):
            noisy.append((keymaps.KEY_ENTER, 0))  # a terminator's key-up alone ends nothing
    [read] = decode(events_for(noisy), DecoderConfig())
    assert read.text == number


def _typable(layout: str) -> st.SearchStrategy[str]:
    keymap = keymaps.LAYOUTS[layout]
    chars = sorted(
        {c for code, levels in keymap.keys.items() if code not in keymap.dead_keys for c in levels if c is not None}
    )
    return st.text(st.sampled_from(chars), min_size=1, max_size=40).filter(lambda s: s.strip(" ") != "")


@settings(max_examples=200, deadline=None)
@given(st.data(), layouts, st.sampled_from(["plain", "held_shift", "capslock", "keypad"]))
def test_any_text_typed_in_a_fixed_layout_decodes_exactly(data, layout: str, style: str) -> None:
    text = data.draw(_typable(layout))
    [read] = decode(type_text(text, layout, style), DecoderConfig(layout=layout))
    assert read.text == text


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30))
def test_any_ascii_text_through_alt_numpad(text: str) -> None:
    [read] = decode(type_text(text, "us", "altnum"), DecoderConfig())
    assert read.text == text and read.layout == "altnum"


def test_key_codes_match_the_kernel() -> None:
    names = [n for n in dir(keymaps) if n.startswith(("KEY_", "EV_", "SYN_", "MSC_"))]
    assert len(names) > 60
    for name in names:
        assert getattr(keymaps, name) == getattr(evdev.ecodes, name), name
