"""Staging's self-test judges the release's own code, whatever directory or PYTHONPATH the staging runs with.

The self-test (updates/stage.py, ``_run([... "bin/python", "-c", SELF_TEST])``) and pip inherit the caller's
working directory and environment: ``python -c`` puts the working directory first on ``sys.path``, and
``PYTHONPATH`` comes along, so code beside the caller can stand in for the release's. On a device the daemon
runs from ``/`` without ``PYTHONPATH`` (systemd/aptic-terminal.service), so this bites staging run from a
checkout: a test, a bench, a developer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_update_stage import wheel
from updates.stage import StageError, build_bundle, stage


@pytest.mark.xfail(strict=True, reason="updates/stage.py line 72: the self-test runs `python -c` in the caller's "
                   "working directory and environment, so a module there passes it for a broken release")  # fmt: skip
def test_a_broken_release_fails_its_self_test_even_beside_a_good_module_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("updates.stage.SELF_TEST", "import fake_release; assert fake_release.OK")
    wheel(tmp_path / "wheels", "0.3.0", "raise ImportError('broken release')\n")
    bundle = build_bundle("0.3.0", tmp_path / "wheels", tmp_path / "bundle.tar")
    here = tmp_path / "checkout"
    (here / "fake_release").mkdir(parents=True)
    (here / "fake_release" / "__init__.py").write_text("OK = True\n")  # the caller's own copy, not the release's
    monkeypatch.chdir(here)
    with pytest.raises(StageError, match="broken release"):
        stage(bundle, tmp_path / "releases", "0.3.0")
