"""The médiateur's PIN: set for an organisation on the central, checked by its terminals' kiosks.

Only a hash travels and is stored, self-describing so any side can check it: ``pbkdf2_sha256$ITER$SALT$HEX``.
A 4-digit PIN cannot resist an offline search of its hash whatever the hashing; what protects it is that the
hash stays on the central and in the terminal's root-only files, and that the kiosk locks after 5 wrong tries.

>>> encoded = hash_pin("2468")
>>> verify_pin("2468", encoded), verify_pin("1357", encoded)
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ITERATIONS = 100_000
MIN_DIGITS, MAX_DIGITS = 4, 8


def valid_pin(pin: str) -> bool:
    """A PIN is 4 to 8 digits (typed on the kiosk's keypad)."""
    return pin.isascii() and pin.isdigit() and MIN_DIGITS <= len(pin) <= MAX_DIGITS


def hash_pin(pin: str, *, salt: str | None = None, iterations: int = ITERATIONS) -> str:
    if not valid_pin(pin):
        raise ValueError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits")
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def verify_pin(pin: str, encoded: str | None) -> bool:
    """True when ``pin`` matches ``encoded``; False for anything malformed (constant-time comparison)."""
    try:
        scheme, iterations, salt, digest = (encoded or "").split("$")
        rounds = int(iterations)
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256" or not 1 <= rounds <= 10_000_000 or not valid_pin(pin):
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt.encode(), rounds).hex()
    return hmac.compare_digest(candidate, digest)
