#!/usr/bin/python3 -I
"""The update guard: moves the terminal from one complete release to another, and back, whatever happens.

It ships in the image (``/usr/lib/aptic-terminal/aptic-update-guard``, run by Debian's own Python in isolated
mode), outside every release, and uses the standard library alone: a release that cannot start, or that
breaks Python packages, cannot break the code that rolls it back. The fleet agent (inside the release)
downloads, verifies and stages a release; only the guard switches, judges and commits or rolls back.

Layout, on the data partition (``APTIC_UPDATES_DIR``, ``/var/lib/aptic/updates``)::

    releases/<version>/   a release: its venv, RELEASE.json, and .complete (written last, fsync'd)
    agent/                the agent's own files: TUF metadata, downloads, and request.json ({"switch": V})
    current  -> releases/<version>, or the image's own release (/opt/aptic-terminal/current)
    previous -> what ran before the last switch, kept until the switch is committed
    state.json            {"phase", "from", "to", "starts", "since", "bad": [...]}
    logs/rollback-<version>.log

The directory itself and what the guard writes in it are root's; ``releases/`` and ``agent/`` are the
daemon's (it stages there, as its own unprivileged user). The guard never runs what it finds in them: it moves
symbolic links and writes its state, and root's files cannot be replaced by the daemon.

The phases: ``idle`` → ``switching`` (written before ``current`` moves) → ``trial`` (each start of the
daemon counts: :meth:`Guard.on_start`) → ``idle`` again, committed or rolled back. Every file is written
atomically (temporary file, fsync, rename, fsync of the directory), ``current`` moves by renaming a new
symlink over it, and the state is written before the step it announces, so a power cut at any instant
leaves ``current`` on a complete release and the next start finishes or undoes what was under way:

- cut in ``switching``: ``current`` is the old or the new release; the guard carries on to ``trial`` if it
  moved, back to ``idle`` if not;
- cut in ``trial``: the start after it counts; more than ``max_starts`` starts without a commit (a release
  that crashes, never becomes ready, or gets killed by its watchdog) rolls back;
- a version rolled back is ``bad``: the agent does not stage it again (a fix is published as a new version).

``APTIC_GUARD_CRASH_AT=<step>`` makes the guard die at that step (``os._exit``), for the power-cut tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("aptic-update-guard")

DEFAULT_DIR = Path("/var/lib/aptic/updates")
AGENT = "agent"  # the daemon's directory in the updates directory
REQUEST = "request.json"  # in it: the agent's request to switch (a path unit starts the guard on it)
FACTORY = Path("/opt/aptic-terminal/current")  # the image's own release, the floor under every update
COMPLETE = ".complete"


def crash_point(step: str) -> None:
    """Die here if the tests asked for it (``APTIC_GUARD_CRASH_AT``), as a power cut would."""
    if os.environ.get("APTIC_GUARD_CRASH_AT") == step:
        os._exit(137)


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` by ``data`` in one rename, durably. The mode is set explicitly: the guard runs under
    the daemon unit's ``UMask=0077``, and the agent (another user) must read the state it writes."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def point_symlink(link: Path, target: Path) -> None:
    """Make ``link`` point at ``target`` in one rename: at every instant it is the old link or the new one."""
    temporary = link.with_name(f".{link.name}.new")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)
    fsync_directory(link.parent)


def _remove_release(entry: Path) -> None:
    """Remove a release so that a cut at any instant leaves it whole or without ``.complete``: never a
    ``.complete`` beside files already gone (``rmtree`` removes in directory order)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        (entry / COMPLETE).unlink()
        fsync_directory(entry)
    shutil.rmtree(entry, ignore_errors=True)


class GuardError(Exception):
    """A request the guard refuses (an incomplete or bad release); nothing was changed."""


