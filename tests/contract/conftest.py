"""Fixtures of the contract tests: the merged compose model per environment.

Tests that need `docker compose` take the `merged` fixture and are skipped, with the reason,
when the compose v2 CLI is missing; tests on the tracked files alone always run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .stack import ENVIRONMENTS, compose_available, merged_config


@pytest.fixture(scope="session")
def compose_cli() -> None:
    if not compose_available():
        pytest.skip("`docker compose` (compose v2 CLI) is not installed: cannot merge the stack")


@pytest.fixture
def merged(compose_cli: None) -> Callable[..., dict[str, Any]]:
    """`merged(env, profiles=())` -> the merged compose model of that environment."""
    return merged_config


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    return request.param
