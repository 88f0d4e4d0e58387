"""Opening hours in OpenStreetMap's ``opening_hours`` syntax: the subset a mediation place needs.

The national open-data standard for mediation places writes opening hours as OSM does. The full syntax
(week numbers, school holidays, sunrise, comments...) is large; a point de présence needs much less, and a
small grammar gives a médiateur a precise French message where a full parser would only say "invalid".
The subset, every rule being also valid OSM:

* rules separated by ``;`` (written back as ``"; "``), later rules overriding earlier ones as in OSM;
* a rule is ``[days] times`` or ``[days] off`` (``closed`` is read as ``off``), or the whole value ``24/7``;
* days are ``Mo Tu We Th Fr Sa Su`` and ``PH`` (public holidays), as single days or ranges ``Mo-Fr``, listed
  with commas: ``Mo-We,Fr,PH``; a rule without days applies every day;
* times are ``HH:MM-HH:MM`` ranges listed with commas, the end after the start, at most ``24:00``.

:func:`normalise` also accepts what people type: ``9:00`` or ``9h`` / ``9h30`` for ``09:00``/``09:30``,
extra spaces, a trailing ``;``.

>>> normalise("Mo-Fr 9h-12h,14:00-17:30 ;Sa 10:00-12:00;  PH off")
'Mo-Fr 09:00-12:00,14:00-17:30; Sa 10:00-12:00; PH off'
>>> normalise("Tu,Th 14:00-18:00; Su closed")
'Tu,Th 14:00-18:00; Su off'
>>> normalise("10:00-18:00")
'10:00-18:00'
>>> normalise("24/7")
'24/7'
>>> describe("Mo-Fr 09:00-12:00,14:00-17:30; Sa 10:00-12:00; PH off").replace("\\xa0", " ")
'Du lundi au vendredi : de 9 h à 12 h et de 14 h à 17 h 30 ; samedi : de 10 h à 12 h ; jours fériés : fermé'
>>> normalise("Lu-Ve 09:00-12:00")
Traceback (most recent call last):
...
ValueError: « Lu » n’est pas un jour : écrivez Mo, Tu, We, Th, Fr, Sa, Su (lundi à dimanche) ou PH (jours fériés).
>>> normalise("Mo 18:00-09:00")
Traceback (most recent call last):
...
ValueError: « 18:00-09:00 » : l’heure de fin doit suivre l’heure de début.
>>> normalise("Mo-Fr")
Traceback (most recent call last):
...
ValueError: « Mo-Fr » : indiquez des horaires (09:00-12:00) ou « off » après les jours.
"""

from __future__ import annotations

import re

DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
HOLIDAYS = "PH"
EXAMPLE = "Mo-Fr 09:00-12:00,14:00-17:00; Sa 10:00-12:00; PH off"

_TIME = re.compile(r"^(\d{1,2})(?::(\d{2})|h(\d{2})?)$")
_DAYS_HINT = "écrivez Mo, Tu, We, Th, Fr, Sa, Su (lundi à dimanche) ou PH (jours fériés)"


def _time(text: str, whole: str) -> tuple[int, str]:
    """Minutes since midnight and the canonical ``HH:MM`` of ``9:00``, ``09:00``, ``9h`` or ``9h30``."""
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"« {whole} » : écrivez les heures comme 09:00-12:00, les plages séparées par une virgule.")
    hours, minutes = int(match.group(1)), int(match.group(2) or match.group(3) or 0)
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"« {whole} » : heure impossible.")
    return hours * 60 + minutes, f"{hours:02d}:{minutes:02d}"


def _time_range(text: str) -> str:
    start, dash, end = text.partition("-")
    if not dash:
        raise ValueError(f"« {text} » : écrivez une plage d’heures, comme 09:00-12:00.")
    (a, first), (b, last) = _time(start.strip(), text), _time(end.strip(), text)
    if b <= a:
        raise ValueError(f"« {first}-{last} » : l’heure de fin doit suivre l’heure de début.")
    return f"{first}-{last}"


def _day(text: str) -> str:
    if text not in DAYS:
        raise ValueError(f"« {text} » n’est pas un jour : {_DAYS_HINT}.")
    return text


def _day_selector(text: str) -> str:
    parts = []
    for item in text.split(","):
        item = item.strip()
        if item == HOLIDAYS:
            parts.append(item)
            continue
        first, dash, last = item.partition("-")
        if dash:
            parts.append(f"{_day(first.strip())}-{_day(last.strip())}")
        else:
            parts.append(_day(item))
    return ",".join(parts)


def _rule(text: str) -> str:
    if text == "24/7":
        return text
    # The days come first and hold no digit; the times start at the first digit.
    digit = re.search(r"\d", text)
    words = text[: digit.start()] if digit else text
    times = text[digit.start() :] if digit else ""
    days, state = words.strip(), ""
    if not re.fullmatch(r"[A-Za-z, -]*", days):
        raise ValueError(f"« {text} » : cette forme n’est pas prise en charge ; exemple : {EXAMPLE}.")
    for word in ("off", "closed"):
        if days == word or days.endswith(" " + word):
            days, state = days[: -len(word)].strip(), "off"
    if state and times:
        raise ValueError(f"« {text} » : des horaires ou « off », pas les deux.")
    selector = _day_selector(days) if days else ""
    if not state:
        if not times:
            raise ValueError(f"« {text} » : indiquez des horaires (09:00-12:00) ou « off » après les jours.")
        state = ",".join(_time_range(r.strip()) for r in times.split(","))
    return f"{selector} {state}" if selector else state


def normalise(text: str) -> str:
    """``text`` in canonical form, or ValueError with a French message naming the part at fault."""
    rules = [r.strip() for r in text.strip().split(";")]
    rules = [re.sub(r"\s+", " ", r) for r in rules if r]
    if not rules:
        raise ValueError("Horaires vides.")
    if "24/7" in rules and len(rules) > 1:
        raise ValueError("« 24/7 » s’écrit seul.")
    return "; ".join(_rule(r) for r in rules)


_NAMES = dict(zip(DAYS, ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"), strict=True))
_NBSP = "\xa0"


def _say_time(hhmm: str) -> str:
    hours, minutes = int(hhmm[:2]), hhmm[3:]
    return f"{hours}{_NBSP}h" + ("" if minutes == "00" else f"{_NBSP}{minutes}")


def _say_days(selector: str) -> str:
    said = []
    for item in selector.split(","):
        if item == HOLIDAYS:
            said.append("jours fériés")
        elif "-" in item:
            first, last = item.split("-")
            said.append(f"du {_NAMES[first]} au {_NAMES[last]}")
        else:
            said.append(_NAMES[item])
    return ", ".join(said)


def describe(text: str) -> str:
    """Opening hours in plain French, for people who do not read OSM's syntax (``text`` is normalised
    first; ValueError as :func:`normalise`)."""
    said = []
    for rule in normalise(text).split("; "):
        if rule == "24/7":
            said.append("tous les jours, jour et nuit")
            continue
        selector, _, state = rule.rpartition(" ")
        days = _say_days(selector) if selector else "tous les jours"
        if state == "off":
            hours = "fermé"
        else:
            ranges = [r.split("-") for r in state.split(",")]
            hours = " et ".join(f"de {_say_time(a)} à {_say_time(b)}" for a, b in ranges)
        said.append(f"{days}{_NBSP}: {hours}")
    sentence = f"{_NBSP}; ".join(said)
    return sentence[0].upper() + sentence[1:]


def is_valid(text: str) -> bool:
    """True when :func:`normalise` accepts ``text``."""
    try:
        normalise(text)
    except ValueError:
        return False
    return True
