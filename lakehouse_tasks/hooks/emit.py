"""The one way to send an event to the plugins' ``lakehouse_event``.

Every event about a project goes through :func:`emit`, which always hands the plugins the
resolved environment (``project.env``, with the ``--env-file`` layers the task used), so a
plugin such as lakehouse-alerts never has to reload the environment by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import Event, EventKind, Severity
from .manager import get_plugin_manager

if TYPE_CHECKING:
    from ..environment import Environment
    from ..project import Project


def emit(
    project: Project,
    kind: EventKind,
    message: str,
    *,
    service: str | None = None,
    severity: Severity | None = None,
    **details: Any,
) -> Event:
    """Give an event about ``project`` to every plugin and return it."""
    event = Event(
        kind=kind,
        environment=project.env.name,
        message=message,
        service=service,
        severity=severity,
        details=details,
    )
    get_plugin_manager().emit(event, env=project.env)
    return event


def emit_event(event: Event, env: Environment | None) -> None:
    """Give an already built ``event`` to every plugin (``env`` is None only when the producer
    had no environment loaded, e.g. a scheduled run that failed before loading it)."""
    get_plugin_manager().emit(event, env=env)


__all__ = ["emit", "emit_event"]
