"""A power cut that loses unsynced writes, at every instant of an update: switch, commit, rollback, staging.

``kill -9`` (tests/test_update_guard.py) keeps the page cache: every write the guard made survives it, synced
or not, so it can never show a missing fsync. A real power cut loses what was not synced. Three ways to get
one here were weighed:

- a block layer that drops unsynced writes (dm-flakey ``drop_writes``, dm-log-writes on a loop device):
  the most faithful, but this machine's kernel has no device-mapper (no ``/dev/mapper``, none in
  ``/proc/misc``, no modules to load) and a CI container may well not either; not pursued;
- a FUSE file system that keeps unsynced data apart and drops it on demand (LazyFS): a C++ build and FUSE,
  that is new system packages and ``/dev/fuse`` in the container;
- **chosen**: a trace of every file-system mutation the guard and the stager make, in order, and the disks a
  cut may leave at every prefix of it, as ALICE does (Pillai et al., "All File Systems Are Not Created Equal",
  OSDI 2014). It needs nothing but Python, runs in seconds, and enumerates outcomes rather than sampling
  them: every cut instant, every number of name operations a journal may have committed, unsynced data
  lost or kept, and the bare POSIX minimum. tests/powercut.py says what it records and what it models.

After each distinct disk, the next boot runs: the disk is laid out for real, a new :class:`Guard` runs
``on_start()`` (and, for staging, the agent's staging again and the switch), and the issue's invariants are
checked: ``current`` resolves to a complete release (``.complete``, or the factory release); the device runs
the old or the new version and the guard's phase agrees; ``state.json`` is readable or absent; no
``releases/<v>`` without ``.complete`` is left after ``on_start``; a rolled-back version never runs again
and a commit that reached the disk is never undone. The last tests show that the layer can fail: a writer
that renames without an fsync, a guard without its fsyncs and a stager without its tree sync are caught.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.powercut import Disk, Recorder, Trace
from updates import guard as guard_module
from updates.guard import COMPLETE, Guard, write_atomically
from updates.stage import build_bundle, stage

NEW, OLDER = "0.2.0", "0.1.5"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_release(base: Path, version: str) -> Path:
    """A complete release as the agent leaves it (its files, then .complete)."""
    release = base / "releases" / version
    (release / "bin").mkdir(parents=True)
    (release / "bin" / "python").write_text("#!/bin/sh\n")
    (release / "RELEASE.json").write_text(json.dumps({"version": version}))
    (release / COMPLETE).write_text(json.dumps({"version": version}))
    return release


@dataclass
class Device:
    """A terminal's disk in ``root``: the factory release and the updates directory."""

    root: Path
    clock: Clock

    @property
    def factory(self) -> Path:
        return self.root / "factory"

    @property
    def base(self) -> Path:
        return self.root / "updates"

    def guard(self, **kw: object) -> Guard:
        return Guard(self.base, self.factory, max_starts=3, trial_seconds=600, clock=self.clock, **kw)  # type: ignore[arg-type]

    def rel(self, path: str | Path) -> str:
        return os.path.relpath(path, self.root)


@pytest.fixture
def device(tmp_path: Path) -> Device:
    root = tmp_path / "disk"
    (root / "factory").mkdir(parents=True)
    (root / "factory" / "RELEASE.json").write_text('{"version": "0.1.0"}')
    device = Device(root, Clock())
    device.guard().on_start()
    return device


# -- the invariants --------------------------------------------------------------------------------------------


def on_the_disk(device: Device, disk: Disk) -> list[str]:
    """What must hold on the disk the cut left, before anything runs."""
    problems = []
    state = disk.read("updates/state.json")
    if state is not None:
        try:
            json.loads(state)
        except ValueError:
            problems.append(f"state.json is unreadable: {state[:60]!r}")
    target = disk.readlink("updates/current")
    if target is None:
        problems.append("current is gone")
    elif Path(target) != device.factory and disk.kind(f"{device.rel(target)}/{COMPLETE}") != "file":
        problems.append(f"current points at {device.rel(target)}, which is not complete")
    return problems


def after_the_start(device: Device, guard: Guard) -> list[str]:
    """What must hold once the next start's ``on_start`` has run."""
    problems = []
    running = guard.running()
    if running != device.factory and not (running / COMPLETE).is_file():
        problems.append(f"running {device.rel(running)}, which is not complete")
    if guard.state_file.exists():
        try:
            json.loads(guard.state_file.read_bytes())
        except ValueError:
            problems.append("state.json is unreadable after the start")
    for release in guard.releases.iterdir():
        if not (release / COMPLETE).is_file():
            problems.append(f"{device.rel(release)} has no .complete after the start")
    return problems


