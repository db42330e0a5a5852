"""Networks: find and remove a project's networks by label."""

from __future__ import annotations

from collections.abc import Sequence

from . import executor


def labelled(label: str, value: str) -> list[str]:
    """Networks labelled ``label=value``: one call."""
    out = executor.run(
        [executor.docker_binary(), "network", "ls", "-q", "--filter", f"label={label}={value}"]
    )
    return out.split()


def remove(names: Sequence[str]) -> None:
    """``docker network rm`` of ``names`` (one call)."""
    if names:
        executor.run([executor.docker_binary(), "network", "rm", *names], what="docker network rm")
