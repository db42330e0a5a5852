"""Deployment targets: one object per target, chosen once and handed down.

``backend_for(flag)`` resolves ``--target``, else ``$DEPLOY_TARGET``, else compose, into a
:class:`~lakehouse_tasks.backends.base.Backend`; every task calls it once and passes the object
on, so no module outside this package compares target names (modelled on tutor's
``context.job_runner()`` and tox's ``ToxEnvRegister.runner(name)``). The registry maps names
to dotted paths and imports a backend only when it is chosen: ``invoke --list`` stays cheap.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Backend

#: Target name -> "module:class" of its backend.
BACKENDS: dict[str, str] = {
    "compose": "lakehouse_tasks.backends.compose:ComposeBackend",
    "swarm": "lakehouse_tasks.backends.swarm:SwarmBackend",
}
DEFAULT_TARGET = "compose"
TARGET_VARIABLE = "DEPLOY_TARGET"


def backend_named(name: str) -> Backend:
    """The backend registered as ``name`` (exit 2 naming the known targets otherwise)."""
    key = (name or DEFAULT_TARGET).strip().lower()
    path = BACKENDS.get(key)
    if path is None:
        known = " or ".join(f"--target {n}" for n in BACKENDS)
        raise ConfigError(
            f"Unknown deploy target {name!r}; use {known} (or set {TARGET_VARIABLE})."
        )
    module, _, cls = path.partition(":")
    backend: Backend = getattr(importlib.import_module(module), cls)()
    return backend


def backend_of_record(target: str | None, current: Backend | None = None) -> Backend:
    """The backend a state file was written for (``"target"``; none means compose, as in
    files from before the field existed): ``current`` when it is that target."""
    name = (target or DEFAULT_TARGET).strip().lower()
    if current is not None and current.name == name:
        return current
    return backend_named(name)


def backend_for(flag: str | None = None, environ: Mapping[str, str] | None = None) -> Backend:
    """``--target``, else ``$DEPLOY_TARGET``, else compose, as a backend object."""
    environ = os.environ if environ is None else environ
    raw = flag if flag not in (None, "") else environ.get(TARGET_VARIABLE, "")
    return backend_named(raw or DEFAULT_TARGET)


__all__ = ["BACKENDS", "DEFAULT_TARGET", "backend_for", "backend_named", "backend_of_record"]
