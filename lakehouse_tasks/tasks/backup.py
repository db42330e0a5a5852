"""``backup`` (create, the default task), ``backup.list``, ``backup.verify``, ``backup.prune``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke import Collection

from ..audit import audited
from ..backup import (
    backups_table,
    create_backup,
    default_dest,
    find_backup,
    list_backups,
    manifest_table,
    verify_backup,
)
from ..project import open_project
from ..retention import prune, prune_table, retention_settings
from ..ui import Output, Table
from ._base import default_env, env_files, lakehouse_task, rehearsal_mode

_HELP = {
    "only": "back up only: db, volumes, a service or a volume key (repeatable or comma list)",
    "dest": "directory holding the backups (default: $BACKUP_DIR of the env, else backups/)",
    "tag": "label appended to the backup's id, e.g. before-upgrade",
    "online": "do not stop services while their volumes are archived (the copy may be fuzzy)",
}


def _dest(project: Any, dest: str | None) -> Path:
    return Path(dest).expanduser().absolute() if dest else default_dest(project.env)


@lakehouse_task(name="create", iterable=["only"], help=_HELP)
@audited("backup")
def create(
    c: Any,
    env: str | None = None,
    only: list[str] | None = None,
    dest: str | None = None,
    tag: str | None = None,
    online: bool = False,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Back up the databases (pg_dump) and named volumes (tar.gz) of an environment."""
    project = open_project(
        default_env(env), rehearsal=rehearsal_mode(rehearsal), env_files=env_files(env_file)
    )
    out = Output(json_mode=json_)
    manifest = create_backup(
        project, dest=_dest(project, dest), only=only or None, tag=tag, online=online, out=out
    )
    final = _dest(project, dest) / manifest.id
    if json_:
        out.json({**manifest.to_dict(), "path": str(final)})
    else:
        out.table(manifest_table(manifest, final))
        out.success(f"Backup {manifest.id} complete.")


@lakehouse_task(name="list", help={"dest": _HELP["dest"]})
def list_(
    c: Any,
    env: str | None = None,
    dest: str | None = None,
    json_: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """List the complete backups of an environment, newest first (and incomplete leftovers)."""
    project = open_project(default_env(env), env_files=env_files(env_file), strict=False)
    backups, leftovers = list_backups(_dest(project, dest), project.env.name)
    out = Output(json_mode=json_)
    if json_:
        out.json(
            {
                "backups": [b.to_dict() for b in backups],
                "incomplete": [str(p) for p in leftovers],
            }
        )
        return
    out.table(backups_table(backups, leftovers))


@lakehouse_task(
    name="verify",
    positional=["backup_id"],
    help={
        "backup_id": "id of the backup (see backup.list) or its directory",
        "deep": "also restore every dump into a throw-away PostgreSQL and read every archive",
        "dest": _HELP["dest"],
    },
)
def verify(
    c: Any,
    backup_id: str,
    env: str | None = None,
    deep: bool = False,
    dest: str | None = None,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Recompute every checksum of a backup (exit 6 naming the artefact on a mismatch)."""
    project = open_project(
        default_env(env),
        rehearsal=rehearsal_mode(rehearsal),
        env_files=env_files(env_file),
        strict=False,
    )
    out = Output(json_mode=json_)
    info = find_backup(_dest(project, dest), backup_id)
    result = verify_backup(info, deep=deep, project=project, out=out)
    if json_:
        out.json(result.to_dict())
        return
    columns = [("artefact", "ARTEFACT"), ("kind", "KIND"), ("sha256", "SHA256")]
    if deep:
        columns.append(("deep", "DEEP CHECK"))
    out.table(
        Table(
            columns=columns,
            rows=list[Mapping[str, Any]](result.artefacts),
            title=f"Backup {info.id}",
        )
    )
    out.success(f"Backup {info.id} verified ({'deep' if deep else 'checksums'}).")


@lakehouse_task(
    name="prune",
    help={
        "dry_run": "only list what would be deleted",
        "dest": _HELP["dest"],
        "keep_last": "override BACKUP_KEEP_LAST",
        "retention_days": "override BACKUP_RETENTION_DAYS (0 = keep by count only)",
    },
)
@audited("backup.prune")
def prune_(
    c: Any,
    env: str | None = None,
    dry_run: bool = False,
    dest: str | None = None,
    keep_last: int | None = None,
    retention_days: int | None = None,
    json_: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Delete old backups by BACKUP_KEEP_LAST and BACKUP_RETENTION_DAYS (never the newest
    verified one, never all of them) and incomplete leftovers of interrupted runs."""
    project = open_project(default_env(env), env_files=env_files(env_file), strict=False)
    count, days = retention_settings(project.env.values)
    result = prune(
        _dest(project, dest),
        project.env.name,
        keep_last=count if keep_last is None else int(keep_last),
        max_age_days=days if retention_days is None else int(retention_days),
        dry_run=dry_run,
    )
    out = Output(json_mode=json_)
    if json_:
        out.json(result.to_dict())
    else:
        out.table(prune_table(result))


ns = Collection("backup")
ns.add_task(create, default=True)
ns.add_task(list_, name="list")
ns.add_task(verify)
ns.add_task(prune_, name="prune")
