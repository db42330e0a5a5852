"""The compose backend (the default target): ``backend.py`` the backend itself with the
stop/start waves of backups and restores, ``deploy.py`` the background ``up`` and its wait,
``upgrade.py`` config-hash comparison and one-at-a-time updates."""

from __future__ import annotations

from .backend import ComposeBackend

__all__ = ["ComposeBackend"]
