"""The public plugin API: what a lakehouse-ops plugin imports, kept stable across releases.

A plugin writes ``from lakehouse_tasks.plugin import hookimpl, AccessURL, Check, ...`` and
nothing else of the package; the modules behind these names may move (the previous layout's
paths, such as ``lakehouse_tasks.plugins`` or ``lakehouse_tasks.docker``, are kept for one
release with a deprecation warning, see CHANGELOG.md). Both shipped plugins
(``plugins/lakehouse-alerts``, ``plugins/lakehouse-monitoring``) use only this module.

What is here:

* the ``hookimpl`` marker, and the values hooks return (:class:`AccessURL`,
  :class:`ExtraArtefact`, :class:`Check` with :func:`passed` / :func:`warned` / :func:`failed`);
* the values hooks receive (:class:`Event` with :class:`EventKind` and :class:`Severity`,
  :class:`Environment`, :class:`Project`) and :class:`LakehouseError` to stop a task cleanly;
* for backup plugins (lakehouse-offsite): :class:`BackupCopy` (what
  ``lakehouse_backup_copies`` returns), :func:`emit_event`, :func:`default_backup_dir`,
  :func:`check_free_space` and :func:`select_for_pruning` (the retention rules of the host);
* helpers the shipped plugins share with the core: :func:`state_dir`, :func:`project_root`,
  :func:`load_environment`, :func:`public_host`, :class:`PublishedPort`, :func:`port_is_free`,
  :func:`running_port_bindings`, :func:`serve_scrape_dir` (where ``invoke serve`` keeps the
  token Prometheus scrapes ``/metrics`` with).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import hookimpl
from .checks import Check, Status, failed, passed, warned
from .environment import Environment, load_environment
from .errors import ExitCode, LakehouseError
from .events import Event, EventKind, Severity
from .hooks.builtin.access_urls import public_host
from .hooks.emit import emit_event
from .hooks.types import AccessURL, BackupCopy, ExtraArtefact
from .paths import project_root, state_dir
from .stack import PublishedPort

if TYPE_CHECKING:
    from .project import Project


def serve_scrape_dir(root: Any) -> Any:
    """The directory holding ``invoke serve``'s scrape token (created 0700, owned by the
    Prometheus image's user when run as root): what the monitoring plugin mounts."""
    from .serve.auth import scrape_dir

    return scrape_dir(root)


def port_is_free(port: PublishedPort) -> tuple[bool, str]:
    """Whether ``port`` can be bound on the host, and why not (``"in use"``, ``"needs
    privileges ..."``): the bind test of the core preflight."""
    from .preflight import port_is_free as bind_test

    return bind_test(port)


def default_backup_dir(env: Environment) -> Path:
    """Where the environment's backups live (``BACKUP_DIR``, else ``<project>/backups``)."""
    from .data.store import default_dest

    return default_dest(env)


def check_free_space(dest: Path, needed: int, *, what: str = "backup") -> None:
    """Refuse (exit 7, one sentence) when ``dest`` has less than ``needed`` bytes (plus the
    core's margin) free: the core's own check before a backup or restore."""
    from .data.store import check_free_space as check

    check(dest, needed, what=what)


def select_for_pruning(
    backups: Any, keep_last: int, max_age_days: int, now: Any, **rules: Any
) -> Any:
    """The host's retention rules as a pure function: ``(keep, delete)`` of anything with
    ``time`` and ``is_verified`` (:func:`lakehouse_tasks.retention.select_for_pruning`)."""
    from .retention import select_for_pruning as select

    return select(backups, keep_last, max_age_days, now, **rules)


def running_port_bindings(project: Project) -> list[dict[str, Any]]:
    """The published ports of every running container on the project's engine (one
    ``docker ps``): rows with ``container``, ``project`` (compose project label or ""),
    ``host_ip``, ``port`` and ``protocol``."""
    from .engine.containers import running_port_bindings as bindings

    return bindings(project.compose.docker_cmd)


def __getattr__(name: str) -> Any:
    # Project is imported on first use: it pulls in the engine layer, which a plugin that only
    # reads events never needs.
    if name == "Project":
        from .project import Project

        return Project
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccessURL",
    "BackupCopy",
    "Check",
    "Environment",
    "Event",
    "EventKind",
    "ExitCode",
    "ExtraArtefact",
    "LakehouseError",
    "Project",
    "PublishedPort",
    "Severity",
    "Status",
    "check_free_space",
    "default_backup_dir",
    "emit_event",
    "failed",
    "hookimpl",
    "load_environment",
    "passed",
    "port_is_free",
    "project_root",
    "public_host",
    "running_port_bindings",
    "select_for_pruning",
    "serve_scrape_dir",
    "state_dir",
    "warned",
]