def next_boots(device: Device, trace: Trace, expect: Callable[[Guard], list[str]],
               on_disk: Callable[[Disk], list[str]] | None = None) -> tuple[int, int, list[str]]:  # fmt: skip
    """Every disk a cut may leave, then the next boot on each distinct one: (disks, distinct, problems)."""
    seen: set[object] = set()
    count, problems = 0, []
    for disk in trace.disks():
        count += 1
        key = tuple(sorted(disk.files().items()))
        if key in seen:
            continue
        seen.add(key)
        found = on_the_disk(device, disk) + (on_disk(disk) if on_disk else [])
        disk.materialize(device.root)
        guard = device.guard()
        guard.on_start()
        found += after_the_start(device, guard) + expect(guard)
        problems += [f"{disk.label}: {problem}" for problem in found]
    return count, len(seen), problems


@contextlib.contextmanager
def recording(device: Device) -> Iterator[Recorder]:
    with Recorder(device.root) as recorder:
        yield recorder


# -- the guard's steps -----------------------------------------------------------------------------------------


def switched(device: Device) -> Guard:
    make_release(device.base, NEW)
    guard = device.guard()
    guard.switch(NEW)
    return guard


def scenario_switch(device: Device) -> tuple[Callable[[], object], Callable[[Guard], list[str]]]:
    make_release(device.base, NEW)
    guard = device.guard()
    new = guard.release_dir(NEW)

    def expect(after: Guard) -> list[str]:
        state, running = after.state(), after.running()
        if running == device.factory and state["phase"] == "idle":
            return []  # undone: the old version runs, the agent asks again
        if running == new and state["phase"] == "trial" and state["to"] == NEW and state["starts"] == 1:
            return []  # done: the new version's first start on trial
        return [f"runs {device.rel(running)} in phase {state}"]

    return lambda: guard.switch(NEW), expect


def scenario_commit(device: Device) -> tuple[Callable[[], object], Callable[[Guard], list[str]]]:
    make_release(device.base, OLDER)  # an older release the commit removes
    guard = switched(device)
    guard.on_start()  # the new release's first start
    device.clock.now += 601  # healthy through its trial
    new = guard.release_dir(NEW)

    def expect(after: Guard) -> list[str]:
        state, running = after.state(), after.running()
        problems = [] if running == new else [f"the commit moved current to {device.rel(running)}"]
        if NEW in state["bad"]:
            problems.append("a healthy release was marked bad")
        committed = state["phase"] == "idle" and state.get("committed") == NEW
        not_yet = state["phase"] == "trial" and state["to"] == NEW and state["starts"] == 2
        if not (committed or not_yet):
            problems.append(f"phase {state}")
        return problems

    return guard.check, expect


def rolled_back(device: Device, after: Guard) -> list[str]:
    state, running = after.state(), after.running()
    problems = [] if running == device.factory else [f"the bad release still runs: {device.rel(running)}"]
    if state["phase"] != "idle" or NEW not in state["bad"]:
        problems.append(f"the rollback was lost: {state}")
    return problems


def scenario_rollback_at_start(device: Device) -> tuple[Callable[[], object], Callable[[Guard], list[str]]]:
    guard = switched(device)
    for _ in range(3):
        guard.on_start()  # three starts that never became healthy: the fourth rolls back
    return guard.on_start, lambda after: rolled_back(device, after)


def scenario_rollback_at_check(device: Device) -> tuple[Callable[[], object], Callable[[Guard], list[str]]]:
    switched(device)
    guard = device.guard(healthy=lambda: False)
    for _ in range(3):
        guard.on_start()
    return guard.check, lambda after: rolled_back(device, after)


