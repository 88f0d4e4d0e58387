"""What the central's settings and commands do on this terminal: the daemon's side of ``terminal.fleet``.

:func:`applier` makes the ``apply_config`` of the :class:`~terminal.fleet.FleetAgent`: the log level, the sync
worker's intervals and the point de présence change at once; the settings only a restart applies (the
douchettes' layout, read by the reader process at its start) are listed, and the agent restarts the daemon.
:func:`actions` makes its commands. The daemon runs as an unprivileged user: ``reboot`` and
``restart_kiosk`` go through ``systemctl --no-ask-password``, which the image's polkit rule allows that user
for exactly these two actions. ``upload_logs`` (``terminal.logs``) and ``screenshot`` (``terminal.screenshot``)
return the file the agent sends to the central.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aptic.settings import needs_restart
from terminal import logs, screenshot
from terminal.config import Config
from terminal.fleet import Artifact
from terminal.terminal import Terminal, TerminalError

logger = logging.getLogger(__name__)


def applier(
    config: Config, terminal: Terminal, worker: Any, started_with: Mapping[str, Any]
) -> Callable[..., list[str]]:
    """``apply(remote)``: apply the remote settings, fall back to the local ones for those unset; returns the
    settings that differ from what this process ``started_with`` and need a restart."""

    def apply(remote: Mapping[str, Any]) -> list[str]:
        logging.getLogger().setLevel(remote.get("log_level") or logging.INFO)
        worker.heartbeat_interval = remote.get("heartbeat_interval", config.heartbeat_interval)
        worker.interval = remote.get("sync_interval", 60.0)
        worker.check_timeout = remote.get("check_timeout", config.check_timeout)
        point = remote.get("point_id", config.point_id)
        if point is not None and terminal.point_id != point:
            try:
                terminal.set_point(point)
                logger.info("Point de présence set from the central: %s", point)
            except TerminalError as error:  # not one of this organisation's points (yet): keep the current one
                logger.warning("Point %s from the central not applied: %s", point, error)
        return needs_restart(started_with, remote)

    return apply


def scanner_section(config: Config, remote: Mapping[str, Any]) -> dict[str, Any]:
    """The reader's ``[scanner]`` settings, with the central's layout when it set one."""
    section = dict(config.extra.get("scanner", {}))
    if remote.get("scanner_layout"):
        section["layout"] = remote["scanner_layout"]
    return section


def systemctl(*args: str) -> dict[str, Any]:
    done = subprocess.run(["systemctl", "--no-ask-password", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"systemctl {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return {}


def actions(
    terminal: Terminal,
    worker: Any,
    *,
    log_dir: Path | None = None,
    updates_dir: Path | None = None,
    screenshot_dir: Path = screenshot.DIRECTORY,
    screenshot_timeout: float = 20.0,
) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
    """The commands; ``log_dir`` holds the daemon's log file, ``updates_dir`` the guard's (default from
    ``APTIC_UPDATES_DIR``), ``screenshot_dir`` the directory shared with the screenshot unit."""
    updates = logs.updates_dir() if updates_dir is None else updates_dir

    def upload_logs(_: Mapping[str, Any]) -> Artifact:
        files = logs.log_files(log_dir, updates)
        return Artifact(logs.archive(files), "application/gzip", {"files": [name for name, _ in files]})

    def take_screenshot(_: Mapping[str, Any]) -> Artifact:
        return Artifact(screenshot.capture(screenshot_dir, timeout=screenshot_timeout), "image/png")

    def resync(_: Mapping[str, Any]) -> dict[str, Any]:
        report = worker.sync_once()
        return {"pushed": report.pushed, "snapshot_changed": report.snapshot_changed}

    def reactivate(_: Mapping[str, Any]) -> None:
        # The scans waiting in the outbox are kept: they go out with the new token.
        terminal.store.delete_token()
        worker.reactivation_required()

    return {
        "resync": resync,
        "restart_kiosk": lambda _: systemctl("restart", "aptic-kiosk-screen.service"),
        "reboot": lambda _: systemctl("reboot"),
        "reactivate": reactivate,
        "upload_logs": upload_logs,
        "screenshot": take_screenshot,
    }
