"""Pass numbers: the 18-digit identifier printed under each pass's barcode.

Layout (our format; the real one is not public), printed as ``1 26 0001234 07 5821 12``::

    V  YY  SSSSSSS  PP  AAAA  CC
    |  |   |        |   |     +- ISO 7064 MOD 97-10 check digits over the first 16 digits
    |  |   |        |   +------- authenticator: HMAC-SHA256 of the first 12 digits, mod 10000
    |  |   |        +----------- position of the pass in its carnet, 01-10
    |  |   +-------------------- carnet serial, a continuous series per millésime
    |  +------------------------ millésime, 20YY
    +--------------------------- format version, 1

The carnet id is the first 10 digits. The check digits catch every single wrong digit and every swap of two
neighbouring digits (09/90 included, which Luhn misses); the authenticator is checked only by the central,
which holds the key, so numbers cannot be forged by counting up serials.

>>> p = parse("1 26 0001234 07 5821 12")
>>> p.millesime, p.carnet, p.position
(2026, '1260001234', 7)
>>> format_pass(p.digits)
'1 26 0001234 07 5821 12'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

LENGTH = 18
VERSION = 1
MAX_POSITION = 10
_GROUPS = (1, 2, 7, 2, 4, 2)  # as printed on the pass

# A scanner that emulates a US keyboard plugged into an AZERTY host (or the reverse) types the unshifted
# characters of the AZERTY top row instead of digits.
AZERTY_TOP_ROW = {"&": "1", "é": "2", '"': "3", "'": "4", "(": "5", "-": "6",
                  "è": "7", "_": "8", "ç": "9", "à": "0"}  # fmt: skip
_SEPARATORS = " .-\t"


class PassNumberError(ValueError):
    """A pass number that cannot be read. ``part`` names what is wrong, ``message_fr`` says it on screen.

    ``part`` is one of ``empty``, ``characters``, ``length``, ``version``, ``position``, ``check_digits``.
    """

    def __init__(self, part: str, message: str, message_fr: str) -> None:
        super().__init__(message)
        self.part = part
        self.message_fr = message_fr


@dataclass(frozen=True, slots=True)
class Normalised:
    """Digits read from typed or scanned text, and whether AZERTY top-row characters were mapped back."""

    digits: str
    azerty_mapped: bool


@dataclass(frozen=True, slots=True)
class PassNumber:
    """A well-formed pass number (format and check digits verified; authenticity is the central's job)."""

    digits: str
    azerty_mapped: bool = False

    @property
    def version(self) -> int:
        return int(self.digits[0])

    @property
    def millesime(self) -> int:
        return 2000 + int(self.digits[1:3])

    @property
    def serial(self) -> int:
        return int(self.digits[3:10])

    @property
    def position(self) -> int:
        return int(self.digits[10:12])

    @property
    def authenticator(self) -> str:
        return self.digits[12:16]

    @property
    def check_digits(self) -> str:
        return self.digits[16:18]

    @property
    def carnet(self) -> str:
        """The carnet id: version, millésime and serial, the first 10 digits."""
        return self.digits[:10]

    @property
    def printed(self) -> str:
        return format_pass(self.digits)

    def __str__(self) -> str:
        return self.digits


def check_digits(payload: str) -> str:
    """ISO 7064 MOD 97-10 check digits for a string of digits: 98 - (payload x 100 mod 97)."""
    return f"{98 - int(payload) * 100 % 97:02d}"


def mod97_valid(digits: str) -> bool:
    """True when the whole number, check digits included, is 1 modulo 97."""
    return digits.isdigit() and int(digits) % 97 == 1


def normalise(text: str) -> Normalised:
    """Digits from typed or scanned text: spaces, dots, hyphens and tabs dropped, AZERTY top row mapped.

    A hyphen is a separator, except in text typed through the wrong keyboard layout, where it is the 6
    key: when other top-row characters are present, hyphens are read as sixes.
    Raises PassNumberError(part="characters") for anything else, and part="empty" for nothing at all.
    """
    text = text.strip()
    if not text:
        raise PassNumberError("empty", "no pass number given", "Aucun numéro de pass saisi.")
    azerty = any(c in AZERTY_TOP_ROW and c != "-" for c in text)
    digits = []
    for c in text:
        if c.isascii() and c.isdigit():
            digits.append(c)
        elif azerty and c in AZERTY_TOP_ROW:
            digits.append(AZERTY_TOP_ROW[c])
        elif c in _SEPARATORS:
            continue
        else:
            raise PassNumberError(
                "characters",
                f"pass number holds a character that is not a digit: {c!r}",
                f"Le numéro contient un caractère non valable : « {c} ». Seuls les chiffres sont acceptés.",
            )
    return Normalised("".join(digits), azerty)


def parse(text: str) -> PassNumber:
    """Read a pass number from typed or scanned text; raise PassNumberError saying which part is wrong."""
    n = normalise(text)
    d = n.digits
    if len(d) != LENGTH:
        raise PassNumberError(
            "length",
            f"pass number has {len(d)} digits, expected {LENGTH}",
            f"Le numéro a {len(d)} chiffres au lieu de {LENGTH}.",
        )
    if d[0] != str(VERSION):
        raise PassNumberError(
            "version",
            f"unknown format version {d[0]}, expected {VERSION}",
            f"Ce numéro n'est pas celui d'un pass #APTIC (version {d[0]} inconnue).",
        )
    if not mod97_valid(d):
        raise PassNumberError(
            "check_digits",
            "check digits do not match: a digit is misread or two are swapped",
            "Clé de contrôle incorrecte : un chiffre est mal lu ou deux chiffres sont inversés.",
        )
    position = int(d[10:12])
    if not 1 <= position <= MAX_POSITION:
        raise PassNumberError(
            "position",
            f"position in carnet is {position:02d}, expected 01 to {MAX_POSITION}",
            f"Position dans le carnet incorrecte ({position:02d}) : elle va de 01 à {MAX_POSITION}.",
        )
    return PassNumber(d, n.azerty_mapped)


def is_well_formed(text: str) -> bool:
    """True when ``text`` reads as a pass number with valid check digits (what a scanner decoder wants)."""
    try:
        parse(text)
    except PassNumberError:
        return False
    return True


def format_pass(digits: str) -> str:
    """Group 18 digits as printed on the pass: ``1 26 0001234 07 5821 12``."""
    if len(digits) != LENGTH or not digits.isdigit():
        raise ValueError(f"expected {LENGTH} digits, got {digits!r}")
    parts, i = [], 0
    for size in _GROUPS:
        parts.append(digits[i : i + size])
        i += size
    return " ".join(parts)


def masked(text: str) -> str:
    """``text`` fit for a log: a pass number keeps its carnet and position, its authenticator and check digits
    become stars (with them anyone could print a barcode that pays); anything else is only counted.

    >>> masked("126000123407582112")
    '1 26 0001234 07 **** **'
    """
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) != LENGTH:
        return f"<{len(text)} characters>"
    return f"{format_pass(digits)[:15]} **** **"


