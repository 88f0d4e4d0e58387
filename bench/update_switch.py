"""Bench of an update's switch (issue 12): from a bundle to a staged venv, and from the switch to the commit.

With real processes on this machine: this checkout's bundle is built the way a release's wheels are
(``pip wheel`` of the project and its dependencies, packed by ``updates.stage.build_bundle``), then:

- staging: ``updates.stage.stage`` makes the release's venv from it (``python -m venv``, ``pip install
  --no-index`` of the wheels, the release's own self-test, every file synced, ``.complete``);
- the switch: the old daemon (this checkout's ``aptic-terminal run --no-scanner``) runs and answers on its
  kiosk port; ``Guard.switch`` moves ``current`` and restarts the daemon as systemd would: the old one stops
  (SIGTERM), the guard's ``on_start`` counts the start (ExecStartPre), the new release's own interpreter
  starts ``terminal.cli run`` (in a directory outside the checkout, so that it imports the release's code);
- ready: the new daemon's ``/healthz`` answers 200;
- committed: the guard's ``check()`` (the timer), polled every 0.2 s, commits after a short trial.

Printed: the bundle build (not counted), staging, switch → new daemon ready (target ≤ 30 s here: the
device's kiosk is back within a Chromium reload), and switch → commit, which on a device adds
``APTIC_GUARD_TRIAL_SECONDS`` (600 s by default) where this bench waits ``BENCH_SWITCH_TRIAL`` (5 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from central.pgtemp import free_port
from updates.guard import Guard
from updates.stage import build_bundle, stage

REPO = Path(__file__).resolve().parents[1]
TARGET_READY = 30.0


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


class Daemon:
    """The terminal daemon as systemd runs it, from one release's interpreter."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, python: Path) -> None:
        env = {**os.environ, "APTIC_TERMINAL_DATA_DIR": str(self.root / "data"), "PYTHONPATH": "",
               "APTIC_TERMINAL_CONFIG": "/nonexistent", "APTIC_TERMINAL_KIOSK_PORT": str(self.port),
               "GPIOZERO_PIN_FACTORY": "mock"}  # fmt: skip
        with open(self.root / "daemon.log", "ab") as log:
            self.process = subprocess.Popen([str(python), "-m", "terminal.cli", "run", "--no-scanner"],
                                            cwd=self.root, env=env, stdout=log, stderr=log)  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextlib.contextmanager
def _as_on_a_device(directory: Path) -> Iterator[None]:
    """Staging as the daemon does it on a device: no PYTHONPATH, and a working directory without the project
    (stage's pip and self-test inherit both: from the checkout they would find its code, not the release's)."""
    saved, here = os.environ.pop("PYTHONPATH", None), os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(here)
        if saved is not None:
            os.environ["PYTHONPATH"] = saved


def _wait(condition, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
    return time.perf_counter()


def main() -> None:
    trial = float(os.environ.get("BENCH_SWITCH_TRIAL", "5"))
    with tempfile.TemporaryDirectory(prefix="aptic-bench-switch-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        source = root / "source"  # a copy: pip builds in the tree it is given (build/, *.egg-info)
        skip = shutil.ignore_patterns(".git", ".venv", ".cache", "build", "*.egg-info", "artifacts", "demo-data",
                                      "__pycache__")  # fmt: skip
        shutil.copytree(REPO, source, ignore=skip)
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                                "--wheel-dir", str(root / "wheels"), str(source)],
                               capture_output=True, text=True)  # fmt: skip
        if built.returncode != 0:
            print(f"update switch: SKIPPED, the bundle's wheels could not be built: {built.stderr.strip()[-300:]}")
            return
        project = next((root / "wheels").glob("aptic_terminal-*.whl"))
        version = project.name.split("-")[1]
        bundle = build_bundle(version, root / "wheels", root / "bundle.tar")
        wheels = time.perf_counter() - started
        size = bundle.stat().st_size / 2**20

        updates, factory = root / "updates", root / "factory"
        factory.mkdir()
        started = time.perf_counter()
        with _as_on_a_device(root):
            release = stage(bundle, updates / "releases", version)
        staging = time.perf_counter() - started

        daemon = Daemon(root, free_port())
        guard: Guard

        def restart() -> None:  # systemctl restart: stop, ExecStartPre (the guard's on_start), ExecStart
            daemon.stop()
            guard.on_start()
            daemon.start(guard.running() / "bin" / "python")

        guard = Guard(updates, factory, trial_seconds=trial, restart_daemon=restart,
                      healthy=lambda: daemon.alive() and _healthy(daemon.port))  # fmt: skip
        try:
            guard.on_start()
            daemon.start(Path(sys.executable))  # the old release: this checkout
            _wait(lambda: _healthy(daemon.port), 60, "the old daemon never answered")
            old = daemon.process
            switched = time.perf_counter()
            guard.switch(version)
            assert daemon.process is not old and guard.running() == release
            ready = _wait(lambda: _healthy(daemon.port), 60, "the new release's daemon never answered") - switched

            def committed() -> bool:
                return guard.check() == "idle"

            commit = _wait(committed, trial + 120, "never committed") - switched
            state = guard.state()
            ok = state.get("committed") == version and guard.running() == release and daemon.alive()
        except TimeoutError as error:
            log = (root / "daemon.log").read_text(errors="replace").strip().splitlines()[-5:]
            print(f"update switch: FAILED, {error}; the daemons' log ends with:", *log, sep="\n  ")
            return
        finally:
            daemon.stop()
        print(
            f"update bundle of this checkout: {size:.1f} MB of wheels built in {wheels:.1f} s (pip wheel; not counted)"
        )
        print(f"update staging (bundle -> complete venv, self-test, synced): {staging:.1f} s")
        print(f"update switch -> new release's daemon ready (/healthz 200): {ready:.1f} s "
              f"(target <= {TARGET_READY:.0f} s: {ready / TARGET_READY:.2f}) "
              f"[{'ok' if ready <= TARGET_READY else 'MISSED'}]")  # fmt: skip
        print(f"update switch -> committed: {commit:.1f} s with a {trial:.0f} s trial (on a device the trial is "
              f"APTIC_GUARD_TRIAL_SECONDS, 600 s by default: about {commit - trial + 600:.0f} s)"
              f"{'' if ok else ' NOT COMMITTED: ' + json.dumps(state)}")  # fmt: skip


if __name__ == "__main__":
    main()