class Guard:
    """The update state of one terminal, in ``base``; ``factory`` is the image's release.

    ``restart_daemon()`` restarts the terminal daemon (systemd); ``healthy()`` says whether the running
    daemon is ready and answers (the guard asks systemd and the kiosk). ``clock`` gives wall-clock seconds.
    """

    def __init__(
        self,
        base: Path = DEFAULT_DIR,
        factory: Path = FACTORY,
        *,
        max_starts: int = 3,
        trial_seconds: float = 600.0,
        restart_daemon: Callable[[], None] = lambda: None,
        healthy: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base = base
        self.factory = factory
        self.max_starts = max_starts
        self.trial_seconds = trial_seconds
        self.restart_daemon = restart_daemon
        self.healthy = healthy
        self.clock = clock
        self.releases = base / "releases"
        self.current = base / "current"
        self.previous = base / "previous"
        self.state_file = base / "state.json"
        self.logs = base / "logs"
        self.request_file = base / AGENT / REQUEST

    # -- state ---------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_file.read_bytes())
        except FileNotFoundError:
            return {"phase": "idle", "bad": []}
        except ValueError:  # written atomically: a disk fault. Judge from `current` alone.
            logger.error("state.json is unreadable: starting from idle")
            return {"phase": "idle", "bad": []}
        state.setdefault("bad", [])
        return state

    def _save(self, **state: Any) -> None:
        write_atomically(self.state_file, json.dumps(state, sort_keys=True).encode())

    def running(self) -> Path:
        """The release ``current`` points at (the factory release when there is none yet)."""
        try:
            return Path(os.readlink(self.current))
        except FileNotFoundError:
            return self.factory

    def release_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise GuardError(f"not a version: {version!r}")
        return self.releases / version

    def complete(self, version: str) -> bool:
        return (self.release_dir(version) / COMPLETE).is_file()

    # -- at each start of the daemon -------------------------------------------------------------------------

    def on_start(self) -> str:
        """Before the daemon starts (``ExecStartPre``): tidy up, settle a cut switch, count a trial start.
        Returns the phase after it."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.releases.mkdir(exist_ok=True)
        if not self.current.is_symlink():
            point_symlink(self.current, self.factory)
        state = self.state()
        self._remove_incomplete(keep=state.get("to"))
        if state["phase"] == "switching":
            moved = self.running() == self.release_dir(state["to"])
            if moved:
                state = {**state, "phase": "trial", "starts": 0, "since": self.clock()}
            else:
                state = {"phase": "idle", "bad": state["bad"]}
            self._save(**state)
        if state["phase"] == "trial":
            starts = state.get("starts", 0) + 1
            if starts > self.max_starts:
                self._roll_back(state, f"{starts - 1} starts without becoming healthy", restart=False)
                return "idle"
            # The trial period runs from the new release's first start, not from the switch.
            self._save(**{**state, "starts": starts, **({"since": self.clock()} if starts == 1 else {})})
            logger.info("Trial of %s: start %d of %d", state["to"], starts, self.max_starts)
        return self.state()["phase"]

    def _remove_incomplete(self, keep: str | None) -> None:
        """Staging the agent left half done (a cut during download or install): never run, removed."""
        for entry in self.releases.iterdir():
            if not (entry / COMPLETE).is_file() and entry.name != keep:
                logger.info("Removing incomplete release %s", entry.name)
                shutil.rmtree(entry, ignore_errors=True)

    # -- switch, judge, commit, roll back --------------------------------------------------------------------

    def switch(self, version: str) -> None:
        """Run ``version`` (staged complete by the agent) in place of the current release, on trial."""
        target = self.release_dir(version)
        state = self.state()
        if version in state["bad"]:
            raise GuardError(f"{version} was rolled back before: publish a fix as a new version")
        if state["phase"] != "idle":
            raise GuardError(f"an update is already {state['phase']}")
        if not self.complete(version):
            raise GuardError(f"{version} is not a complete release")
        if self.running() == target:
            raise GuardError(f"{version} is already running")
        before = str(self.running())
        self._save(phase="switching", to=version, **{"from": before}, bad=state["bad"])
        crash_point("switching")
        point_symlink(self.previous, Path(before))
        crash_point("previous")
        point_symlink(self.current, target)
        crash_point("current")
        self._save(phase="trial", to=version, starts=0, since=self.clock(), bad=state["bad"], **{"from": before})
        crash_point("trial")
        logger.info("Switched from %s to %s: on trial", before, version)
        self.restart_daemon()

    def check(self) -> str:
        """Judge a release on trial (a timer runs this): commit it once it has been healthy through the trial
        period, roll it back when the daemon is down. Returns the phase after it."""
        state = self.state()
        if state["phase"] != "trial":
            return state["phase"]
        if state.get("starts", 0) == 0:
            return "trial"  # the new release has not started yet: what answers is still the old one
        if not self.healthy():
            if state.get("starts", 0) >= self.max_starts:
                self._roll_back(state, "not healthy after its last start")
                return "idle"
            return "trial"  # systemd restarts it; on_start counts the starts
        if self.clock() - state.get("since", self.clock()) >= self.trial_seconds:
            self._commit(state)
            return "idle"
        return "trial"

    def _commit(self, state: dict[str, Any]) -> None:
        self._save(phase="idle", committed=state["to"], bad=state["bad"])
        crash_point("committed")
        logger.info("Committed %s", state["to"])
        keep = {self.release_dir(state["to"]).resolve(), Path(state["from"]).resolve()}
        for entry in self.releases.iterdir():  # older releases go; the one before stays for a manual rollback
            if entry.resolve() not in keep:
                _remove_release(entry)

    def _roll_back(self, state: dict[str, Any], why: str, restart: bool = True) -> None:
        bad = sorted({*state["bad"], state["to"]})
        logger.error("Rolling back %s: %s", state["to"], why)
        self.logs.mkdir(exist_ok=True)
        write_atomically(self.logs / f"rollback-{state['to']}.log",
                         f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {state['to']}: {why}\n".encode())  # fmt: skip
        point_symlink(self.current, Path(state["from"]))
        crash_point("rolled_back_link")
        self._save(phase="idle", rolled_back=state["to"], why=why, bad=bad)
        if restart:
            self.restart_daemon()


def handle_request(guard: Guard) -> None:
    """The agent's request (``request.json``, ``{"switch": VERSION}``), taken once: removed before it is acted
    on, so a request that fails is not retried in a loop (the agent asks again at its next poll)."""
    path = guard.request_file
    try:
        request = json.loads(path.read_bytes())
    except FileNotFoundError:
        return
    except ValueError:
        request = {}
    path.unlink()
    fsync_directory(path.parent)
    if isinstance(request, dict) and isinstance(request.get("switch"), str):
        guard.switch(request["switch"])
    else:
        raise GuardError(f"unreadable request: {request!r}")


def systemd_restart(unit: str) -> Callable[[], None]:
    def restart() -> None:
        # --no-block: the daemon's start runs this guard again (ExecStartPre), which waits for our lock.
        subprocess.run(["systemctl", "--no-block", "restart", unit], check=False, timeout=30)

    return restart


def systemd_healthy(unit: str, healthz: str) -> Callable[[], bool]:
    """The daemon is healthy when systemd says it is active (it sent READY=1 and its watchdog has not fired)
    and its kiosk answers ``/healthz`` (the daemon pings its watchdog only while its own checks pass)."""

    def healthy() -> bool:
        active = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False, timeout=30)
        if active.returncode != 0:
            return False
        try:
            with urllib.request.urlopen(healthz, timeout=10) as answer:
                return answer.status == 200
        except OSError:
            return False

    return healthy


def guard_from_environment() -> Guard:
    """The guard as the units run it; every setting has the image's default (``/etc/aptic-terminal/updates.env``
    may change the trial for tests or a cautious operator)."""
    env = os.environ.get
    unit = env("APTIC_GUARD_UNIT", "aptic-terminal.service")
    if not unit:  # no systemd (a workstation, the tests): nothing to restart, health not judged
        return Guard(Path(env("APTIC_UPDATES_DIR", str(DEFAULT_DIR))), Path(env("APTIC_FACTORY_RELEASE", str(FACTORY))))
    return Guard(
        Path(env("APTIC_UPDATES_DIR", str(DEFAULT_DIR))),
        Path(env("APTIC_FACTORY_RELEASE", str(FACTORY))),
        max_starts=int(env("APTIC_GUARD_MAX_STARTS", "3")),
        trial_seconds=float(env("APTIC_GUARD_TRIAL_SECONDS", "600")),
        restart_daemon=systemd_restart(unit),
        healthy=systemd_healthy(unit, env("APTIC_GUARD_HEALTHZ", "http://127.0.0.1:8080/healthz")),
    )


def main(argv: list[str] | None = None) -> int:
    """``aptic-update-guard start|request|switch VERSION|check|status``, run by the units (as root)."""
    logging.basicConfig(level=logging.INFO, format="aptic-update-guard: %(message)s", stream=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
    guard = guard_from_environment()
    guard.base.mkdir(parents=True, exist_ok=True)
    # One guard at a time: the daemon's start, the agent's request and the timer's check may coincide.
    with open(guard.base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if args[:1] == ["start"]:
                print(guard.on_start())
            elif args[:1] == ["request"]:
                handle_request(guard)
            elif args[:1] == ["switch"] and len(args) == 2:
                guard.switch(args[1])
            elif args[:1] == ["check"]:
                print(guard.check())
            elif args[:1] == ["status"]:
                print(json.dumps({**guard.state(), "running": str(guard.running())}))
            else:
                print(main.__doc__, file=sys.stderr)
                return 2
        except GuardError as error:
            logger.error("%s", error)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
