"""Tear an environment down: containers and networks always, volumes only when asked.

* Default: ``docker compose down --remove-orphans``; every volume is kept, so the next deploy
  finds its data again.
* ``remove_volumes``: adds ``--volumes`` after a confirmation (:mod:`lakehouse_tasks.confirm`);
  in prod only with a backup of the environment younger than 24 hours, unless ``backup``
  (take one first) or ``force_without_backup``.

Afterwards the engine is asked what is left: no container of the project may remain, and
each volume is reported kept or removed as asked.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .confirm import confirm_destructive
from .docker import container_states, project_volumes
from .errors import ExitCode, LakehouseError, RefusedError
from .events import EventKind, Severity
from .hooks.emit import emit
from .hooks.manager import get_plugin_manager
from .project import Project

#: Environments whose volumes may only be removed with a fresh backup.
BACKUP_REQUIRED_ENVIRONMENTS = frozenset({"prod"})
FRESH_BACKUP = _dt.timedelta(hours=24)


@dataclass
class TeardownResult:
    """What teardown did and what the engine shows afterwards."""

    environment: str
    project_name: str
    remove_volumes: bool
    volumes_before: list[str] = field(default_factory=list)
    volumes_after: list[str] = field(default_factory=list)
    containers_left: list[str] = field(default_factory=list)
    backup: str = ""

    @property
    def volumes_removed(self) -> list[str]:
        return [v for v in self.volumes_before if v not in self.volumes_after]

    @property
    def volumes_kept(self) -> list[str]:
        return [v for v in self.volumes_before if v in self.volumes_after]

    @property
    def ok(self) -> bool:
        """No container left; volumes gone when asked, all kept otherwise."""
        if self.containers_left:
            return False
        if self.remove_volumes:
            return not self.volumes_after
        return self.volumes_kept == self.volumes_before

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "project_name": self.project_name,
            "remove_volumes": self.remove_volumes,
            "ok": self.ok,
            "containers_left": list(self.containers_left),
            "volumes_kept": self.volumes_kept,
            "volumes_removed": self.volumes_removed,
            "backup": self.backup,
        }


def _backup_module() -> Any | None:
    try:
        from . import backup
    except ImportError:
        return None
    return backup


def check_fresh_backup(
    project: Project,
    *,
    now: _dt.datetime | None = None,
    latest: Callable[[str], Any] | None = None,
) -> str:
    """Describe the fresh backup of a prod environment, or raise RefusedError (exit 7)."""
    env = project.env.name
    fix = "pass --backup to take one first, or --force-without-backup to go on without"
    if latest is None:
        module = _backup_module()
        if module is None:
            raise RefusedError(
                f"Refusing to remove the volumes of {env}: the backup module is unavailable, "
                f"so no fresh backup can be confirmed; {fix}."
            )

        def latest(name: str) -> Any:
            return module.latest_backup(name, root=project.env.root)

    info = latest(env)
    now = now or _dt.datetime.now(_dt.UTC)
    when = getattr(info, "time", None) if info is not None else None
    if when is None:
        raise RefusedError(f"Refusing to remove the volumes of {env}: it has no backup; {fix}.")
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    age = now - when
    if age > FRESH_BACKUP:
        hours = age.total_seconds() / 3600
        raise RefusedError(
            f"Refusing to remove the volumes of {env}: its newest backup {info.id} is "
            f"{hours:.0f} h old (older than 24 h); {fix}."
        )
    return f"fresh backup {info.id} from {when.isoformat()}"


def teardown(
    project: Project,
    *,
    remove_volumes: bool = False,
    backup: bool = False,
    yes: bool = False,
    force_without_backup: bool = False,
    is_tty: bool | None = None,
    ask: Callable[[str], str] | None = None,
    notify: Callable[[str], None] | None = None,
) -> TeardownResult:
    """Stop and remove the environment's containers (and volumes when asked), then verify."""
    env = project.env
    compose = project.compose
    say = notify or (lambda _text: None)
    result = TeardownResult(
        environment=env.name, project_name=compose.project_name, remove_volumes=remove_volumes
    )
    if remove_volumes:
        confirm_destructive(
            f"remove every volume (all data) of {env.name}",
            env.name,
            yes=yes,
            is_tty=is_tty,
            ask=ask,
        )
        if backup:
            module = _backup_module()
            if module is None:
                raise LakehouseError(
                    "--backup needs the backup module, which is unavailable; take a backup "
                    "another way and pass --force-without-backup.",
                    ExitCode.REFUSED,
                )
            manifest = module.create_backup(project)
            result.backup = f"backup {manifest.id} taken before teardown"
            say(result.backup)
        elif env.name in BACKUP_REQUIRED_ENVIRONMENTS and not force_without_backup:
            result.backup = check_fresh_backup(project)
            say(result.backup)
        elif env.name in BACKUP_REQUIRED_ENVIRONMENTS:
            result.backup = "no backup checked (--force-without-backup)"
            say(result.backup)
    result.volumes_before = project_volumes(compose)
    args = ["down", "--remove-orphans"]
    if remove_volumes:
        args.append("--volumes")
    say(f"running: docker compose {' '.join(args)}")
    compose.down(remove_orphans=True, volumes=remove_volumes)
    result.containers_left = [c.name for c in container_states(compose)]
    result.volumes_after = project_volumes(compose)
    emit(
        project,
        EventKind.TEARDOWN,
        f"teardown of {env.name}: containers removed, "
        + ("volumes removed" if remove_volumes else "volumes kept"),
        severity=Severity.CRITICAL if remove_volumes else None,
        **result.to_dict(),
    )
    get_plugin_manager().post_teardown(project=project, result=result)
    return result
