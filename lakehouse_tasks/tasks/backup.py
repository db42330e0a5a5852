"""``backup`` (create, the default task), ``backup.list``, ``backup.verify``, ``backup.prune``,
``backup.schedule`` and ``backup.scheduled-run`` (what a schedule runs)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Collection

from ._base import (
    audited,
    default_env,
    env_files,
    lakehouse_task,
    project_from_flags,
    rehearsal_mode,
)

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..ui import Table

#: ``lakehouse_tasks.schedule.DEFAULT_AT``, repeated so the flag's default and help need no
#: import of the schedule module (tests/unit/test_startup.py keeps the two equal).
DEFAULT_AT = "02:00"

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
    from ..backup import default_dest
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
    """Back up the databases (pg_dump) and named volumes (tar.gz) of an environment."""
    from ..backends import backend_for
    from ..backup import create_backup, manifest_table
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
    """List the complete backups of an environment, newest first (and incomplete leftovers)."""
    from ..backup import backups_table, list_backups
    from ..ui import Output

    project = project_from_flags(env, False, env_file, strict=False)
    backups, leftovers = list_backups(_dest(project, dest, must_exist=True), project.env.name)
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
    from ..backup import find_backup
    from ..ui import Output, Table
    from ..verify import verify_backup

    project = project_from_flags(env, rehearsal, env_file, strict=False)
    out = Output(json_mode=json_)
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
    """Delete old backups by BACKUP_KEEP_LAST and BACKUP_RETENTION_DAYS (never the newest
    verified one, never all of them) and incomplete leftovers of interrupted runs."""
    from ..retention import prune, prune_table, retention_settings
    from ..ui import Output

    project = project_from_flags(env, False, env_file, strict=False)
    count, days = retention_settings(project.env.values)
    result = prune(
        _dest(project, dest, must_exist=True),
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


def _prune_by_settings(project: Any) -> Any:
    from ..backup import default_dest
    from ..retention import prune, retention_settings

    count, days = retention_settings(project.env.values)
    return prune(default_dest(project.env), project.env.name, keep_last=count, max_age_days=days)


def _schedules_table(rows: list[dict[str, Any]]) -> Table:
    from ..ui import Table

    return Table(
        columns=[
            ("environment", "ENV"),
            ("project", "PROJECT"),
            ("platform", "VIA"),
            ("at", "AT"),
            ("last_run", "LAST RUN"),
            ("location", "WHERE"),
        ],
        rows=rows,
        title="Scheduled backups",
    )


@lakehouse_task(
    name="schedule",
    help={
        "at": f"time of day of the daily run, HH:MM on the host's clock (default {DEFAULT_AT})",
        "remove": "remove the environment's schedule instead of installing it",
        "list_": "list the schedules installed on this host (systemd timers and cron entries)",
        "force": "schedule even an environment whose BACKUP_SCHEDULE is manual (dev)",
        "via": "auto (default: systemd when it is PID 1, else cron), systemd or cron",
    },
)
@audited("backup.schedule")
def schedule(
    c: Any,
    env: str | None = None,
    at: str = DEFAULT_AT,
    remove: bool = False,
    list_: bool = False,
    force: bool = False,
    via: str = "auto",
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Install (or --remove, or --list) the daily backup-then-prune run of an environment."""
    from ..environment import load_environment
    from ..paths import project_root, state_dir
    from ..retention import retention_settings
    from ..schedule import (
        ScheduledRun,
        build_spec,
        check_schedule_wanted,
        choose_platform,
        install_schedule,
        list_schedules,
        remove_schedule,
    )
    from ..ui import Output

    out = Output(json_mode=json_)
    if list_:
        root = project_root()
        rows = []
        for item in list_schedules():
            last = ScheduledRun.load(root, item.environment)
            rows.append(
                {**item.to_dict(), "last_run": f"{last.last_run} {last.result}".strip() or "-"}
            )
        if json_:
            out.json({"schedules": rows})
        elif rows:
            out.table(_schedules_table(rows))
        else:
            out.line("No backup schedule is installed for this user.")
        return
    project_env = load_environment(default_env(env), env_files=env_files(env_file), strict=False)
    if remove:
        where = remove_schedule(project_env.project_name)
        if json_:
            out.json({"environment": project_env.name, "removed": where})
        elif where:
            out.success(f"Removed the backup schedule of {project_env.name} ({', '.join(where)}).")
        else:
            out.line(f"{project_env.name} had no backup schedule installed.")
        return
    check_schedule_wanted(project_env, force=force)
    spec = build_spec(
        project_env, at=at, rehearsal=rehearsal_mode(rehearsal), env_files=env_files(env_file)
    )
    platform = choose_platform(via)
    log_file = state_dir(project_env.root) / f"schedule-{project_env.name}.log"
    installed = install_schedule(spec, platform=platform, log_file=log_file)
    count, days = retention_settings(project_env.values)
    if json_:
        out.json({**installed.to_dict(), "keep_last": count, "retention_days": days})
        return
    out.success(
        f"{project_env.name} is backed up daily at {spec.at} via {platform} "
        f"({installed.location}), then pruned (keep last {count or '-'}, "
        f"{days or '-'} days)."
    )
    out.line(f"Command: {installed.command}")


@lakehouse_task(name="scheduled-run")
def scheduled_run(
    c: Any,
    env: str | None = None,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    json_: bool = False,
) -> None:
    """What a schedule runs: back up, prune by retention, record the run, emit the outcome."""
    from ..backup import create_backup
    from ..paths import project_root
    from ..schedule import run_scheduled_backup
    from ..ui import Output

    name = default_env(env)
    out = Output(json_mode=json_)
    record = run_scheduled_backup(
        name,
        open_project=lambda: project_from_flags(env, rehearsal, env_file),
        backup=lambda project: create_backup(project, tag="scheduled", out=out),
        prune=_prune_by_settings,
        root=project_root(),
    )
    if json_:
        out.json(record.to_dict())
    else:
        out.success(
            f"Scheduled backup {record.backup_id} of {name} complete; pruned "
            f"{len(record.pruned)} old backup(s)."
        )


ns = Collection("backup")
ns.add_task(create, default=True)
ns.add_task(list_, name="list")
ns.add_task(verify)
ns.add_task(prune_, name="prune")
ns.add_task(schedule, name="schedule")
ns.add_task(scheduled_run, name="scheduled-run")
