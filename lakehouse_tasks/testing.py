"""pytest helpers for lakehouse-ops and for authors of its plugins (a pytest11 plugin).

Fixtures defined here are available to any test suite that installs lakehouse-ops.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def lakehouse_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throw-away project directory (``compose/`` + ``env/``) with LAKEHOUSE_HOME set to it.

    Tests write the env files and compose files they need into it.
    """
    (tmp_path / "compose").mkdir()
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / ".lakehouse"))
    yield tmp_path


def write_env(root: Path, name: str, values: dict[str, Any], *, local: bool = False) -> Path:
    """Write ``env/<name>.env`` (or ``.local.env``) from a mapping."""
    path = root / "env" / (f"{name}.local.env" if local else f"{name}.env")
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path
