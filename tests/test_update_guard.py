"""The update guard (updates/guard.py): switch, trial, commit, roll back, and a power cut at every step.

The guard runs as the device runs it, a separate process (``python updates/guard.py``) on a directory made
here; a power cut is the process dying at a named step (``APTIC_GUARD_CRASH_AT``), then the start that follows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from updates.guard import COMPLETE, Guard, GuardError

GUARD = Path(__file__).resolve().parents[1] / "updates" / "guard.py"
STEPS = ["switching", "previous", "current", "trial"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def stage(base: Path, version: str, complete: bool = True) -> Path:
    """A release as the agent leaves it: its files, then .complete last."""
    release = base / "releases" / version
    (release / "bin").mkdir(parents=True)
    (release / "RELEASE.json").write_text(json.dumps({"version": version}))
    if complete:
        (release / COMPLETE).write_text("")
    return release


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    release = tmp_path / "opt" / "0.1.0"
    release.mkdir(parents=True)
    return release


def guard_at(tmp_path: Path, factory: Path, **kw: object) -> Guard:
    return Guard(tmp_path / "updates", factory, **kw)  # type: ignore[arg-type]


def run_guard(tmp_path: Path, factory: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "APTIC_UPDATES_DIR": str(tmp_path / "updates"), "APTIC_FACTORY_RELEASE": str(factory),
           "APTIC_GUARD_UNIT": ""}  # fmt: skip
    if crash_at:
        env["APTIC_GUARD_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, str(GUARD), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_healthy_release_runs_on_trial_then_is_committed(tmp_path: Path, factory: Path) -> None:
    clock, restarts = Clock(), []
    guard = guard_at(tmp_path, factory, clock=clock, restart_daemon=lambda: restarts.append(1), trial_seconds=600)
    assert guard.on_start() == "idle" and guard.running() == factory  # a fresh card runs the image's release
    new = stage(guard.base, "0.2.0")
    guard.switch("0.2.0")
    assert guard.running() == new and restarts == [1] and guard.state()["phase"] == "trial"
    assert Path(os.readlink(guard.previous)) == factory
    assert guard.on_start() == "trial"  # the daemon's start under the new release
    assert guard.check() == "trial"  # healthy, but the trial is not over
    clock.now += 601
    assert guard.check() == "idle" and guard.state()["committed"] == "0.2.0"
    assert guard.running() == new


def test_a_release_that_never_started_is_not_committed_by_the_old_one_answering(tmp_path: Path, factory: Path) -> None:
    clock = Clock()
    guard = guard_at(tmp_path, factory, clock=clock, trial_seconds=60)
    guard.on_start()
    stage(guard.base, "0.2.0")
    guard.switch("0.2.0")  # the restart it asked for has not happened: the old daemon still answers /healthz
    clock.now += 3600
    assert guard.check() == "trial"
    guard.on_start()  # now the new release starts
    assert guard.check() == "trial"  # and must be healthy through its own trial
    clock.now += 61
    assert guard.check() == "idle" and guard.state()["committed"] == "0.2.0"


def test_what_is_not_a_complete_good_release_is_never_switched_to(tmp_path: Path, factory: Path) -> None:
    guard = guard_at(tmp_path, factory)
    guard.on_start()
    stage(guard.base, "0.2.0", complete=False)
    for version, why in (("0.2.0", "not a complete release"), ("0.9.9", "not a complete release"),
                         ("../etc", "not a version")):  # fmt: skip
        with pytest.raises(GuardError, match=why):
            guard.switch(version)
    assert guard.running() == factory and guard.state()["phase"] == "idle"
    guard.on_start()  # the next start removes what the agent left half staged
    assert not (guard.releases / "0.2.0").exists()


@pytest.mark.parametrize("failure", ["exits at start", "never ready", "watchdog kills it"])
def test_a_release_that_keeps_failing_is_rolled_back_marked_bad_and_not_retried(
    tmp_path: Path, factory: Path, failure: str
) -> None:
    # Each of these failures looks the same to the guard: systemd starts the daemon again and again.
    restarts: list[int] = []
    guard = guard_at(tmp_path, factory, max_starts=3, restart_daemon=lambda: restarts.append(1), healthy=lambda: False)
    guard.on_start()
    stage(guard.base, "0.2.0")
    guard.switch("0.2.0")
    assert [guard.on_start() for _ in range(3)] == ["trial"] * 3
    assert guard.check() == "idle"  # unhealthy after its last allowed start
    assert guard.running() == factory and guard.state()["bad"] == ["0.2.0"]
    assert "not healthy" in (guard.logs / "rollback-0.2.0.log").read_text()
    with pytest.raises(GuardError, match="rolled back before"):
        guard.switch("0.2.0")  # a flapping release is not tried forever
    stage(guard.base, "0.2.1")
    guard.switch("0.2.1")  # the fix, published as a new version, is
    assert guard.running() == guard.releases / "0.2.1"


def test_a_release_that_reboots_the_device_in_a_loop_is_rolled_back_at_a_start(tmp_path: Path, factory: Path) -> None:
    guard = guard_at(tmp_path, factory, max_starts=2)
    guard.on_start()
    stage(guard.base, "0.2.0")
    guard.switch("0.2.0")
    assert guard.on_start() == "trial" and guard.on_start() == "trial"
    assert guard.on_start() == "idle"  # the third start without a commit: rolled back before the daemon runs
    assert guard.running() == factory and "0.2.0" in guard.state()["bad"]


@pytest.mark.parametrize("step", STEPS)
def test_a_power_cut_at_any_step_of_a_switch_leaves_a_complete_release_running(
    tmp_path: Path, factory: Path, step: str
) -> None:
    assert run_guard(tmp_path, factory, "start").returncode == 0
    stage(tmp_path / "updates", "0.2.0")
    cut = run_guard(tmp_path, factory, "switch", "0.2.0", crash_at=step)
    assert cut.returncode == 137, cut.stderr
    guard = guard_at(tmp_path, factory)
    running = guard.running()
    assert running in (factory, guard.releases / "0.2.0")  # never in between
    assert running == factory or (running / COMPLETE).exists()
    after = run_guard(tmp_path, factory, "start")  # the next boot
    assert after.returncode == 0, after.stderr
    state = guard.state()
    if guard.running() == factory:
        assert state["phase"] == "idle"  # undone: the old version runs, and the switch may be asked again
    else:
        assert state["phase"] == "trial" and state["to"] == "0.2.0"  # finished: the new one on trial
    assert not list(guard.base.glob(".*.new")) and not list(guard.base.glob(".*.tmp"))


def test_every_write_is_fsynced_before_its_rename_and_the_directory_after(
    tmp_path: Path, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    guard = guard_at(tmp_path, factory)
    guard.on_start()
    stage(guard.base, "0.2.0")
    events.clear()
    guard.switch("0.2.0")
    renames = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    assert renames, events
    for i in renames:
        target = Path(events[i][1])
        assert events[i + 1] == ("fsync", str(target.parent)), f"no directory fsync after renaming {target}"
        if target.name not in ("current", "previous"):  # a symlink holds no data to sync
            assert events[i - 1][0] == "fsync" and events[i - 1][1].endswith(".tmp"), f"{target} not synced first"


def test_the_state_is_readable_by_the_agent_under_the_daemons_umask(tmp_path: Path, factory: Path) -> None:
    # The guard runs as ExecStartPre=+ of aptic-terminal.service, whose UMask=0077; the agent, as the aptic
    # user, reads state.json for the bad list. A 0600 file made it stage a rolled-back release again (QEMU).
    guard = guard_at(tmp_path, factory)
    stage(guard.base, "0.2.0")
    previous = os.umask(0o077)
    try:
        guard.on_start()
        guard.switch("0.2.0")
    finally:
        os.umask(previous)
    assert guard.state_file.stat().st_mode & 0o777 == 0o644


def test_the_agents_request_is_taken_once(tmp_path: Path, factory: Path) -> None:
    assert run_guard(tmp_path, factory, "start").returncode == 0
    updates = tmp_path / "updates"
    stage(updates, "0.2.0")
    request = updates / "agent" / "request.json"
    request.parent.mkdir()
    request.write_text('{"switch": "0.2.0"}')
    assert run_guard(tmp_path, factory, "request").returncode == 0
    assert guard_at(tmp_path, factory).running() == updates / "releases" / "0.2.0"
    assert not request.exists()
    request.write_text("garbage")
    refused = run_guard(tmp_path, factory, "request")
    assert refused.returncode == 1 and "unreadable request" in refused.stderr
    assert not request.exists()  # not retried in a loop by its path unit
    assert run_guard(tmp_path, factory, "request").returncode == 0  # nothing asked: nothing done
