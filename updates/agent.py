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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from updates.fetch import FetchError, ReleaseSource, choose
from updates.stage import StageError, enough_space, stage

logger = logging.getLogger(__name__)

REQUEST = "request.json"  # the guard's path unit watches it


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

    def guard_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.directory / "state.json").read_bytes())
        except (OSError, ValueError):
            return {"phase": "idle", "bad": []}

    def consider(self, desired: str | None) -> None:
        self.desired = desired
        state = self.guard_state()
        version = choose(desired, self.running, state.get("bad", []))
        if version is None or state.get("phase", "idle") != "idle":
            self.error = None
            return
        if not self.clock_synced():
            self.error = "waiting for the clock to be synchronised"
            return
        try:
            info = self.source.target(version)
            if not enough_space(self.directory, info.length):
                raise StageError(f"not enough free space for a {info.length}-byte release")
            bundle = self.source.download(info)
            stage(bundle, self.directory / "releases", version)
        except (FetchError, StageError) as error:
            self.error = str(error)
            logger.warning("Update to %s not ready: %s", version, error)
            return
        self.error = None
        logger.info("Release %s staged: asking the guard to switch", version)
        self.request_switch(version)

    def _write_request(self, version: str) -> None:
        from updates.guard import write_atomically

        write_atomically(self.directory / REQUEST, json.dumps({"switch": version}).encode())

    def report(self) -> dict[str, Any]:
        state = self.guard_state()
        return {
            "running": self.running,
            "desired": self.desired,
            "phase": "rolled_back" if state.get("rolled_back") and state.get("phase") == "idle" else state.get("phase"),
            "bad": state.get("bad", []),
            "error": self.error,
        }
