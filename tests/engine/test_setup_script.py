"""``scripts/setup`` without arguments, twice, in a fresh copy of the checkout: the first run
installs everything the main job needs and says so, the second only checks (exit 0 both
times). It ensures the engine through scripts/docker-engine, hence the engine marker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def fresh_checkout(tmp_path: Path) -> Path:
    """The tracked files of this checkout (as they are now) in a new directory, with no
    .venv: what a fresh clone holds."""
    root = tmp_path / "clone"
    files = (
        subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = REPO / name
        if not source.exists():
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        target.chmod(source.stat().st_mode)
    return root


def setup(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return subprocess.run(
        [str(root / "scripts" / "setup"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_setup_without_arguments_twice_in_a_fresh_clone(tmp_path: Path) -> None:
    root = fresh_checkout(tmp_path)
    assert not (root / ".venv").exists()

    first = setup(root)
    assert first.returncode == 0, first.stderr
    assert "setup: creating the virtualenv .venv" in first.stderr
    assert "setup: installing lakehouse-ops into .venv" in first.stderr
    assert "docker-engine:" in first.stderr  # the engine was ensured, and it says how
    for tool in ("invoke", "lakehouse"):
        assert (root / ".venv" / "bin" / tool).exists()

    second = setup(root)
    assert second.returncode == 0, second.stderr
    assert "already has lakehouse-ops" in second.stderr
    assert "installing" not in second.stderr

    # What the README's first command runs next works from this clone: the project's
    # invoke, with its command-line contract (a parser error exits 2).
    listing = subprocess.run(
        [str(root / ".venv" / "bin" / "invoke"), "--list"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0 and "deploy" in listing.stdout, listing.stderr
    typo = subprocess.run(
        [str(root / ".venv" / "bin" / "invoke"), "deploy", "--evn", "dev"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert typo.returncode == 2 and "--env" in typo.stderr


def test_setup_refuses_an_unknown_argument(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(REPO / "scripts" / "setup"), "--tset"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "unknown argument --tset" in proc.stderr