SCENARIOS = {
    "switch": scenario_switch,
    "commit": scenario_commit,
    "rollback at the fourth start": scenario_rollback_at_start,
    "rollback by the health check": scenario_rollback_at_check,
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_power_cut_at_any_instant_of_a_guard_step_leaves_the_old_or_the_new_release(
    device: Device, name: str
) -> None:
    step, expect = SCENARIOS[name](device)
    with recording(device) as recorder:
        step()
    trace = recorder.trace
    assert sum(op.kind == "fsync" for op in trace.ops) >= 2, trace.ops  # the step did something durable
    disks, distinct, problems = next_boots(device, trace, expect)
    assert distinct >= 3, f"{disks} disks, {distinct} distinct: the trace did not record the step"
    assert problems == [], "\n".join(problems[:10])


def whole_or_unmarked(device: Device, after: Guard) -> list[str]:
    """Every release that still has .complete after the start still has all its files."""
    problems = []
    for release in after.releases.iterdir():
        held = sorted(p.relative_to(release).as_posix() for p in release.rglob("*"))
        if (release / COMPLETE).is_file() and held != [COMPLETE, "RELEASE.json", "bin", "bin/python"]:
            problems.append(f"{device.rel(release)} has .complete but holds only {held}")
    return problems


COMMIT_RMTREE = (
    "Guard._commit removes older releases with shutil.rmtree in directory order: a cut part way "
    "leaves .complete beside missing files (updates/guard.py, _commit)"
)


def test_a_release_the_commit_removes_never_keeps_complete_without_its_files(device: Device) -> None:
    step, _ = scenario_commit(device)
    with recording(device) as recorder:
        step()
    _, _, problems = next_boots(device, recorder.trace, lambda after: whole_or_unmarked(device, after))
    assert problems == [], "\n".join(problems[:5])


# -- the layer can fail ----------------------------------------------------------------------------------------


def careless_write(path: Path, data: bytes) -> None:
    """Written and renamed without an fsync: the rename may reach the disk before the data."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@pytest.mark.parametrize("writer", [write_atomically, careless_write], ids=["atomic", "careless"])
def test_the_layer_loses_what_a_careless_writer_did_not_sync(tmp_path: Path, writer: Callable) -> None:
    (tmp_path / "state.json").write_bytes(b'{"phase": "idle"}')
    with Recorder(tmp_path) as recorder:
        writer(tmp_path / "state.json", b'{"phase": "trial"}')
    seen = {disk.read("state.json") for disk in recorder.trace.disks()}
    if writer is write_atomically:
        assert seen == {b'{"phase": "idle"}', b'{"phase": "trial"}'}  # the old or the new, whole
    else:
        assert b"" in seen  # the zero-length file a real cut leaves


def test_the_layer_catches_a_guard_without_its_fsyncs(device: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    step, expect = scenario_rollback_at_start(device)
    monkeypatch.setattr(guard_module, "write_atomically", careless_write)
    monkeypatch.setattr(guard_module, "fsync_directory", lambda path: None)
    with recording(device) as recorder:
        step()
    monkeypatch.undo()
    _, _, problems = next_boots(device, recorder.trace, expect)
    assert any("state.json is unreadable" in p for p in problems), problems
    assert any("the bad release still runs" in p or "rollback was lost" in p for p in problems), problems


# -- staging ---------------------------------------------------------------------------------------------------


@dataclass
class Staged:
    device: Device
    bundle: Path
    trace: Trace
    final: dict[str, tuple[str, bytes | str | None]]  # the release as staged, relative to it


VERSION = "0.3.0"
RELEASE = f"updates/releases/{VERSION}"


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Staged:
    """A real bundle staged once, recorded: a venv, the installer, the self-test, the sync, .complete."""
    from tests.test_update_stage import wheel

    tmp = tmp_path_factory.mktemp("powercut-stage")
    root = tmp / "disk"
    (root / "factory").mkdir(parents=True)
    device = Device(root, Clock())
    device.guard().on_start()
    wheel(tmp / "wheels", VERSION)
    bundle = build_bundle(VERSION, tmp / "wheels", tmp / "bundle.tar")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("updates.stage.SELF_TEST", "import fake_release; assert fake_release.OK")
        with recording(device) as recorder:
            stage(bundle, device.base / "releases", VERSION)
    final = recorder.trace.final().files(RELEASE)
    return Staged(device, bundle, recorder.trace, {os.path.relpath(p, RELEASE): v for p, v in final.items()})


def incomplete_but_marked(staged: Staged, disk: Disk) -> list[str]:
    """A .complete on the disk vouches for every file of the release, whole."""
    if disk.kind(f"{RELEASE}/{COMPLETE}") != "file":
        return []
    there = {os.path.relpath(p, RELEASE): v for p, v in disk.files(RELEASE).items()}
    wrong = [p for p, v in staged.final.items() if there.get(p) != v]
    return [f".complete on disk, but {len(wrong)} of {len(staged.final)} entries missing or not whole: "
            f"{wrong[:3]}"] if wrong else []  # fmt: skip


def test_staging_writes_complete_last_whatever_the_cut(staged: Staged) -> None:
    ops = staged.trace.ops
    children = [op.path for op in ops if op.by.startswith("child")]
    assert any("site-packages/fake_release/" in path for path in children), "the installer's files were not recorded"
    assert any(path.endswith("pyvenv.cfg") for path in children), "the venv's files were not recorded"
    assert ops[-1].kind == "fsync" and ops[-1].path == "updates/releases"
    problems, marked = [], 0
    for disk in staged.trace.disks():
        found = incomplete_but_marked(staged, disk)
        marked += disk.kind(f"{RELEASE}/{COMPLETE}") == "file"
        problems += [f"{disk.label}: {p}" for p in found]
    assert marked, "no disk had the release complete: the trace is not the staging's"
    assert problems == [], "\n".join(problems[:5])


def test_staging_without_its_tree_sync_is_caught(staged: Staged) -> None:
    """The same trace without the fsyncs of _sync_tree (what staging would do without it) loses files that
    .complete vouches for."""
    synced_by_tree = {i for i, op in enumerate(staged.trace.ops) if op.kind == "fsync" and op.by == "fsync"
                      and not op.path.endswith((COMPLETE, f".{COMPLETE}.tmp", "releases"))}  # fmt: skip
    careless = staged.trace.without(lambda op: True)
    careless.ops = [op for i, op in enumerate(staged.trace.ops) if i not in synced_by_tree]
    careless._index()
    assert any(incomplete_but_marked(staged, disk) for disk in careless.disks())


def on_start_view(disk: Disk) -> tuple[object, ...]:
    """What the guard's on_start reads: the releases and their .complete, current, state.json."""
    releases = tuple((name, disk.kind(f"updates/releases/{name}/{COMPLETE}")) for name in
                     disk.listdir("updates/releases"))  # fmt: skip
    return releases, disk.readlink("updates/current"), disk.read("updates/state.json")


def test_after_a_cut_while_staging_the_next_start_removes_the_half_release_and_staging_again_works(
    staged: Staged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("updates.stage.SELF_TEST", "import fake_release; assert fake_release.OK")
    device = staged.device
    # The disks that differ in what on_start reads; of each, the first and the fullest one are booted.
    chosen: dict[tuple[object, ...], list[tuple[str, int, int]]] = {}
    for disk in staged.trace.disks():
        picks = chosen.setdefault(on_start_view(disk), [])
        where = (disk.family, disk.cut, disk.names)
        if len(picks) < 2:
            picks.append(where)
        elif (disk.names, disk.cut) > (picks[1][2], picks[1][1]):
            picks[1] = where
    assert len(chosen) >= 3, chosen.keys()  # no release dir, one without .complete, one complete
    wanted = {where for picks in chosen.values() for where in picks}
    problems: list[str] = []
    restaged = 0
    for disk in staged.trace.disks():
        where = (disk.family, disk.cut, disk.names)
        if where not in wanted:
            continue
        wanted.discard(where)
        found = on_the_disk(device, disk) + incomplete_but_marked(staged, disk)
        disk.materialize(device.root)
        guard = device.guard()
        assert guard.on_start() == "idle"
        found += after_the_start(device, guard)
        if guard.running() != device.factory:
            found.append(f"runs {guard.running()}")
        release = guard.release_dir(VERSION)
        if not release.exists() and restaged:
            continue  # staging from nothing again was shown once
        restaged += not release.exists()
        stage(staged.bundle, guard.releases, VERSION)  # the agent's next poll
        guard.switch(VERSION)
        runs = subprocess.run([release / "bin" / "python", "-c", "import fake_release"], check=False)
        if guard.running() != release or runs.returncode != 0:
            found.append("the release staged again does not run")
        problems += [f"{disk.label}: {p}" for p in found]
    assert not wanted
    assert restaged == 1
    assert problems == [], "\n".join(problems[:10])


def test_the_recorder_sees_a_mutation_it_does_not_wrap(tmp_path: Path) -> None:
    """The recorder's own check: a write it cannot see (here by a call it does not wrap) fails loudly."""
    (tmp_path / "f").write_text("a")
    with pytest.raises(AssertionError, match="did not see"), Recorder(tmp_path):
        os.truncate(tmp_path / "f", 0)
