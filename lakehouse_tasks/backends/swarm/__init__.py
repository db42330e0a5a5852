"""The swarm backend: the same stack as a ``docker stack`` (docs/SCALING.md)."""

from __future__ import annotations

from .backend import SwarmBackend

__all__ = ["SwarmBackend"]
