"""``backup`` (create, the default task), ``backup.list``, ``backup.verify``, ``backup.prune``,
``backup.schedule`` and ``backup.scheduled-run`` (what a schedule runs, tasks/backup_schedule.py),
``backup.drill`` (tasks/backup_drill.py): the ``backup`` collection."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Collection

from ._base import (
    audited,
    lakehouse_task,
    project_from_flags,
)
from .backup_drill import drill
from .backup_schedule import DEFAULT_AT, schedule, scheduled_run

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    pass


_HELP = {
    "only": "back up only: db, volumes, a service or a volume key (repeatable or comma list)",
    "dest": "directory holding the backups (default: $BACKUP_DIR of the env, else backups/)",
    "tag": "label appended to the backup's id, e.g. before-upgrade",
    "online": "do not stop services while their volumes are archived (the copy may be fuzzy)",
    "target": "compose (default, or $DEPLOY_TARGET) or swarm (docs/SCALING.md)",
}


def _dest(project: Any, dest: str | None, *, must_exist: bool = False) -> Path:
    """The backup directory: ``--dest``, else the environment's default. With ``must_exist``
    (the tasks that read backups), a ``--dest`` that does not exist is an error, not an empty
    listing."""
    from ..data.store import default_dest
    from ..errors import ConfigError

    if not dest:
        return default_dest(project.env)
    path = Path(dest).expanduser().absolute()
    if must_exist and not path.is_dir():
        raise ConfigError(
            f"Backup directory {path} does not exist; check --dest (the default for "
            f"{project.env.name} is {default_dest(project.env)})."
        )
    return path


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
    target: str | None = None,
) -> None:
    """Back up the databases (pg_dump) and named volumes (tar.zst) of an environment."""
    from ..backends import backend_for
    from ..backup_view import manifest_table
    from ..data.backup import create_backup
    from ..ui import Output

    backend = backend_for(target)
    project = project_from_flags(env, rehearsal, env_file)
    out = Output(json_mode=json_)
    manifest = create_backup(
        project,
        dest=_dest(project, dest),
        only=only or None,
        tag=tag,
        online=online,
        out=out,
        backend=backend,
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
    """List the backups of an environment, newest first, and where each lives (local, off-site,
    both), with incomplete leftovers of interrupted runs."""
    from ..backup_view import backups_table, where_label
    from ..data.store import list_backups
    from ..hooks.manager import get_plugin_manager
    from ..ui import Output

    project = project_from_flags(env, False, env_file, strict=False)
    backups, leftovers = list_backups(_dest(project, dest, must_exist=True), project.env.name)
    copies = get_plugin_manager().backup_copies(env=project.env)
    out = Output(json_mode=json_)
    if json_:
        local = {b.id for b in backups}
        by_id: dict[str, list[Any]] = {}
        for copy in copies:
            by_id.setdefault(copy.backup_id, []).append(copy)
        out.json(
            {
                "backups": [
                    {
                        **b.to_dict(),
                        "where": where_label(True, by_id.get(b.id, [])),
                        "copies": [c.to_dict() for c in by_id.get(b.id, [])],
                    }
                    for b in backups
                ],
                "offsite_only": [
                    {
                        "id": ident,
                        "where": where_label(False, held),
                        "copies": [c.to_dict() for c in held],
                    }
                    for ident, held in by_id.items()
                    if ident not in local
                ],
                "incomplete": [str(p) for p in leftovers],
            }
        )
        return
    out.table(backups_table(backups, leftovers, copies))


def _verify_offsite(project: Any, subset: str | None, out: Any, json_: bool) -> None:
    from ..checks import Status
    from ..errors import ExitCode, LakehouseError
    from ..hooks.manager import get_plugin_manager
    from ..ui import Table

    checks = get_plugin_manager().verify_copies(env=project.env, read_data_subset=subset)
    if not checks:
        raise LakehouseError(
            f"No plugin keeps off-site copies of {project.env.name}'s backups; set "
            "OFFSITE_REPOSITORY in its env file (docs/BACKUP.md, off-site copies).",
        )
    if json_:
        out.json({"offsite": [c.to_dict() for c in checks]})
    else:
        out.table(
            Table(
                columns=[
                    ("name", "CHECK"),
                    ("status", "STATUS"),
                    ("detail", "DETAIL"),
                    ("source", "PLUGIN"),
                ],
                rows=[c.to_dict() for c in checks],
                title=f"Off-site copies of {project.env.name}",
            )
        )
    bad = [c for c in checks if c.status == Status.FAIL]
    if bad:
        raise LakehouseError(
            f"{bad[0].detail}; {bad[0].hint}".rstrip("; "), ExitCode.INTEGRITY_FAILED
        )
    if not json_:
        out.success(f"The off-site copies of {project.env.name} are intact.")


@lakehouse_task(
    name="verify",
    positional=["backup_id"],
    optional=["read_data_subset"],
    help={
        "backup_id": "id of the backup (see backup.list) or its directory",
        "deep": "also restore every dump into a throw-away PostgreSQL and read every archive",
        "dest": _HELP["dest"],
        "offsite": "check the off-site repository instead (`restic check`)",
        "read_data_subset": "with --offsite: also read back this slice of the data, e.g. 1/5, "
        "10% or all (a bare flag: all)",
    },
)
def verify(
    c: Any,
    backup_id: str = "",
    env: str | None = None,
    deep: bool = False,
    dest: str | None = None,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    offsite: bool = False,
    read_data_subset: Any = None,
) -> None:
    """Recompute every checksum of a backup (exit 6 naming the artefact on a mismatch), or
    with --offsite check the off-site repository."""
    from ..data.store import find_backup
    from ..data.verify import verify_backup
    from ..errors import LakehouseError
    from ..ui import Output, Table

    project = project_from_flags(env, rehearsal, env_file, strict=False)
    out = Output(json_mode=json_)
    if offsite:
        subset = None
        if read_data_subset is True:
            subset = "all"
        elif read_data_subset not in (None, False, ""):
            subset = str(read_data_subset)
        _verify_offsite(project, subset, out, json_)
        return
    if not backup_id:
        raise LakehouseError(
            "backup.verify needs a backup id (see `invoke backup.list`), or --offsite."
        )
    info = find_backup(_dest(project, dest, must_exist=True), backup_id)
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
    """Delete old backups by BACKUP_KEEP_LAST/_DAILY/_WEEKLY/_MONTHLY and
    BACKUP_RETENTION_DAYS, here and in the off-site copies (never the newest verified one,
    never all of them), and incomplete leftovers of interrupted runs."""
    import dataclasses

    from ..backup_view import prune_table
    from ..retention import prune_by_policy, retention_policy
    from ..ui import Output

    project = project_from_flags(env, False, env_file, strict=False)
    policy = retention_policy(project.env.values)
    if keep_last is not None:
        policy = dataclasses.replace(policy, keep_last=int(keep_last))
    if retention_days is not None:
        policy = dataclasses.replace(policy, max_age_days=int(retention_days))
    result = prune_by_policy(
        _dest(project, dest, must_exist=True), project.env, policy, dry_run=dry_run
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
ns.add_task(schedule, name="schedule")
ns.add_task(scheduled_run, name="scheduled-run")
ns.add_task(drill, name="drill")

__all__ = [
    "DEFAULT_AT",
    "create",
    "drill",
    "list_",
    "ns",
    "prune_",
    "schedule",
    "scheduled_run",
    "verify",
]
