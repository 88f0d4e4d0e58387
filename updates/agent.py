"""The fleet agent's update step: from the desired version to a staged release handed to the guard.

:meth:`UpdateStep.consider` runs at each desired-state poll (terminal/fleet.py). It does nothing unless the
central wants a version newer than the running one and not rolled back before (``updates.fetch.choose``),
and nothing before the clock is synchronised (signed metadata expires; a Pi has no battery clock). Then:
signed metadata, free space, the bundle (resumed if a cut left part of it), the release staged beside the
running one, and a request to the guard (root, in the image) to switch. Each call goes as far as it can and
says where it stands in :meth:`report`, which rides on the report to the central; a failure is retried at
the next poll, the running release untouched.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Root

from updates.fetch import FetchError, ReleaseSource, choose
from updates.guard import AGENT, REQUEST, write_atomically
from updates.stage import StageError, enough_space, stage

logger = logging.getLogger(__name__)


class UpdateStep:
    """``directory``: the updates directory the guard owns (its ``state.json``, ``releases/``); ``running``:
    this release's version; ``clock_synced()``: whether the clock may be trusted; ``request_switch(version)``
    asks the guard to switch (by default a request file its path unit picks up)."""

    def __init__(
        self,
        source: ReleaseSource,
        directory: Path,
        running: str,
        *,
        clock_synced: Callable[[], bool],
        request_switch: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.directory = directory
        self.running = running
        self.clock_synced = clock_synced
        self.request_switch = request_switch or self._write_request
        self.desired: str | None = None
        self.error: str | None = None
        self.activity: str | None = None  # what it is doing now, for the operator ("staging 0.3.0")

    def guard_state(self) -> dict[str, Any]:
        """The guard's state. Missing: idle (nothing switched yet). Unreadable: ``unknown``, and nothing is
        staged — an agent blind to the guard's ``bad`` list would stage a rolled-back release again."""
        try:
            return json.loads((self.directory / "state.json").read_bytes())
        except FileNotFoundError:
            return {"phase": "idle", "bad": []}
        except (OSError, ValueError) as error:
            logger.error("Cannot read the update guard's state: %s", error)
            return {"phase": "unknown", "bad": [], "error": f"guard state unreadable: {error}"}

    def consider(self, desired: str | None) -> None:
        self.desired = desired
        state = self.guard_state()
        version = choose(desired, self.running, state.get("bad", []))
        if version is None or state.get("phase", "idle") != "idle":
            self.error = state.get("error")
            return
        if not self.clock_synced():
            self.error = "waiting for the clock to be synchronised"
            return
        try:
            self.activity = f"checking {version}"
            info = self.source.target(version)
            if not enough_space(self.directory, info.length):
                raise StageError(f"not enough free space for a {info.length}-byte release")
            self.activity = f"downloading {version}"
            bundle = self.source.download(info)
            self.activity = f"staging {version}"
            logger.info("Staging release %s", version)
            stage(bundle, self.directory / "releases", version)
        except (FetchError, StageError) as error:
            self.error = str(error)
            logger.warning("Update to %s not ready: %s", version, error)
            return
        finally:
            self.activity = None
        self.error = None
        logger.info("Release %s staged: asking the guard to switch", version)
        self.request_switch(version)

    def _write_request(self, version: str) -> None:
        (self.directory / AGENT).mkdir(exist_ok=True)
        write_atomically(self.directory / AGENT / REQUEST, json.dumps({"switch": version}).encode())

    def report(self) -> dict[str, Any]:
        state = self.guard_state()
        return {
            "running": self.running,
            "desired": self.desired,
            "phase": "rolled_back" if state.get("rolled_back") and state.get("phase") == "idle" else state.get("phase"),
            "bad": state.get("bad", []),
            "error": self.error,
            "activity": self.activity,
        }


class InBackground:
    """An :class:`UpdateStep` whose work runs in its own thread, one at a time: downloading and staging a
    release takes minutes on a Pi, and the scans' sync, in whose thread the fleet agent polls, must not wait.
    A poll while the step works only updates the version wanted; the next poll after it takes it up."""

    def __init__(self, step: UpdateStep) -> None:
        self.step = step
        self._thread: threading.Thread | None = None

    @property
    def desired(self) -> str | None:
        return self.step.desired

    def consider(self, desired: str | None) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._consider, args=(desired,), name="aptic-update", daemon=True)
        self._thread.start()

    def _consider(self, desired: str | None) -> None:
        try:
            self.step.consider(desired)
        except Exception as error:  # a bug must not end updates for good: logged, reported, tried again
            logger.exception("Update step failed")
            self.step.error = f"unexpected {type(error).__name__}: {error}"
        finally:
            self.step.activity = None

    def report(self) -> dict[str, Any]:
        return self.step.report()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def pinned_root(pinned: Path, kept: Path, fetch: Callable[[], bytes]) -> Callable[[], bytes]:
    """The first root metadata this terminal trusts, as a function :class:`~updates.fetch.ReleaseSource` calls
    when it needs it: the image's (``pinned``, when whoever built it put the operator's root there), else the
    one taken from the central the first time (``fetch``, over verified TLS with this device's token) and
    kept in ``kept`` for good. From there python-tuf only accepts new roots that the old one's keys signed."""

    def root() -> bytes:
        for path in (pinned, kept):
            if path.is_file():
                return path.read_bytes()
        data = fetch()
        try:  # kept for good: it must at least be a root that its own keys signed
            metadata = Metadata[Root].from_bytes(data)
            metadata.verify_delegate(Root.type, metadata)
        except Exception as error:
            raise FetchError(f"the central's release root is not a signed TUF root: {error}") from error
        kept.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(kept, data)
        logger.info("Trusting the central's release root from now on (kept in %s)", kept)
        return data

    return root
