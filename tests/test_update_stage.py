"""Staging a release bundle (updates/stage.py): a real venv and the wheels made here installed in it by a child
process; a release is complete, or gone."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from updates.guard import COMPLETE, Guard
from updates.stage import StageError, build_bundle, enough_space, stage


def wheel(directory: Path, version: str, module_code: str = "OK = True\n") -> Path:
    """A minimal aptic-terminal wheel whose one module is ``fake_release``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"aptic_terminal-{version}-py3-none-any.whl"
    info = f"aptic_terminal-{version}.dist-info"
    files = {
        "fake_release/__init__.py": module_code + "def main():\n    print('fake release running')\n",
        f"{info}/entry_points.txt": "[console_scripts]\nfake-release = fake_release:main\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: aptic-terminal\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


@pytest.fixture
def self_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("updates.stage.SELF_TEST", "import fake_release; assert fake_release.OK")


def test_a_bundle_is_staged_as_a_complete_venv_the_guard_can_switch_to(tmp_path: Path, self_test: None) -> None:
    wheel(tmp_path / "wheels", "0.3.0")
    bundle = build_bundle("0.3.0", tmp_path / "wheels", tmp_path / "bundle.tar")
    releases = tmp_path / "updates" / "releases"
    staged = stage(bundle, releases, "0.3.0")
    assert (staged / COMPLETE).is_file() and (staged / "bin" / "python").exists()
    assert not (staged / "bundle").exists()  # the wheels are not kept twice
    assert not list(staged.glob("lib/python3*/site-packages/pip"))  # nothing in it that is not the release's
    assert list(staged.glob("lib/python3*/site-packages/fake_release/__pycache__/*.pyc"))  # compiled once, here
    # Its commands (the units start bin/aptic-terminal) run the release's own interpreter, wherever called from.
    ran = subprocess.run([staged / "bin" / "fake-release"], capture_output=True, text=True, check=True, cwd="/")
    assert ran.stdout == "fake release running\n"
    guard = Guard(tmp_path / "updates", tmp_path / "factory")
    guard.on_start()
    guard.switch("0.3.0")
    assert guard.running() == staged
    assert stage(bundle, releases, "0.3.0") == staged  # already there: nothing done again


@pytest.mark.parametrize(
    "problem", ["self-test fails", "wrong version", "missing wheel", "corrupt wheel", "escaping path", "a link"]
)
def test_a_bundle_that_cannot_be_staged_leaves_nothing(tmp_path: Path, self_test: None, problem: str) -> None:
    wheels = tmp_path / "wheels"
    if problem == "self-test fails":
        wheel(wheels, "0.3.0", "raise ImportError('broken release')\n")
    elif problem != "missing wheel":
        wheel(wheels, "0.3.0")
    else:
        wheels.mkdir()
    bundle = build_bundle("0.4.0" if problem == "wrong version" else "0.3.0", wheels, tmp_path / "bundle.tar")
    if problem == "corrupt wheel":  # cut short: the signature would refuse it, but not a bad build signed
        (wheels / "tinydb-4.9.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 not a whole zip")
        bundle = build_bundle("0.3.0", wheels, tmp_path / "bundle.tar")
    if problem == "escaping path":
        with tarfile.open(bundle, "a") as tar:
            evil = tarfile.TarInfo("../../outside.txt")
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
    if problem == "a link":  # a symbolic link out of the release, to be written through later
        with tarfile.open(bundle, "a") as tar:
            link = tarfile.TarInfo("wheels/etc")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            tar.addfile(link)
    releases = tmp_path / "releases"
    with pytest.raises(StageError) as refused:
        stage(bundle, releases, "0.3.0")
    assert list(releases.iterdir()) == [] and not (tmp_path / "outside.txt").exists()
    expected = {"self-test fails": "broken release", "wrong version": "says it is 0.4.0",
                "missing wheel": "no aptic-terminal 0.3.0 wheel", "corrupt wheel": "not a zip file",
                "escaping path": "outside", "a link": "wheels/etc"}[problem]  # fmt: skip
    assert expected in str(refused.value)


def test_free_space_is_checked_before_a_download(tmp_path: Path) -> None:
    assert enough_space(tmp_path, 1024)
    assert not enough_space(tmp_path, 10**15)  # a petabyte bundle


def test_a_broken_release_fails_its_self_test_even_beside_a_good_module_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The self-test and the installer run isolated: a module beside the caller (a checkout, a bench) cannot stand in for
    # the release's own code.
    monkeypatch.setattr("updates.stage.SELF_TEST", "import fake_release; assert fake_release.OK")
    wheel(tmp_path / "wheels", "0.3.0", "raise ImportError('broken release')\n")
    bundle = build_bundle("0.3.0", tmp_path / "wheels", tmp_path / "bundle.tar")
    here = tmp_path / "checkout"
    (here / "fake_release").mkdir(parents=True)
    (here / "fake_release" / "__init__.py").write_text("OK = True\n")  # the caller's own copy, not the release's
    monkeypatch.chdir(here)
    with pytest.raises(StageError, match="broken release"):
        stage(bundle, tmp_path / "releases", "0.3.0")
