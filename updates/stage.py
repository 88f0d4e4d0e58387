"""A release bundle, and staging it beside the running release: a complete venv, or nothing.

A bundle is a tar file (a TUF target, so signed before it gets here) holding::

    RELEASE.json        {"version": "0.3.0", "arch": "arm64"}
    wheels/*.whl        the project and every dependency, built for the terminal's machine

:func:`stage` makes ``releases/<version>/`` from it while the old release keeps running: a venv made at its
final path (venvs cannot be moved), the wheels installed with ``pip --no-index`` (nothing from the network),
a self-test run by the new interpreter, every file synced, then ``.complete`` written last. The guard
(updates/guard.py) switches only to a directory with ``.complete``, and removes one without it at the next
start: a power cut while staging leaves nothing that could run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from updates.guard import COMPLETE, fsync_directory, write_atomically

logger = logging.getLogger(__name__)

FREE_FACTOR = 2.5  # the bundle, its unpacked wheels and the installed venv: refuse early on a full card
SELF_TEST = "import terminal.cli, kiosk_ui, provisioning, updates.guard"


class StageError(Exception):
    """The release was not staged; its directory is gone. The message says why (for the log and the report)."""


def build_bundle(version: str, wheels: Path, out: Path, arch: str | None = None) -> Path:
    """Pack ``wheels`` (a directory of .whl files) as release ``version`` for ``arch`` (by default this
    machine's) into the tar file ``out``."""
    from updates.fetch import this_arch

    with tarfile.open(out, "w") as tar:
        info = tarfile.TarInfo("RELEASE.json")
        data = json.dumps({"version": version, "arch": arch or this_arch()}).encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for wheel in sorted(wheels.glob("*.whl")):
            tar.add(wheel, arcname=f"wheels/{wheel.name}")
    return out


def enough_space(directory: Path, bundle_length: int) -> bool:
    """Whether the data partition can take a release of this size (checked before downloading it)."""
    return shutil.disk_usage(directory).free >= FREE_FACTOR * bundle_length


def stage(bundle: Path, releases: Path, version: str, python: str = sys.executable, timeout: float = 900) -> Path:
    """``releases/<version>``, complete; :class:`StageError` (and nothing left) when any step fails."""
    target = releases / version
    if (target / COMPLETE).is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)  # what a cut left
    releases.mkdir(parents=True, exist_ok=True)
    try:
        _unpack(bundle, target / "bundle", version)
        _run([python, "-m", "venv", str(target)], timeout)
        _run([str(target / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--no-index",
              "--no-cache-dir", "--find-links", str(target / "bundle" / "wheels"), f"aptic-terminal=={version}"],
             timeout)  # fmt: skip
        _run([str(target / "bin" / "python"), "-I", "-c", SELF_TEST], timeout)
        shutil.rmtree(target / "bundle")
        _sync_tree(target)
        write_atomically(target / COMPLETE, json.dumps({"version": version}).encode())
        fsync_directory(releases)
    except (StageError, OSError, tarfile.TarError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(target, ignore_errors=True)
        raise StageError(f"release {version} not staged: {error}") from error
    logger.info("Release %s staged in %s", version, target)
    return target


def _unpack(bundle: Path, into: Path, version: str) -> None:
    into.mkdir(parents=True)
    with tarfile.open(bundle) as tar:
        members = tar.getmembers()
        for member in members:  # plain files and directories inside `into`: no link, device, absolute path or ..
            parts = Path(member.name).parts
            if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                raise StageError(f"the bundle holds {member.name!r}, which a release never does")
            member.mode &= 0o755  # no setuid, nothing writable by others
        # Debian 12's Python 3.11.2 predates extractall's filter=: the checks above are what it would do.
        tar.extractall(into, members=members)
    try:
        said = json.loads((into / "RELEASE.json").read_bytes())["version"]
    except (OSError, ValueError, KeyError) as error:
        raise StageError("the bundle has no RELEASE.json") from error
    if said != version:
        raise StageError(f"the bundle says it is {said}, not {version}")


def _run(command: list[str], timeout: float) -> None:
    # Nothing of the caller's Python settings or directory: what is staged must stand on its own (a PYTHONPATH
    # to a checkout once let pip skip the project and the self-test pass on the checkout's code).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd="/")
    if done.returncode != 0:
        raise StageError(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}")


def _sync_tree(root: Path) -> None:
    """Every file and directory of the release on disk before .complete says it is there."""
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_directory(Path(directory))
