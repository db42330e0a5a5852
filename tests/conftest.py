"""Shared test configuration. Engine tests carry ``@pytest.mark.engine``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