Authenticator = Callable[[str], int]
"""Maps the first 12 digits of a pass number to its authenticator (0-9999)."""


def hmac_authenticator(key: bytes) -> Authenticator:
    """The authenticator of docs/contracts.md: HMAC-SHA256 of the first 12 digits, as an integer, mod 10000."""

    def authenticate(first12: str) -> int:
        mac = hmac.new(key, first12.encode("ascii"), hashlib.sha256).digest()
        return int.from_bytes(mac, "big") % 10_000

    return authenticate


def build(millesime: int, serial: int, position: int, authenticator: Authenticator) -> str:
    """The 18 digits of the pass at ``position`` of carnet ``serial`` of ``millesime``."""
    if not 2000 <= millesime <= 2099:
        raise ValueError(f"millésime out of range: {millesime}")
    if not 0 <= serial <= 9_999_999:
        raise ValueError(f"carnet serial out of range: {serial}")
    if not 1 <= position <= MAX_POSITION:
        raise ValueError(f"position out of range: {position}")
    first12 = f"{VERSION}{millesime % 100:02d}{serial:07d}{position:02d}"
    payload = f"{first12}{authenticator(first12) % 10_000:04d}"
    return payload + check_digits(payload)


def authentic(number: PassNumber, authenticator: Authenticator) -> bool:
    """True when the number's authenticator is the one the key gives (constant-time comparison)."""
    expected = f"{authenticator(number.digits[:12]) % 10_000:04d}"
    return hmac.compare_digest(expected, number.authenticator)


def carnet_id(millesime: int, serial: int) -> str:
    """The 10-digit carnet id for a millésime and a serial."""
    return f"{VERSION}{millesime % 100:02d}{serial:07d}"
