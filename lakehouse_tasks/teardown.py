"""Tear an environment down: containers and networks always, volumes only when asked.

* Default: the backend removes containers and networks (compose: ``docker compose down
  --remove-orphans``; swarm: ``docker stack rm``); every volume is kept, so the next deploy
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
from typing import TYPE_CHECKING, Any

from .confirm import confirm_destructive
from .errors import RefusedError
from .events import EventKind, Severity
from .hooks.emit import emit
from .hooks.manager import get_plugin_manager
from .outcomes import TeardownResult

if TYPE_CHECKING:
    from .backends.base import Backend
    from .project import Project

#: Environments whose volumes may only be removed with a fresh backup.
BACKUP_REQUIRED_ENVIRONMENTS = frozenset({"prod"})
FRESH_BACKUP = _dt.timedelta(hours=24)


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
        from .data.store import latest_backup

        def latest(name: str) -> Any:
            return latest_backup(name, root=project.env.root)

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
    backend: Backend | None = None,
    remove_volumes: bool = False,
    backup: bool = False,
    yes: bool = False,
    force_without_backup: bool = False,
    is_tty: bool | None = None,
    ask: Callable[[str], str] | None = None,
    notify: Callable[[str], None] | None = None,
) -> TeardownResult:
    """Stop and remove the environment's containers (and volumes when asked) on ``backend``
    (default compose), then verify. The confirmation and the prod fresh-backup rule hold on
    every target."""
    from .backends.compose import ComposeBackend

    env = project.env
    backend = backend or ComposeBackend()
    say = notify or (lambda _text: None)
    backup_note = ""
    if remove_volumes:
        confirm_destructive(
            f"remove every volume (all data) of {env.name}",
            env.name,
            yes=yes,
            is_tty=is_tty,
            ask=ask,
        )
        if backup:
            from .data.backup import create_backup

            manifest = create_backup(project, backend=backend)
            backup_note = f"backup {manifest.id} taken before teardown"
            say(backup_note)
        elif env.name in BACKUP_REQUIRED_ENVIRONMENTS and not force_without_backup:
            backup_note = check_fresh_backup(project)
            say(backup_note)
        elif env.name in BACKUP_REQUIRED_ENVIRONMENTS:
            backup_note = "no backup checked (--force-without-backup)"
            say(backup_note)
    result = backend.remove(project, volumes=remove_volumes, notify=say)
    result.backup = backup_note
    emit(
        project,
        EventKind.TEARDOWN,
        f"teardown of {env.name}: containers removed, "
        + ("volumes removed" if remove_volumes else "volumes kept"),
        severity=Severity.CRITICAL if remove_volumes else None,
        target=backend.name,
        **result.to_dict(),
    )
    get_plugin_manager().post_teardown(project=project, result=result)
    return result


__all__ = ["BACKUP_REQUIRED_ENVIRONMENTS", "TeardownResult", "check_fresh_backup", "teardown"]
