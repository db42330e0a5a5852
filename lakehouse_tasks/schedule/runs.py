"""The scheduled run (``backup.run-scheduled``: backup, prune, record, event) and the missed-run status that ``health`` and the status page report."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..environment import Environment
from ..errors import LakehouseError
from ..events import Event, EventKind, utc_now
from ..paths import state_dir, write_atomic
from .spec import GRACE, PERIODS


def record_path(root: Path, env_name: str) -> Path:
    return state_dir(root) / f"schedule-{env_name}.json"


@dataclass
class ScheduledRun:
    """The last scheduled run of an environment, kept in ``<state dir>/schedule-<env>.json``."""

    environment: str
    last_run: str = ""  # ISO 8601 UTC
    result: str = ""  # ok | failed
    last_success: str = ""
    backup_id: str = ""
    pruned: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "last_run": self.last_run,
            "result": self.result,
            "last_success": self.last_success,
            "backup_id": self.backup_id,
            "pruned": list(self.pruned),
            "error": self.error,
        }

    @classmethod
    def load(cls, root: Path, env_name: str) -> ScheduledRun:
        path = record_path(root, env_name)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(env_name)
        return cls(
            environment=env_name,
            last_run=str(data.get("last_run", "")),
            result=str(data.get("result", "")),
            last_success=str(data.get("last_success", "")),
            backup_id=str(data.get("backup_id", "")),
            pruned=[str(p) for p in data.get("pruned", [])],
            error=str(data.get("error", "")),
        )

    def save(self, root: Path) -> None:
        path = record_path(root, self.environment)
        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")


def _emit(event: Event) -> None:
    from ..hooks.manager import get_plugin_manager

    get_plugin_manager().emit(event)


def run_scheduled_backup(
    env_name: str,
    *,
    open_project: Callable[[], Any],
    backup: Callable[[Any], Any],
    prune: Callable[[Any], Any],
    root: Path,
    now: Callable[[], _dt.datetime] = utc_now,
) -> ScheduledRun:
    """Back up, then prune; record the run; re-raise a failure after recording it.

    ``backup`` (``create_backup``) emits BACKUP_SUCCEEDED or BACKUP_FAILED itself; a failure
    before it (the environment does not load) or after it (pruning) is reported here as
    BACKUP_FAILED, so every failed scheduled run reaches the alert plugins exactly once.
    """
    record = ScheduledRun.load(root, env_name)
    record.last_run = now().isoformat(timespec="seconds")
    record.pruned = []
    record.error = ""
    phase = "open"
    try:
        project = open_project()
        phase = "backup"
        manifest = backup(project)
        record.backup_id = str(getattr(manifest, "id", ""))
        phase = "prune"
        result = prune(project)
        record.pruned = [str(getattr(b, "id", b)) for b in getattr(result, "deleted", [])]
    except BaseException as exc:
        message = exc.message if isinstance(exc, LakehouseError) else type(exc).__name__
        record.result = "failed"
        record.error = message
        record.save(root)
        if phase != "backup" and isinstance(exc, Exception):
            what = "backup" if phase == "open" else f"prune after backup {record.backup_id}"
            _emit(
                Event(
                    EventKind.BACKUP_FAILED,
                    env_name,
                    f"Scheduled {what} of {env_name} failed: {message}",
                    details={"scheduled": True, "phase": phase},
                )
            )
        raise
    record.result = "ok"
    record.last_success = record.last_run
    record.save(root)
    return record


@dataclass(frozen=True)
class BackupScheduleStatus:
    """Whether an environment's scheduled backups are on time."""

    environment: str
    schedule: str  # manual | daily
    last_success: _dt.datetime | None
    source: str  # backups | schedule record | "" (none)
    missed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "schedule": self.schedule,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "source": self.source,
            "missed": self.missed,
            "message": self.message,
        }


def _parse_time(text: str) -> _dt.datetime | None:
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)


def backup_schedule_status(
    env: Environment,
    *,
    now: _dt.datetime | None = None,
    backup_times: Iterable[_dt.datetime] | None = None,
) -> BackupScheduleStatus:
    """Is the last successful backup of ``env`` younger than its period plus the grace hour?

    The last success is the newest of: the newest complete backup in the environment's backup
    directory, and the scheduled-run record. ``manual`` environments are never missed.
    """
    schedule = (env.get("BACKUP_SCHEDULE") or "manual").lower()
    now = now or utc_now()
    candidates: list[tuple[_dt.datetime, str]] = []
    if backup_times is None:
        from ..data.store import default_dest, list_backups

        backups, _ = list_backups(default_dest(env), env.name)
        backup_times = [b.time for b in backups[:1]]
    candidates += [(t, "backups") for t in backup_times]
    recorded = _parse_time(ScheduledRun.load(env.root, env.name).last_success)
    if recorded is not None:
        candidates.append((recorded, "schedule record"))
    last, source = max(candidates) if candidates else (None, "")
    period = PERIODS.get(schedule)
    if period is None:
        return BackupScheduleStatus(env.name, schedule, last, source, False, "")
    if last is None:
        message = (
            f"{env.name} has BACKUP_SCHEDULE={schedule} but no successful backup yet; check "
            f"`invoke backup.schedule --list` and run `invoke backup --env {env.name}`."
        )
        return BackupScheduleStatus(env.name, schedule, None, "", True, message)
    age = now - last
    if age <= period + GRACE:
        return BackupScheduleStatus(env.name, schedule, last, source, False, "")
    hours = age.total_seconds() / 3600
    message = (
        f"the {schedule} backup of {env.name} is overdue: the last successful one is "
        f"{hours:.0f}h old ({last.isoformat(timespec='minutes')}); check "
        f"`invoke backup.schedule --list` and <state dir>/schedule-{env.name}.json."
    )
    return BackupScheduleStatus(env.name, schedule, last, source, True, message)


def schedule_missed_event(status: BackupScheduleStatus) -> Event:
    return Event(
        EventKind.SCHEDULE_MISSED,
        status.environment,
        status.message,
        details=status.to_dict(),
    )
