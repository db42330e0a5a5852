"""``scripts/setup`` when pip fails: a download cut short by the network (pip's hash check
fails once) is tried again and setup goes on; an install that keeps failing stops setup
with exit 1 and one sentence naming the fix, and no stamp claims an install happened.

pip is stood in for by a ``.venv/bin/python`` that fails its first N ``-m pip install``
calls, so these run without a network and without an engine (``--no-engine``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
# pip's stand-in: fails the first $FAILURES installs, as a cut-short download does.
calls="$(dirname "$0")/../calls"
echo "$*" >>"$calls"
n=$(wc -l <"$calls")
if [ "$n" -le "${FAILURES:-0}" ]; then
  echo "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE." >&2
  exit 1
fi
"""


def checkout_with_fake_pip(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "setup", root / "scripts" / "setup")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "plugins" / "example").mkdir(parents=True)
    (root / "plugins" / "example" / "pyproject.toml").write_text("[project]\nname='x'\n")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return root


def run_setup(root: Path, failures: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["FAILURES"] = str(failures)
    return subprocess.run(
        [str(root / "scripts" / "setup"), "--no-engine"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def installs(root: Path) -> list[str]:
    return (root / ".venv" / "calls").read_text().splitlines()


def test_a_failed_download_is_tried_again_and_setup_goes_on(tmp_path: Path) -> None:
    root = checkout_with_fake_pip(tmp_path)
    proc = run_setup(root, failures=1)
    assert proc.returncode == 0, proc.stderr
    assert "pip could not install -e . (attempt 1 of 3); trying again in 3 s" in proc.stderr
    # The tool twice (one failure, one success), then the plugin once.
    calls = installs(root)
    assert len(calls) == 3 and calls[0] == calls[1] and calls[2].endswith("plugins/example/")
    assert "installing the plugin plugins/example" in proc.stderr
    assert (root / ".venv" / ".lakehouse-installed").exists()


def test_an_install_that_keeps_failing_stops_setup_naming_the_fix(tmp_path: Path) -> None:
    root = checkout_with_fake_pip(tmp_path)
    proc = run_setup(root, failures=99)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "setup: error: pip could not install -e . in 3 attempts (its messages are above);"
        " check the network and the package index pip uses (pip config list), then run"
        " scripts/setup again"
    )
    assert len(installs(root)) == 3  # no plugin was tried after the tool failed
    assert not (root / ".venv" / ".lakehouse-installed").exists()
