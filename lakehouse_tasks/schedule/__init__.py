"""Scheduled backups: install, list and remove them, run them, and notice a missed one.

A schedule runs ``lakehouse backup.scheduled-run --env E`` once a day at ``--at`` (02:00 by
default). That one task takes a backup, prunes by the environment's retention settings,
records the run in ``<state dir>/schedule-<env>.json`` and reports the outcome as an event
(BACKUP_SUCCEEDED / BACKUP_FAILED), so an alert plugin sees a failed nightly backup.

Where it is installed:

- **systemd** when PID 1 is systemd and ``systemctl`` answers: a ``<project>-backup.service``
  (``Type=oneshot``) and a ``<project>-backup.timer`` (``Persistent=true``: a run missed while
  the host was off happens at the next boot), in ``/etc/systemd/system`` as root, else in
  ``~/.config/systemd/user`` driven by ``systemctl --user``.
- **cron** otherwise: one entry in the *user's* crontab (``crontab -l`` / ``crontab -``) under a
  marker comment naming the compose project, so root and non-root installs work the same way
  and ``--remove`` finds exactly its own entry. ``LAKEHOUSE_CRONTAB_FILE`` replaces the
  crontab by a plain file in the same format (tests, and hosts whose cron reads a file).

A schedule is *missed* when the environment's ``BACKUP_SCHEDULE`` is ``daily`` and its last
successful backup is older than a day plus an hour of grace; ``health`` warns about it.

The package: ``spec`` (what runs, when, as units and cron text), ``installed`` (the host's
crontab or systemd timers), ``runs`` (the scheduled run and missed-run status).
"""

from __future__ import annotations

from .installed import (
    CronTable,
    InstalledSchedule,
    Runner,
    SystemdTimers,
    choose_platform,
    install_schedule,
    list_schedules,
    remove_schedule,
    systemd_is_init,
)
from .runs import (
    BackupScheduleStatus,
    ScheduledRun,
    backup_schedule_status,
    record_path,
    run_scheduled_backup,
    schedule_missed_event,
)
from .spec import (
    CRONTAB_FILE_ENV,
    DEFAULT_AT,
    GRACE,
    MARKER,
    PERIODS,
    PLATFORMS,
    SYSTEMD_DIR_ENV,
    ScheduleSpec,
    build_spec,
    check_schedule_wanted,
    lakehouse_executable,
    parse_at,
    render_cron_entry,
    render_systemd_units,
)

__all__ = [
    "CRONTAB_FILE_ENV",
    "DEFAULT_AT",
    "GRACE",
    "MARKER",
    "PERIODS",
    "PLATFORMS",
    "SYSTEMD_DIR_ENV",
    "BackupScheduleStatus",
    "CronTable",
    "InstalledSchedule",
    "Runner",
    "ScheduleSpec",
    "ScheduledRun",
    "SystemdTimers",
    "backup_schedule_status",
    "build_spec",
    "check_schedule_wanted",
    "choose_platform",
    "install_schedule",
    "lakehouse_executable",
    "list_schedules",
    "parse_at",
    "record_path",
    "remove_schedule",
    "render_cron_entry",
    "render_systemd_units",
    "run_scheduled_backup",
    "schedule_missed_event",
    "systemd_is_init",
]
