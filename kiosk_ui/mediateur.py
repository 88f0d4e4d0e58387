"""The médiateur's PIN: who may record passes for counter-payment, cancel an entry or move the bus.

One kiosk has one browser, so the session lives here on the server, not in a cookie: after the right PIN the
médiateur is logged in until they log out or stop touching the screen for ``idle`` seconds. Five wrong PINs
in a row lock the PIN for five minutes, so a passer-by cannot try them all.

The PIN comes from the activation data: the central sends its organisation's PIN hash (``aptic.pin``) at
activation and in the offline snapshot; ``aptic-terminal activate --pin`` may set a local one instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from aptic.pin import verify_pin


class PinLocked(Exception):
    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"PIN locked for {seconds_left:.0f} s")
        self.seconds_left = seconds_left

    @property
    def message_fr(self) -> str:
        minutes = max(1, round(self.seconds_left / 60))
        return f"Trop d'essais : code verrouillé pendant encore {minutes} minute{'s' if minutes > 1 else ''}."


class MediateurSession:
    """PIN check with lockout, and the logged-in state with an inactivity timeout.

    ``expected_hash`` is a callable so a PIN that arrives with activation is picked up without a restart;
    ``clock`` is ``time.monotonic`` unless a test gives another.
    """

    MAX_TRIES = 5
    LOCK_SECONDS = 300.0

    def __init__(
        self,
        expected_hash: Callable[[], str | None],
        *,
        idle: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._expected = expected_hash
        self._idle = idle
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._locked_until = 0.0
        self._active_until = 0.0

    def login(self, pin: str) -> bool:
        """True and logged in for the right PIN; False for a wrong one; PinLocked while locked."""
        with self._lock:
            now = self._clock()
            if now < self._locked_until:
                raise PinLocked(self._locked_until - now)
            if verify_pin(pin, self._expected()):
                self._failures = 0
                self._active_until = now + self._idle
                return True
            self._failures += 1
            if self._failures >= self.MAX_TRIES:
                self._failures = 0
                self._locked_until = now + self.LOCK_SECONDS
            return False

    @property
    def tries_left(self) -> int:
        return self.MAX_TRIES - self._failures

    def active(self, *, touch: bool = True) -> bool:
        """Whether a médiateur is logged in; ``touch`` counts this as activity and extends the session."""
        with self._lock:
            now = self._clock()
            if now >= self._active_until:
                return False
            if touch:
                self._active_until = now + self._idle
            return True

    def logout(self) -> None:
        with self._lock:
            self._active_until = 0.0
