"""``backup.schedule`` (install, list, remove the host's backup schedule) and ``backup.scheduled-run`` (what a schedule runs); part of the ``backup`` collection (tasks/backup.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import (
    audited,
    default_env,
    env_files,
    lakehouse_task,
    project_from_flags,
    rehearsal_mode,
)

if TYPE_CHECKING:
    from ..ui import Table


#: ``lakehouse_tasks.schedule.DEFAULT_AT``, repeated so the flag's default and help need no
#: import of the schedule module (tests/unit/test_startup.py keeps the two equal).
DEFAULT_AT = "02:00"


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
        "drill": "also run a restore drill of each scheduled backup (backup.drill)",
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
    drill: bool = False,
) -> None:
    """Install (or --remove, or --list) the daily backup-then-prune run of an environment
    (--drill: and a restore drill of each new backup)."""
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
        project_env,
        at=at,
        rehearsal=rehearsal_mode(rehearsal),
        env_files=env_files(env_file),
        drill=drill,
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


@lakehouse_task(
    name="scheduled-run",
    help={"drill": "then run a restore drill of the new backup (backup.drill)"},
)
def scheduled_run(
    c: Any,
    env: str | None = None,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    json_: bool = False,
    drill: bool = False,
) -> None:
    """What a schedule runs: back up, prune by retention, record the run, emit the outcome
    (--drill: then drill the new backup)."""
    from ..data.backup import create_backup
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
    if json_ and not drill:
        out.json(record.to_dict())
    elif not json_:
        out.success(
            f"Scheduled backup {record.backup_id} of {name} complete; pruned "
            f"{len(record.pruned)} old backup(s)."
        )
    if drill:
        from ..data.drill import run_drill

        result = run_drill(
            project_from_flags(env, rehearsal, env_file), backup_id=record.backup_id, out=out
        )
        if json_:
            out.json({**record.to_dict(), "drill": result.to_dict()})
        else:
            out.success(f"Restore drill of {result.backup} passed ({result.evidence}).")


def _prune_by_settings(project: Any) -> Any:
    from ..data.store import default_dest
    from ..retention import prune_by_policy, retention_policy

    return prune_by_policy(
        default_dest(project.env), project.env, retention_policy(project.env.values)
    )
