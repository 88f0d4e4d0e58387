"""The decoder, from event sequences: what a douchette types becomes exactly one code, or a reasoned discard."""

from __future__ import annotations

import pytest

from aptic.passnumber import build, hmac_authenticator
from terminal.scanner import keymaps as k
from terminal.scanner.decoder import Decoder, DecoderConfig, Discard, Read
from terminal.scanner.typist import Event, events_for, type_text

PASS = build(2026, 1234, 7, hmac_authenticator(b"test"))


def run(events: list[Event], config: DecoderConfig | None = None, decoder: Decoder | None = None) -> list:
    d = decoder or Decoder(config)
    out: list = []
    for e in events:
        out += d.feed(*e)
    return out


def keys(*transitions: tuple[int, int], start: float = 0.0, interval: float = 0.008) -> list[Event]:
    return events_for(list(transitions), start, interval)


def tap(code: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return (code, 1), (code, 0)


# -- layouts -----------------------------------------------------------------------------------------------


def test_us_scanner_decodes_in_us_and_auto() -> None:
    for layout in ("us", "auto"):
        assert run(type_text(PASS, "us"), DecoderConfig(layout=layout)) == [Read(PASS, "us", pytest.approx(0.144))]


def test_fr_scanner_decodes_in_fr_and_auto() -> None:
    [read] = run(type_text(PASS, "fr"), DecoderConfig(layout="auto"))
    assert (read.text, read.layout) == (PASS, "fr")
    [read] = run(type_text(PASS, "fr"), DecoderConfig(layout="fr"))
    assert (read.text, read.layout) == (PASS, "fr")


def test_wrong_fixed_layout_gives_the_garbled_text_users_complain_about() -> None:
    [read] = run(type_text("1234567890", "us"), DecoderConfig(layout="fr"))
    assert read.text == "&é\"'(-è_çà"
    [read] = run(type_text("12", "fr"), DecoderConfig(layout="us"))
    assert read.text == "!@"


def test_auto_falls_back_to_the_configured_layout_for_non_pass_codes() -> None:
    events = type_text("AB-12", "fr")
    assert run(events, DecoderConfig(fallback="fr")) == [Read("AB-12", "fr", pytest.approx(events[-1][0] - 0.004))]
    [read] = run(events, DecoderConfig(fallback="us"))
    assert read.layout == "us" and read.text == "QB6!@"


def test_auto_remembers_the_detected_layout() -> None:
    d = Decoder()
    assert d.detected_layout is None
    run(type_text(PASS, "fr"), decoder=d)
    assert d.detected_layout == "fr"
    run(type_text("hello", "us", start=1), decoder=d)  # not a pass: detection unchanged
    assert d.detected_layout == "fr"


def test_shift_per_character_and_held_and_right_shift() -> None:
    per_char = type_text("A1b!C", "us", "plain")
    held = type_text("ABC", "us", "held_shift")
    assert run(per_char, DecoderConfig(layout="us"))[0].text == "A1b!C"
    assert run(held, DecoderConfig(layout="us"))[0].text == "ABC"
    right = keys((k.KEY_RIGHTSHIFT, 1), *tap(k.KEY_A), (k.KEY_RIGHTSHIFT, 0), *tap(k.KEY_A), *tap(k.KEY_ENTER))
    assert run(right, DecoderConfig(layout="us"))[0].text == "Aa"


def test_both_shifts_are_tracked_separately() -> None:
    events = keys((k.KEY_LEFTSHIFT, 1), (k.KEY_RIGHTSHIFT, 1), (k.KEY_LEFTSHIFT, 0), *tap(k.KEY_A),
                  (k.KEY_RIGHTSHIFT, 0), *tap(k.KEY_A), *tap(k.KEY_ENTER))  # fmt: skip
    assert run(events, DecoderConfig(layout="us"))[0].text == "Aa"


def test_held_shift_on_azerty_types_the_whole_pass_number() -> None:
    [read] = run(type_text(PASS, "fr", "held_shift"))
    assert (read.text, read.layout) == (PASS, "fr")


def test_capslock_letters_in_us_and_digit_row_in_fr() -> None:
    us = keys(*tap(k.KEY_CAPSLOCK), *tap(k.KEY_A), (k.KEY_LEFTSHIFT, 1), *tap(k.KEY_A), (k.KEY_LEFTSHIFT, 0),
              *tap(k.KEY_1), *tap(k.KEY_CAPSLOCK), *tap(k.KEY_A), *tap(k.KEY_ENTER))  # fmt: skip
    assert run(us, DecoderConfig(layout="us"))[0].text == "Aa1a"
    # AZERTY with CapsLock on: the top row types digits without Shift (Windows behaviour), Shift gives & back.
    fr = keys(*tap(k.KEY_CAPSLOCK), *tap(k.KEY_1), *tap(k.KEY_Q), (k.KEY_LEFTSHIFT, 1), *tap(k.KEY_1),
              (k.KEY_LEFTSHIFT, 0), *tap(k.KEY_ENTER))  # fmt: skip
    assert run(fr, DecoderConfig(layout="fr"))[0].text == "1A&"
    [read] = run(type_text(PASS, "fr", "capslock"), DecoderConfig(layout="fr"))
    assert read.text == PASS


def test_altgr_on_azerty() -> None:
    events = keys((k.KEY_RIGHTALT, 1), *tap(k.KEY_0), *tap(k.KEY_E), (k.KEY_RIGHTALT, 0), *tap(k.KEY_ENTER))
    assert run(events, DecoderConfig(layout="fr"))[0].text == "@€"


def test_dead_circumflex_on_azerty() -> None:
    events = keys(*tap(k.KEY_LEFTBRACE), *tap(k.KEY_Q), *tap(k.KEY_LEFTBRACE), *tap(k.KEY_SPACE),
                  *tap(k.KEY_LEFTBRACE), *tap(k.KEY_1), *tap(k.KEY_ENTER))  # fmt: skip
    assert run(events, DecoderConfig(layout="fr"))[0].text == "â^^&"


def test_keypad_digits_with_numlock_on_and_off() -> None:
    on = type_text(PASS, "us", "keypad")
    off = type_text(PASS, "us", "keypad_numlock_off")
    assert run(on) == [Read(PASS, "keypad", pytest.approx(on[-1][0] - 0.004))]
    assert [(r.text, r.layout) for r in run(off)] == [(PASS, "keypad")]
    # A keyboard's behaviour, on request: NumLock off turns keypad digits into arrows.
    strict = Decoder(DecoderConfig(numlock_strict=True))
    assert run(off, decoder=strict) == []
    assert strict.numlock is True  # the scanner toggled it off and on again
    assert [r.text for r in run(on, decoder=strict)] == [PASS]


def test_alt_numpad_decimal_codes() -> None:
    [read] = run(type_text(PASS, "us", "altnum"))
    assert (read.text, read.layout) == (PASS, "altnum")
    # 0-prefixed: Windows-1252; without: code page 437.
    events = keys((k.KEY_LEFTALT, 1), *tap(k.KEY_KP0), *tap(k.KEY_KP2), *tap(k.KEY_KP3), *tap(k.KEY_KP3),
                  (k.KEY_LEFTALT, 0), (k.KEY_LEFTALT, 1), *tap(k.KEY_KP1), *tap(k.KEY_KP3), *tap(k.KEY_KP0),
                  (k.KEY_LEFTALT, 0), *tap(k.KEY_ENTER))  # fmt: skip
    assert run(events)[0].text == "éé"


def test_keys_typed_with_ctrl_or_alt_held_are_shortcuts_not_text() -> None:
    events = keys((k.KEY_LEFTCTRL, 1), *tap(k.KEY_C), (k.KEY_LEFTCTRL, 0), (k.KEY_LEFTALT, 1), *tap(k.KEY_TAB),
                  (k.KEY_LEFTALT, 0), *tap(k.KEY_1), *tap(k.KEY_ENTER))  # fmt: skip
    # Alt+Tab still ends the read (the terminator is a key, not text); nothing was typed before it.
    assert run(events, DecoderConfig(layout="us")) == [Read("1", "us", pytest.approx(events[-4][0]))]


# -- events the kernel sends -------------------------------------------------------------------------------


def test_repeats_are_ignored() -> None:
    events = keys((k.KEY_1, 1), (k.KEY_1, 2), (k.KEY_1, 2), (k.KEY_1, 0), *tap(k.KEY_2), (k.KEY_ENTER, 1),
                  (k.KEY_ENTER, 2), (k.KEY_ENTER, 0))  # fmt: skip
    assert [r.text for r in run(events)] == ["12"]


def test_terminator_counts_on_key_down_only() -> None:
    d = Decoder(DecoderConfig(layout="us", idle_timeout=0.5))
    events = keys(*tap(k.KEY_1), (k.KEY_ENTER, 0), *tap(k.KEY_2))
    assert run(events, decoder=d) == []
    assert d.pending
    [read] = run(keys((k.KEY_ENTER, 1), (k.KEY_ENTER, 0), start=0.1), decoder=d)
    assert read.text == "12" and read.t == pytest.approx(0.1)


def test_terminators_are_configurable() -> None:
    events = type_text("12", "us", terminator=k.KEY_TAB) + type_text("34", "us", start=1, terminator=k.KEY_KPENTER)
    assert [r.text for r in run(events)] == ["12", "34"]
    only_enter = DecoderConfig(terminators=frozenset({k.KEY_ENTER}), idle_timeout=0.5)
    assert run(type_text("12", "us", terminator=k.KEY_TAB), only_enter) == []


def test_missing_terminator_is_discarded_on_the_next_key_or_on_tick() -> None:
    d = Decoder(DecoderConfig(layout="us", idle_timeout=0.2))
    assert run(type_text("123", "us", terminator=None), decoder=d) == []
    assert d.deadline == pytest.approx(0.016 + 0.2)  # the last key down, plus the idle time
    assert d.tick(0.1) == []
    assert d.tick(0.3) == [Discard("123", "timeout", pytest.approx(0.216))]
    assert not d.pending and d.deadline is None
    # The gap can also show on the next key: the new key starts a new read.
    events = type_text("45", "us", terminator=None) + type_text("67", "us", start=5.0)
    assert run(events, decoder=d) == [
        Discard("45", "timeout", pytest.approx(0.208)),
        Read("67", "us", pytest.approx(5.016)),
    ]


def test_terminatorless_scanner_flushes_on_idle() -> None:
    d = Decoder(DecoderConfig(flush_on_idle=True, idle_timeout=0.1))
    events = type_text(PASS, "fr", terminator=None)
    assert run(events, decoder=d) == []
    [read] = d.tick(10.0)
    assert (read.text, read.layout) == (PASS, "fr")
    last_digit = max(e[0] for e in events if e[1] == k.EV_KEY and e[2] == k.KEY_8 and e[3] == 1)
    assert read.t == pytest.approx(last_digit)  # the last key, not the tick


def test_prefix_and_suffix() -> None:
    cfg = DecoderConfig(prefix="]C0", suffix="XX", terminators=frozenset())
    events = type_text("]C0" + PASS + "XX", "fr")
    [read] = run(events, cfg)
    assert (read.text, read.layout) == (PASS, "fr")  # the suffix ended it; Enter then typed nothing
    [discard] = run(type_text(PASS + "XX", "us"), cfg)
    assert discard.reason == "missing_prefix"
    assert run(type_text("]C0" + PASS, "us"), DecoderConfig(prefix="]C0"))[0].text == PASS
    # In a fixed layout any suffix works, also one that is a digit in another layout.
    assert run(type_text("12#", "fr", terminator=None), DecoderConfig(layout="fr", suffix="#"))[0].text == "12"


def test_syn_dropped_discards_the_read_and_its_tail_and_resets_modifiers() -> None:
    d = Decoder(DecoderConfig(layout="us"))
    head = keys((k.KEY_LEFTSHIFT, 1), *tap(k.KEY_A), *tap(k.KEY_CAPSLOCK))
    assert run([*head, (0.05, k.EV_SYN, k.SYN_DROPPED, 0)], decoder=d) == [Discard("A", "syn_dropped", 0.05)]
    # Events up to SYN_REPORT are dropped; the tail of the damaged scan up to its Enter is skipped.
    tail = [(0.05, k.EV_KEY, k.KEY_B, 1), (0.05, k.EV_SYN, k.SYN_REPORT, 0)]
    tail += keys(*tap(k.KEY_1), *tap(k.KEY_ENTER), start=0.06)
    assert run(tail, decoder=d) == []
    # Modifiers were reset: Shift (whose key-up was lost) no longer held, CapsLock off.
    assert [r.text for r in run(type_text("b", "us", start=0.2), decoder=d)] == ["b"]


def test_over_long_read_is_discarded_with_its_tail() -> None:
    d = Decoder(DecoderConfig(max_length=20))
    out = run(type_text("1" * 30, "us") + type_text("22", "us", start=1.0), decoder=d)
    assert [(type(r).__name__, r.text, getattr(r, "reason", None)) for r in out] == [
        ("Discard", "1" * 21, "too_long"),  # the key that made it too long
        ("Read", "22", None),
    ]


def test_unplug_mid_read() -> None:
    d = Decoder()
    run(type_text("126000", "us", terminator=None), decoder=d)
    assert d.unplug(0.5) == [Discard("126000", "unplugged", 0.5)]
    assert d.unplug(0.6) == []  # nothing pending: nothing to say
    assert [r.text for r in run(type_text(PASS, "us", start=1), decoder=d)] == [PASS]


def test_backspace_removes_a_stroke() -> None:
    events = keys(*tap(k.KEY_1), *tap(k.KEY_3), *tap(k.KEY_BACKSPACE), *tap(k.KEY_2), *tap(k.KEY_ENTER))
    assert [r.text for r in run(events)] == ["12"]


def test_two_douchettes_interleaving() -> None:
    """Each device has its own decoder, so two scans typed at the same time do not mix."""
    a = [("a", e) for e in type_text(PASS, "us", start=0.0)]
    other = build(2027, 42, 3, hmac_authenticator(b"test"))
    b = [("b", e) for e in type_text(other, "fr", "held_shift", start=0.001)]
    decoders = {"a": Decoder(), "b": Decoder()}
    out = []
    for dev, e in sorted(a + b, key=lambda x: x[1][0]):
        out += [(dev, r.text, r.layout) for r in decoders[dev].feed(*e)]
    assert sorted(out) == [("a", PASS, "us"), ("b", other, "fr")]


def test_a_human_typing_slowly_never_makes_a_code() -> None:
    d = Decoder()  # default idle timeout: 0.2 s between keys
    events = type_text(PASS, "us", interval=0.45)
    out = run(events, decoder=d)
    assert all(isinstance(r, Discard) and r.reason == "timeout" for r in out)
    assert len(out) == len(PASS)


def test_config_rejects_unknown_layouts() -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        DecoderConfig(layout="de")
