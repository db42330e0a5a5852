"""``health``: the state of every service, once or refreshed (``--watch``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from invoke import Exit

from ._base import lakehouse_task, project_from_flags

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..events import Event
    from ..project import Project
    from ..schedule import BackupScheduleStatus
    from ..snapshots import HealthSnapshot
    from ..ui import Output

DEFAULT_WATCH_INTERVAL = 5.0


def watch_interval(value: Any) -> float | None:
    """``None`` without ``--watch``; 5 s for a bare ``--watch``; else the given seconds."""
    if value in (None, False, ""):
        return None
    if value is True:
        return DEFAULT_WATCH_INTERVAL
    from ..errors import ConfigError

    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--watch takes a number of seconds, not {value!r}; e.g. --watch 2."
        ) from None
    if seconds <= 0:
        raise ConfigError(f"--watch must be a positive number of seconds, not {value!r}.")
    return seconds


def service_names(values: Sequence[str] | None) -> list[str]:
    from ..parsing import parse_names

    return list(parse_names(values))


def exit_code_for(snapshot: HealthSnapshot) -> int:
    """0 when every service is fine, 1 (degraded) otherwise."""
    from ..errors import ExitCode

    return int(ExitCode.OK if snapshot.ok else ExitCode.DEGRADED)


def check_backup_schedule(project: Project, out: Output) -> BackupScheduleStatus | None:
    """The environment's scheduled-backup status; when a daily backup is overdue, a warning on
    stderr and one SCHEDULE_MISSED event. ``None`` if it cannot be read."""
    from ..errors import LakehouseError
    from ..schedule import backup_schedule_status, schedule_missed_event

    try:
        status = backup_schedule_status(project.env)
    except (OSError, LakehouseError) as exc:
        out.warn(f"could not check the backup schedule: {exc}")
        return None
    if status.missed:
        out.warn(status.message)
        from ..hooks.manager import get_plugin_manager

        get_plugin_manager().emit(schedule_missed_event(status))
    return status


def check_status(project: Project, out: Output) -> list[dict[str, Any]]:
    """Plugins' extra lines (``lakehouse_status_checks``: the newest off-site copy's age) and
    the last restore drill: a ``warn`` is printed as a warning, a pass as an info line."""
    from ..checks import Check, Status
    from ..data.drill import last_drill_check
    from ..hooks.manager import get_plugin_manager

    checks: list[Check] = list(get_plugin_manager().status_checks(env=project.env))
    drill = last_drill_check(project.env)
    if drill is not None:
        checks.append(drill)
    for check in checks:
        if check.status in (Status.WARN, Status.FAIL):
            out.warn(check.detail)
        elif not out.json_mode:
            out.info(f"{check.name}: {check.detail}")
    return [c.to_dict() for c in checks]


def watch_health(
    project: Project,
    out: Output,
    *,
    interval: float,
    count: int | None,
    resources: bool,
    services: list[str],
    detailed: bool,
    sleep: Callable[[float], None] = time.sleep,
    take: Callable[..., HealthSnapshot] | None = None,
) -> HealthSnapshot | None:
    """Refresh until Ctrl-C (or ``count`` refreshes); report each transition once.

    Returns the last snapshot, or ``None`` when interrupted (a clean exit, code 0).
    """
    from ..engine.inspect_cache import InspectCache
    from ..health import publish, take_snapshot
    from ..snapshots import diff_snapshots

    if take is None:  # the real engine: inspect only what changed since the last refresh
        take = functools.partial(take_snapshot, inspect_cache=InspectCache())

    previous: HealthSnapshot | None = None
    live = None
    if out.is_tty and not out.json_mode:
        from rich.live import Live

        live = Live(console=out.console, auto_refresh=False, transient=False)
        live.start()
    done = 0
    missed_announced = False
    try:
        while True:
            started = time.monotonic()
            snapshot = take(project, resources=resources, services=services or None)
            events = diff_snapshots(previous, snapshot) if previous is not None else []
            publish(project, snapshot, events)
            _render_refresh(out, live, snapshot, events, detailed=detailed)
            if not missed_announced:
                # SCHEDULE_MISSED once per watch session, not once per refresh.
                status = check_backup_schedule(project, out)
                missed_announced = bool(status and status.missed)
                check_status(project, out)
            previous = snapshot
            done += 1
            if count is not None and done >= count:
                return snapshot
            sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return None
    finally:
        if live is not None:
            live.stop()


def _render_refresh(
    out: Output, live: Any, snapshot: HealthSnapshot, events: list[Event], *, detailed: bool
) -> None:
    from ..health_view import render_health_table
    from ..ui import json_line, render_rich

    if out.json_mode:
        record = {**snapshot.to_dict(), "events": [e.to_dict() for e in events]}
        out.stdout.write(json_line(record) + "\n")
        out.stdout.flush()
        return
    if live is not None:
        for event in events:
            live.console.print(event.summary())
        live.update(render_rich(render_health_table(snapshot, detailed=detailed)), refresh=True)
        return
    for event in events:
        out.line("event: " + event.summary())
    out.table(render_health_table(snapshot, detailed=detailed))


@lakehouse_task(
    optional=["watch"],
    iterable=["service"],
    help={
        "watch": "refresh every SECONDS (default 5) until Ctrl-C, reporting each transition",
        "detailed": "add image, container id, last healthcheck outputs, limits against usage, "
        "volumes and restart policy",
        "service": "only these services (repeatable, or a comma list)",
        "no_resources": "skip the CPU/memory sample (docker stats): a faster snapshot",
        "count": "with --watch: stop after N refreshes",
        "strict_backups": "exit 1 also when the daily backup or the off-site copy is overdue, "
        "or the last restore drill failed",
        "target": "compose (default, or $DEPLOY_TARGET) or swarm (docs/SCALING.md)",
        "deep": "also run the smoke check (invoke smoke): the data path, hop by hop; exit 8 "
        "when a hop fails and every service is healthy",
    },
)
def health(
    c: Any,
    env: str | None = None,
    watch: Any = None,
    detailed: bool = False,
    json_: bool = False,
    service: list[str] | None = None,
    no_resources: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    count: int | None = None,
    strict_backups: bool = False,
    target: str | None = None,
    deep: bool = False,
) -> None:
    """Show the state, health, restarts, uptime, CPU and memory of every service.

    Exits 0 when every service is healthy (one-shots exited 0), 1 when one is unhealthy,
    missing or exited unexpectedly. An overdue daily backup is a warning (exit 1 only with
    --strict-backups).
    """
    from ..backends import backend_for
    from ..errors import ConfigError, ExitCode, LakehouseError
    from ..health import publish
    from ..health_view import render_health_table
    from ..schedule import backup_schedule_status
    from ..ui import Output

    interval = watch_interval(watch)
    if count is not None and int(count) < 1:
        raise ConfigError(f"--count must be at least 1, not {count}.")
    project = project_from_flags(env, rehearsal, env_file, strict=False)
    out = Output(json_mode=json_)
    names = service_names(service)
    # Every target gives the same rows, table, JSON and exit codes.
    backend = backend_for(target)
    if interval is not None and deep:
        raise ConfigError("--deep runs the smoke check once: use it without --watch.")
    if interval is not None:
        last = watch_health(
            project,
            out,
            interval=interval,
            count=int(count) if count is not None else None,
            resources=not no_resources,
            services=names,
            detailed=detailed,
            take=backend.watcher(),
        )
        if last is None:  # Ctrl-C: a watch ends cleanly
            return
        code = exit_code_for(last)
        extra: list[dict[str, Any]] = []
        try:  # already warned about during the watch; only --strict-backups needs it here
            backups = backup_schedule_status(project.env)
        except (OSError, LakehouseError):
            backups = None
    else:
        snapshot = backend.snapshot(project, resources=not no_resources, services=names or None)
        publish(project, snapshot, [])
        backups = check_backup_schedule(project, out)
        extra = check_status(project, out)
        smoke_report = None
        if deep:
            from .smoke import run_and_publish

            smoke_report = run_and_publish(project)
        if json_:
            record = {
                **snapshot.to_dict(),
                "backup": backups.to_dict() if backups else None,
                "status": extra,
            }
            if smoke_report is not None:
                record["smoke"] = smoke_report.to_dict()
            out.json(record)
        else:
            out.table(render_health_table(snapshot, detailed=detailed))
            if smoke_report is not None:
                from .smoke import render_report

                render_report(out, smoke_report)
        code = exit_code_for(snapshot)
        if not code and smoke_report is not None and not smoke_report.ok:
            code = int(ExitCode.SMOKE_FAILED)
        if code:
            problems = ", ".join(f"{r.service} ({r.status})" for r in snapshot.problems)
            out.warn(f"{snapshot.environment} is degraded: {problems}.")
    if strict_backups and backups is not None and backups.missed:
        code = int(ExitCode.DEGRADED)
    if strict_backups and any(c["status"] in ("warn", "fail") for c in extra):
        code = int(ExitCode.DEGRADED)
    if code:
        raise Exit(code=code)
