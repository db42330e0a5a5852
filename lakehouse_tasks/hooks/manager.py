"""The plugin manager and its typed facade (modelled on tox 4's ``plugin/manager.py``).

The rest of the code never touches ``pm.hook``: it calls :func:`get_plugin_manager` and one
method per hook of :class:`LakehousePlugins`, which forwards keyword arguments, checks what
plugins return and applies the failure policy.

Where plugins come from, in registration order:

1. **built-in** plugins from :mod:`lakehouse_tasks.hooks.builtin` (the host's own behaviour,
   registered like any plugin so a third party can block or extend it);
2. **entry point** plugins: every entry point in the ``lakehouse_tasks`` group of the
   installed distributions;
3. **local** plugins registered in-process with :meth:`LakehousePlugins.register` (tests, the
   ``lakehouse_plugins`` pytest fixture, embedding code).

Environment switches:

* ``LAKEHOUSE_DISABLE_PLUGINS=name1,name2``: block plugins by name (built-ins included);
* ``LAKEHOUSE_TRACE_HOOKS=1``: trace every hook call and its result to stderr (pluggy tracing);
* ``LAKEHOUSE_STRICT_PLUGINS=1``: a plugin that cannot be loaded is fatal (exit 2).

Failure policy:

* a plugin that fails to import or to register (unknown hook, wrong argument name, wrapper
  implementation) is reported on stderr by name and skipped; in strict mode it is a
  ``LakehouseError`` (exit 2);
* an exception in a **gating** hook (``preflight_checks``, ``pre_deploy``) and in the contributing
  hooks whose result must be exact (``compose_files``, ``backup_artefacts``) stops the task
  with a ``LakehouseError`` naming the plugin and the exception, without a traceback;
* an exception in an **observer** hook (``event``, ``post_deploy``, ``post_teardown``,
  ``health_snapshot``, ``post_backup``, and ``access_urls``) is reported on stderr with the
  plugin's name; the task continues and the other plugins still get the call.

To apply that policy per plugin, each implementation is called on its own (through pluggy's
``subset_hook_caller``, so tracing still sees every call), in pluggy's usual order:
``tryfirst`` first, then last-registered first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import Check
from ..errors import ExitCode, LakehouseError
from .registry import (
    ENTRY_POINT_GROUP,
    ENV_DISABLE,
    FACADE_METHODS,
    PluginRegistry,
)
from .types import AccessURL, BackupCopy, ExtraArtefact, PluginInfo

if TYPE_CHECKING:
    from ..environment import Environment
    from ..events import Event
    from ..project import Project


class LakehousePlugins(PluginRegistry):
    """The typed facade over pluggy: one method per hook, with the failure policy applied.

    Build it with :func:`get_plugin_manager` (cached per process); build a private one with
    ``LakehousePlugins(builtins=..., entry_points=...)`` (tests).
    """

    def compose_files(self, *, env: Environment, rehearsal: bool = False) -> list[Path]:
        """Compose files contributed by plugins, each checked to exist."""
        hook = "lakehouse_compose_files"
        files: list[Path] = []
        for name, value in self._gate(hook, ExitCode.BAD_INPUT, env=env, rehearsal=rehearsal):
            for item in self._as_list(name, hook, value, ExitCode.BAD_INPUT):
                path = Path(item).expanduser()
                if not path.is_absolute():
                    path = env.root / path
                if not path.is_file():
                    raise LakehouseError(
                        f"Plugin {name!r} added compose file {path}, which does not exist; "
                        f"reinstall the plugin or disable it with {ENV_DISABLE}={name}.",
                        ExitCode.BAD_INPUT,
                    )
                files.append(path)
        return files

    def access_urls(self, *, env: Environment) -> list[AccessURL]:
        """Every web interface's URL; a failing plugin's URLs are left out (with a warning)."""
        urls: list[AccessURL] = []
        for name, value in self._observe("lakehouse_access_urls", env=env):
            for item in value or []:
                if isinstance(item, AccessURL):
                    urls.append(item)
                else:
                    self._warn(
                        f"plugin {name!r} returned {item!r} from lakehouse_access_urls, not an AccessURL (ignored)"
                    )
        return urls

    # ---- deploy hooks -------------------------------------------------------------------
    def preflight_checks(self, *, project: Project) -> list[Check]:
        """Plugin checks, each with ``source`` set to the plugin's name."""
        hook = "lakehouse_preflight_checks"
        checks: list[Check] = []
        for name, value in self._gate(hook, ExitCode.PREFLIGHT_FAILED, project=project):
            for item in self._as_list(name, hook, value, ExitCode.PREFLIGHT_FAILED):
                if not isinstance(item, Check):
                    raise LakehouseError(
                        f"Plugin {name!r} returned {item!r} from {hook}, not a Check; "
                        "fix the plugin.",
                        ExitCode.PREFLIGHT_FAILED,
                    )
                checks.append(dataclasses.replace(item, source=name))
        return checks

    def pre_deploy(self, *, project: Project, services: Sequence[str]) -> None:
        """Ask every plugin whether the deploy may go ahead; raise on the first veto."""
        hook = "lakehouse_pre_deploy"
        for name, reason in self._gate(
            hook, ExitCode.DEPLOY_FAILED, project=project, services=list(services)
        ):
            if reason is not None:
                raise LakehouseError(
                    f"Deploy vetoed by plugin {name!r}: {str(reason).rstrip('.')}.",
                    ExitCode.DEPLOY_FAILED,
                )

    def post_deploy(self, *, project: Project, result: Any) -> None:
        self._observe("lakehouse_post_deploy", project=project, result=result)

    def post_teardown(self, *, project: Project, result: Any) -> None:
        self._observe("lakehouse_post_teardown", project=project, result=result)

    # ---- runtime hooks ------------------------------------------------------------------
    def health_snapshot(self, *, project: Project, snapshot: Any) -> None:
        self._observe("lakehouse_health_snapshot", project=project, snapshot=snapshot)

    def emit(self, event: Event, *, env: Environment | None = None) -> None:
        """Give ``event`` (about ``env``, when the producer has it) to every plugin's
        ``lakehouse_event``."""
        self._observe("lakehouse_event", event=event, env=env)

    # ---- backup hooks -------------------------------------------------------------------
    def backup_artefacts(self, *, project: Project, workdir: Path) -> list[ExtraArtefact]:
        """Extra artefacts, each checked to be a file inside ``workdir``."""
        hook = "lakehouse_backup_artefacts"
        code = ExitCode.INTEGRITY_FAILED
        root = Path(workdir).resolve()
        artefacts: list[ExtraArtefact] = []
        for name, value in self._gate(hook, code, project=project, workdir=Path(workdir)):
            for item in self._as_list(name, hook, value, code):
                if not isinstance(item, ExtraArtefact):
                    raise LakehouseError(
                        f"Plugin {name!r} returned {item!r} from {hook}, not an ExtraArtefact; "
                        "fix the plugin.",
                        code,
                    )
                path = Path(item.path)
                path = (path if path.is_absolute() else root / path).resolve()
                if not path.is_file() or not path.is_relative_to(root):
                    raise LakehouseError(
                        f"Plugin {name!r} contributed backup artefact {item.name!r} at {path}, "
                        f"which is not a file inside {root}; fix the plugin or disable it "
                        f"with {ENV_DISABLE}={name}.",
                        code,
                    )
                artefacts.append(dataclasses.replace(item, path=path))
        return artefacts

    def post_backup(self, *, project: Project, manifest_path: Path) -> None:
        self._observe("lakehouse_post_backup", project=project, manifest_path=Path(manifest_path))

    # ---- backup copy hooks -------------------------------------------------------------
    def backup_copies(self, *, env: Environment) -> list[BackupCopy]:
        """Every copy plugins keep of ``env``'s backups; a failing plugin's are left out."""
        copies: list[BackupCopy] = []
        for name, value in self._observe("lakehouse_backup_copies", env=env):
            for item in value or []:
                if isinstance(item, BackupCopy):
                    copies.append(dataclasses.replace(item, plugin=item.plugin or name))
                else:
                    self._warn(
                        f"plugin {name!r} returned {item!r} from lakehouse_backup_copies, "
                        "not a BackupCopy (ignored)"
                    )
        return copies

    def fetch_backup(self, *, env: Environment, backup_id: str, dest: Path) -> Path | None:
        """The directory a plugin fetched ``backup_id`` into, or None when none has a copy."""
        hook = "lakehouse_fetch_backup"
        for name, value in self._gate(
            hook, ExitCode.INTEGRITY_FAILED, env=env, backup_id=backup_id, dest=Path(dest)
        ):
            if value is None:
                continue
            path = Path(value)
            if not (path / "manifest.json").is_file():
                raise LakehouseError(
                    f"Plugin {name!r} fetched backup {backup_id} into {path}, which holds no "
                    "manifest.json; fix the plugin.",
                    ExitCode.INTEGRITY_FAILED,
                )
            return path
        return None

    def verify_copies(self, *, env: Environment, read_data_subset: str | None) -> list[Check]:
        """Every plugin's integrity checks of its copies, ``source`` set to the plugin."""
        hook = "lakehouse_verify_copies"
        code = ExitCode.INTEGRITY_FAILED
        checks: list[Check] = []
        for name, value in self._gate(hook, code, env=env, read_data_subset=read_data_subset):
            for item in self._as_list(name, hook, value, code):
                if not isinstance(item, Check):
                    raise LakehouseError(
                        f"Plugin {name!r} returned {item!r} from {hook}, not a Check; "
                        "fix the plugin.",
                        code,
                    )
                checks.append(dataclasses.replace(item, source=name))
        return checks

    def post_prune(self, *, env: Environment, result: Any) -> None:
        self._observe("lakehouse_post_prune", env=env, result=result)

    def status_checks(self, *, env: Environment) -> list[Check]:
        """Plugins' extra health lines; a failing plugin's are left out (with a warning)."""
        checks: list[Check] = []
        for name, value in self._observe("lakehouse_status_checks", env=env):
            for item in value or []:
                if isinstance(item, Check):
                    checks.append(dataclasses.replace(item, source=name))
                else:
                    self._warn(
                        f"plugin {name!r} returned {item!r} from lakehouse_status_checks, "
                        "not a Check (ignored)"
                    )
        return checks


# ---- the per-process manager ----------------------------------------------------------------
_MANAGER: LakehousePlugins | None = None


def get_plugin_manager(*, reload: bool = False) -> LakehousePlugins:
    """The process's plugin manager: built-ins and entry points, loaded once."""
    global _MANAGER
    if _MANAGER is None or reload:
        _MANAGER = LakehousePlugins()
    return _MANAGER


def set_plugin_manager(manager: LakehousePlugins | None) -> None:
    """Install ``manager`` as the process's manager (None: rebuild on next use). For tests."""
    global _MANAGER
    _MANAGER = manager


__all__ = [
    "ENTRY_POINT_GROUP",
    "FACADE_METHODS",
    "AccessURL",
    "BackupCopy",
    "ExtraArtefact",
    "LakehousePlugins",
    "PluginInfo",
    "get_plugin_manager",
    "set_plugin_manager",
]
