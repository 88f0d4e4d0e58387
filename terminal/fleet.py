"""The fleet agent: the terminal reads its desired state, applies it, runs its commands and reports.

Once per ``poll_interval`` (with ±10 % jitter, so two hundred terminals switched on together do not poll
together), :meth:`FleetAgent.poll_if_due` asks the central for the desired state with the ETag of the last
one applied; a 304 costs nothing more. A new document's settings are handed to ``apply_config``, which
applies what it can at once and says which settings need the daemon restarted; its commands are run; then
the agent reports the generation applied and every acknowledgement not yet delivered.

**Commands and power cuts.** Each command goes through the :class:`CommandJournal`, a file in the data
directory written atomically (fsync, rename, fsync) *before* the command acts:

- a command delivered twice (the central had not received the acknowledgement yet) is only acknowledged
  again, never run again;
- a command past its ``not_after`` (by the central's clock, which the document carries: a bus's own clock may
  be days off) is acknowledged ``expired`` and not run;
- a command found ``started`` after a crash or a power cut is run again only if running it twice is harmless
  (``REPEATABLE``); a reboot found started is ``done`` once the boot id changed, and ``interrupted`` if it
  did not (the reboot never happened: the operator decides whether to send another); anything else found
  started is ``interrupted``, never run twice;
- ``reactivate`` forgets the token: once that is done the central no longer hears this device, so its
  ``done`` is reported first and the effect (idempotent) follows, and is finished after a power cut.

A command that brings a file back (``upload_logs``, ``screenshot``) returns an :class:`Artifact`; the agent
sends it to the central (``PUT /commands/{id}/artifact``) before the command is ``done``, so the operator who
sees ``done`` finds the file. Run again after a crash, it sends the file again, which replaces the first.

Acknowledgements stay in the journal until the central has answered the report carrying them, so a report
lost on the way is sent again; the central ignores what it already knows.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from terminal.durable import atomic_write_bytes

logger = logging.getLogger(__name__)

JOURNAL = "commands.json"
REPEATABLE = frozenset({"resync", "restart_kiosk", "upload_logs", "screenshot"})
TERMINAL = frozenset({"done", "failed", "expired", "interrupted"})
KEEP = 200  # acknowledged commands kept in the journal, newest first: enough to recognise any redelivery


@dataclass(frozen=True)
class Artifact:
    """What an action returns when its command brings a file back: the bytes, their type, and the result."""

    data: bytes
    content_type: str
    result: Mapping[str, Any] = field(default_factory=dict)


Action = Callable[[Mapping[str, Any]], "Mapping[str, Any] | Artifact | None"]


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CommandJournal:
    """Every command this terminal was sent, by id: its kind, status, result and whether the central knows.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     journal = CommandJournal(pathlib.Path(d) / JOURNAL)
    ...     journal.record("c1", kind="resync", status="started", boot_id="b1")
    ...     journal.recover("b1")  # a restart with the command started: resync may run again
    ...     CommandJournal(pathlib.Path(d) / JOURNAL).entry("c1")["status"]
    'received'
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._entries: dict[str, dict[str, Any]] = json.loads(path.read_bytes())
        except FileNotFoundError:
            self._entries = {}
        except ValueError:  # atomic writes make this a disk fault; keep the bytes for a human, start afresh
            logger.error("Command journal %s is unreadable: kept as %s.bad, starting a new one", path, path.name)
            path.replace(path.with_name(path.name + ".bad"))
            self._entries = {}

    def entry(self, command_id: str) -> dict[str, Any] | None:
        found = self._entries.get(command_id)
        return None if found is None else dict(found)

    def record(self, command_id: str, **fields: Any) -> None:
        """Change a command's entry and write the journal to disk before returning."""
        entry = self._entries.setdefault(command_id, {"reported": False})
        entry.update(fields)
        if "status" in fields:
            entry["reported"] = False
        entry["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._write()

    def _write(self) -> None:
        finished = [k for k, e in self._entries.items() if e.get("status") in TERMINAL and e.get("reported")]
        for old in sorted(finished, key=lambda k: self._entries[k]["updated_at"])[:-KEEP]:
            del self._entries[old]
        atomic_write_bytes(self.path, json.dumps(self._entries, sort_keys=True).encode())

    def recover(self, boot_id: str) -> None:
        """After a start: settle the commands a crash or a power cut left ``started`` (see the module doc)."""
        for command_id, entry in list(self._entries.items()):
            if entry.get("status") != "started":
                continue
            kind = entry.get("kind")
            if kind == "reboot":
                rebooted = entry.get("boot_id") != boot_id
                self.record(command_id, status="done" if rebooted else "interrupted")
            elif kind in REPEATABLE:
                self.record(command_id, status="received")
            else:
                self.record(command_id, status="interrupted")
            logger.info("Command %s (%s) found started at start-up: now %s", command_id, kind,
                        self._entries[command_id]["status"])  # fmt: skip

    def pending_effects(self) -> list[str]:
        """Commands acknowledged whose effect a power cut may have stopped (``reactivate``)."""
        return [k for k, e in self._entries.items() if e.get("effect_pending")]

    def to_run(self) -> list[str]:
        return [k for k, e in self._entries.items() if e.get("status") == "received"]

    def unreported(self) -> list[dict[str, Any]]:
        return [
            {"id": k, "status": e["status"], "result": e.get("result")}
            for k, e in self._entries.items()
            if not e.get("reported") and e.get("status")
        ]

    def mark_reported(self, acks: Mapping[str, str], sent: list[dict[str, Any]]) -> None:
        """The central answered a report: each acknowledgement it now holds (as sent, or further) is known."""
        changed = False
        for ack in sent:
            entry = self._entries.get(ack["id"])
            if entry is not None and entry.get("status") == ack["status"] and ack["id"] in acks:
                entry["reported"] = True
                changed = True
        if changed:
            self._write()


class FleetAgent:
    """Polls the desired state, applies it, runs commands through ``actions`` and reports. See the module doc.

    ``client``: a :class:`terminal.sync.CentralClient`; ``store``: the terminal's store (it keeps the ETag,
    the generation applied and the remote settings); ``apply_config(config)`` applies settings and returns
    the names that need a restart; ``actions``: command kind → a function of the command's args returning a
    result; ``restart()`` restarts the daemon (systemd starts it again); ``boot_id`` tells a reboot happened;
    ``updates`` (an :class:`updates.agent.UpdateStep`) takes the desired software version.
    """

    def __init__(
        self,
        client: Any,
        store: Any,
        journal: CommandJournal,
        *,
        apply_config: Callable[[Mapping[str, Any]], list[str]],
        actions: Mapping[str, Action],
        boot_id: str,
        restart: Callable[[], None] = lambda: None,
        updates: Any = None,
        interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.store = store
        self.journal = journal
        self.apply_config = apply_config
        self.actions = actions
        self.boot_id = boot_id
        self.restart = restart
        self.updates = updates  # an updates.agent.UpdateStep, when this terminal takes signed releases
        self.interval = interval
        self.clock = clock
        self.jitter = jitter
        self.next_poll: float | None = None
        self._sent_release: dict[str, Any] | None = None
        self.clock_offset: float | None = None  # the central's clock minus ours, at the last document
        journal.recover(boot_id)

    def clock_agrees(self, within: float = 300.0) -> bool:
        """Whether this clock was within ``within`` seconds of the central's at the last desired state (read
        over verified TLS): as good as NTP for judging signed metadata's expiry, where NTP is blocked."""
        return self.clock_offset is not None and abs(self.clock_offset) <= within

    def poll_if_due(self) -> bool:
        """Poll when the time has come (at once after a start); True when it polled. Errors propagate: the
        caller's backoff handles a central that does not answer, and the next round tries again."""
        now = self.clock()
        if self.next_poll is not None and now < self.next_poll:
            return False
        self.next_poll = now + self.interval * (0.9 + 0.2 * self.jitter())
        self.poll_once()
        return True

    def poll_once(self) -> None:
        state = self.store.state()
        etag, document = self.client.desired_state(state.get("desired_etag"))
        restart_for: list[str] = []
        if document is not None:
            config = document.get("config") or {}
            if "poll_interval" in config and float(config["poll_interval"]) != self.interval:
                self.interval = float(config["poll_interval"])
                # The next poll was planned with the old interval: a shorter one takes effect now, not after it.
                if self.next_poll is not None:
                    self.next_poll = min(self.next_poll, self.clock() + self.interval * (0.9 + 0.2 * self.jitter()))
            restart_for = self.apply_config(config)
            self.store.update_state(remote_config=config, applied_generation=document.get("generation"))
            server_time = _when(document["server_time"]) if document.get("server_time") else None
            self.clock_offset = (server_time - datetime.now(UTC)).total_seconds() if server_time else None
            server_time = server_time or datetime.now(UTC)
            for command in document.get("commands") or []:
                self._receive(command, server_time)
        self._run_received()
        if self.updates is not None:
            desired = document.get("software_version") if document is not None else self.updates.desired
            self.updates.consider(desired)  # at each poll: a failed step is tried again
        self._report(document)
        if document is not None:
            # Saved once reported: a crash in between polls the whole document again, which is harmless.
            self.store.update_state(desired_etag=etag)
        for command_id in self.journal.pending_effects():
            self._finish_effect(command_id)
        if restart_for:
            logger.warning("Settings %s apply at restart: restarting the daemon", ", ".join(restart_for))
            self.restart()

    # -- commands ------------------------------------------------------------------------------------------

    def _receive(self, command: Mapping[str, Any], server_time: datetime) -> None:
        command_id, kind = str(command["id"]), str(command.get("kind"))
        known = self.journal.entry(command_id)
        if known is not None:  # delivered again: the central has not heard the acknowledgement; say it again
            if known.get("reported"):
                self.journal.record(command_id, reported=False)
            return
        if command.get("not_after") and _when(command["not_after"]) < server_time:
            logger.info("Command %s (%s) arrived after its expiry: not run", command_id, kind)
            self.journal.record(command_id, kind=kind, status="expired")
            return
        if kind not in self.actions:
            self.journal.record(command_id, kind=kind, status="failed", result={"error": f"unknown command {kind}"})
            return
        self.journal.record(command_id, kind=kind, args=dict(command.get("args") or {}), status="received")

    def _run_received(self) -> None:
        for command_id in self.journal.to_run():
            entry = self.journal.entry(command_id)
            assert entry is not None
            kind = entry["kind"]
            if kind == "reactivate":
                # Done is said while the token still works; the effect follows (and survives a power cut).
                self.journal.record(command_id, status="done", effect_pending=True)
                continue
            self.journal.record(command_id, status="started", boot_id=self.boot_id)  # on disk before it acts
            if kind == "reboot":
                self._report(None)  # the central hears "started" before the device goes down
            logger.info("Running command %s (%s)", command_id, kind)
            try:
                result = self.actions[kind](entry.get("args") or {})
                if isinstance(result, Artifact):
                    self.client.put_artifact(command_id, result.data, result.content_type)
                    result = {"bytes": len(result.data), "content_type": result.content_type, **result.result}
            except Exception as error:
                logger.error("Command %s (%s) failed: %s", command_id, kind, error)
                self.journal.record(command_id, status="failed", result={"error": str(error)})
                continue
            if kind == "reboot":
                continue  # done is known at the next boot, from a new boot id
            self.journal.record(command_id, status="done", result=dict(result) if result else None)

    def _finish_effect(self, command_id: str) -> None:
        entry = self.journal.entry(command_id)
        if entry is None or not entry.get("reported"):
            return  # the central has not heard "done" yet: the next report carries it first
        self.actions[entry["kind"]](entry.get("args") or {})
        self.journal.record(command_id, effect_pending=False, reported=True)

    # -- report --------------------------------------------------------------------------------------------

    def _report(self, document: Mapping[str, Any] | None) -> None:
        acks = self.journal.unreported()
        release = self.updates.report() if self.updates is not None else None
        if document is None and not acks and release == self._sent_release:
            return
        body: dict[str, Any] = {"acks": acks}
        state = self.store.state()
        if document is not None:
            body["applied_generation"] = document.get("generation")
            body["config"] = state.get("remote_config")
        if release is not None:
            body["release"] = release
        answer = self.client.report(body)
        self._sent_release = release
        self.journal.mark_reported(answer.get("acks") or {}, acks)
        for unknown in answer.get("unknown") or []:  # not this device's (any more): stop saying it
            self.journal.mark_reported({unknown: "unknown"}, [a for a in acks if a["id"] == unknown])
