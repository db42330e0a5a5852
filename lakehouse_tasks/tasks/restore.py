"""``restore``: put an environment back to a backup (destructive; confirmation required)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._base import audited, lakehouse_task, project_from_flags


@lakehouse_task(
    name="restore",
    iterable=["only"],
    help={
        "backup": "id of the backup to restore (see backup.list) or its directory; one that "
        "is only off-site is fetched back and verified first",
        "only": "restore only: db, volumes, a service or a volume key (repeatable or comma list)",
        "yes": "confirm without asking (required without a terminal)",
        "allow_other_env": "restore a backup taken in another environment",
        "no_safety_backup": "do not back up the current state first",
        "dest": "directory holding the backups (default: $BACKUP_DIR of the env, else backups/)",
        "target": "compose (default, or $DEPLOY_TARGET) or swarm (docs/SCALING.md)",
    },
)
@audited("restore")
def restore(
    c: Any,
    backup: str,
    env: str | None = None,
    only: list[str] | None = None,
    yes: bool = False,
    allow_other_env: bool = False,
    no_safety_backup: bool = False,
    dest: str | None = None,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    target: str | None = None,
) -> None:
    """Restore databases and volumes of an environment from a verified-on-the-spot backup."""
    from ..backends import backend_for
    from ..backup_view import restore_table
    from ..confirm import confirm_destructive
    from ..data.restorable import check_restorable
    from ..data.restore import restore_backup
    from ..data.store import default_dest, find_or_fetch_backup
    from ..ui import Output

    backend = backend_for(target)

    project = project_from_flags(env, rehearsal, env_file)
    dest_path = Path(dest).expanduser().absolute() if dest else default_dest(project.env)
    out = Output(json_mode=json_)
    info = find_or_fetch_backup(project.env, dest_path, backup, out)
    check_restorable(
        project,
        info,
        only=only or None,
        allow_other_env=allow_other_env,
        out=out,
        backend=backend,
    )
    confirm_destructive(
        f"replace the data of {project.env.name} with backup {info.id}",
        project.env.name,
        yes=yes,
    )
    result = restore_backup(
        project,
        info,
        only=only or None,
        allow_other_env=allow_other_env,
        safety_backup=not no_safety_backup,
        dest=dest_path,
        out=out,
        checked=True,
        backend=backend,
    )
    if json_:
        out.json(result.to_dict())
    else:
        out.table(restore_table(result))
        out.success(f"{project.env.name} restored from {info.id}.")
