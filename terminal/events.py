"""A small in-process event bus: the Terminal publishes, the kiosk page and the LEDs listen.

Each :class:`Event` has an ``id`` that only grows, a ``kind`` and a JSON-ready ``data`` dict. The bus keeps
the last events in a ring buffer so that a kiosk page whose live stream dropped can resume where it left off:
it sends the last id it saw (``Last-Event-ID``, ``after=``) and :meth:`EventBus.since` returns what it missed,
or None when the buffer no longer holds all of it (a gap): the page then reloads the whole state, which carries
the id of the last event it reflects.

Ids start from the wall clock in milliseconds when the bus is made, so a daemon that restarts normally hands
out ids above those of its previous run: a page still holding an id of that run gets a gap. An id from the
future (the clock went backwards) is a gap too.

Two ways to listen:

- :meth:`EventBus.subscribe` a callback, called in the publisher's thread (keep it quick: LEDs, logging);
- :meth:`EventBus.wait_since` in a loop, which blocks until events newer than an id exist (an SSE generator)::

    last = bus.last_id
    while streaming:
        events = bus.wait_since(last, timeout=15)
        if events is None:  # a gap: tell the client to reload its state, carry on from now
            ...
        for event in events or []:
            yield event.sse()
            last = event.id

Kinds published, with their ``data``:

- ``scan`` ``{result}``: a code judged (``ScanResult.as_dict()``: valid, reason, title, message, warnings,
  provisional, added, pass...);
- ``entry`` ``{entry}``: the open entry changed; ``mode`` ``{mode, point, ...}``: test or entry mode;
- ``submitted`` ``{receipt}``: an entry recorded durably; ``cancelled`` ``{entry_id, passes}``;
- ``synced`` ``{count, rejected, pending}``; ``late_rejection`` ``{scan}``: accepted offline, rejected by
  the central: tell the médiateur;
- ``refused`` ``{message}``: an action refused (full outbox, terminal not ready), French message;
- ``activation`` ``{status, message}`` (token revoked: re-activation needed) and ``activated``;
- ``discarded`` ``{device, reason}``: a douchette read that was not a code (from ``aptic-terminal run``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Listener = Callable[["Event"], None]


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0  # wall time, seconds since the epoch

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "data": self.data, "at": self.at}

    def sse(self) -> str:
        """The event as a Server-Sent Events message (``id``, ``event`` and one ``data`` line of JSON)."""
        payload = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.kind}\ndata: {payload}\n\n"


class EventBus:
    """Thread-safe publish/subscribe with a replay buffer of the last ``keep`` events."""

    def __init__(self, *, keep: int = 256, first_id: int | None = None) -> None:
        self._buffer: deque[Event] = deque(maxlen=keep)
        self._listeners: list[Listener] = []
        self._changed = threading.Condition(threading.Lock())
        start = int(time.time() * 1000) if first_id is None else first_id
        self._last_id = start - 1

    @property
    def last_id(self) -> int:
        """The id of the last event published (one less than the first id before any)."""
        with self._changed:
            return self._last_id

    def publish(self, kind: str, **data: Any) -> Event:
        """Publish an event; listeners run before this returns, and waiters wake up."""
        with self._changed:
            self._last_id += 1
            event = Event(self._last_id, kind, data, time.time())
            self._buffer.append(event)
            listeners = list(self._listeners)
            self._changed.notify_all()
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("Event listener %r failed on %s event %d", listener, kind, event.id)
        return event

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event from now on; returns a function that unsubscribes."""
        with self._changed:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._changed:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def since(self, last_id: int) -> list[Event] | None:
        """Events newer than ``last_id``, or None when some of them are no longer buffered (a gap).

        A gap is an id older than what the ring buffer holds (or from a previous run), or one above the last
        (a previous run's, the clock set back since): events may be missing, the client must reload the state.
        """
        with self._changed:
            return self._since(last_id)

    def _since(self, last_id: int) -> list[Event] | None:
        first_kept = self._buffer[0].id if self._buffer else self._last_id + 1
        if last_id < first_kept - 1 or last_id > self._last_id:
            return None
        return [event for event in self._buffer if event.id > last_id]

    def wait_since(self, last_id: int, timeout: float | None = None) -> list[Event] | None:
        """Block until events newer than ``last_id`` exist, or ``timeout`` seconds pass (then []); None at once
        on a gap (see :meth:`since`)."""
        return self._wait(lambda: self._since(last_id), timeout)

    def _wait(self, found: Callable[[], list[Event] | None], timeout: float | None) -> list[Event] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                events = found()
                if events is None or events:
                    return events
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._changed.wait(remaining)
