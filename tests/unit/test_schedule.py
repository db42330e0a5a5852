"""Scheduled backups without an engine: unit rendering, crontab editing, refusal, the run
record, its events, and the missed-schedule check."""

from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks import schedule as sched
from lakehouse_tasks.environment import load_environment
from lakehouse_tasks.errors import ConfigError, LakehouseError
from lakehouse_tasks.events import EventKind
from lakehouse_tasks.testing import FakeBackend, RecordingPlugin, write_env

LAKEHOUSE = "/opt/lakehouse/.venv/bin/lakehouse"


def _env(root: Path, name: str = "prod", **values: Any) -> Any:
    base = {"COMPOSE_PROJECT_NAME": f"lakehouse-{name}", "BACKUP_SCHEDULE": "daily"}
    write_env(root, name, {**base, **values})
    return load_environment(name, root=root, strict=False)


def _spec(root: Path, name: str = "prod", at: str = "02:30", **values: Any) -> sched.ScheduleSpec:
    return sched.build_spec(_env(root, name, **values), at=at, executable=LAKEHOUSE)


class FakeRunner:
    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, argv: list[str], input: str | None = None) -> Any:
        self.calls.append(list(argv))
        failed = bool(self.fail_on) and self.fail_on in argv
        return subprocess.CompletedProcess(argv, 1 if failed else 0, "", "boom" if failed else "")


def test_systemd_units_run_the_scheduled_task_daily_and_catch_up(lakehouse_project: Path) -> None:
    units = sched.render_systemd_units(_spec(lakehouse_project))
    service = units["lakehouse-prod-backup.service"]
    timer = units["lakehouse-prod-backup.timer"]
    assert "Type=oneshot" in service
    assert f"ExecStart={LAKEHOUSE} backup.scheduled-run --env prod" in service
    assert f'Environment="LAKEHOUSE_HOME={lakehouse_project}"' in service
    assert f"WorkingDirectory={lakehouse_project}" in service
    assert "OnCalendar=*-*-* 02:30:00" in timer
    assert "Persistent=true" in timer  # a run missed while the host was off happens at boot
    assert "Unit=lakehouse-prod-backup.service" in timer
    assert "WantedBy=timers.target" in timer


def test_systemd_install_enables_the_timer_and_lists_it(
    lakehouse_project: Path, tmp_path: Path
) -> None:
    runner = FakeRunner()
    timers = sched.SystemdTimers(tmp_path / "units", user=False, runner=runner)
    installed = timers.install(_spec(lakehouse_project))
    assert runner.calls == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "lakehouse-prod-backup.timer"],
    ]
    assert installed.platform == "systemd"
    [listed] = timers.entries()
    assert (listed.environment, listed.at, listed.project_name) == (
        "prod",
        "02:30",
        "lakehouse-prod",
    )
    assert timers.remove("lakehouse-prod")
    assert not list((tmp_path / "units").iterdir())


def test_systemd_user_units_use_systemctl_user(lakehouse_project: Path, tmp_path: Path) -> None:
    runner = FakeRunner()
    sched.SystemdTimers(tmp_path, user=True, runner=runner).install(_spec(lakehouse_project))
    assert all(call[:2] == ["systemctl", "--user"] for call in runner.calls)


def test_systemd_refusal_leaves_no_unit_behind(lakehouse_project: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    timers = sched.SystemdTimers(units, user=False, runner=FakeRunner(fail_on="daemon-reload"))
    with pytest.raises(LakehouseError, match="systemctl daemon-reload failed: boom"):
        timers.install(_spec(lakehouse_project))
    assert list(units.iterdir()) == []


def test_cron_entry_is_added_replaced_listed_and_removed(
    lakehouse_project: Path, tmp_path: Path
) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=ops\n0 * * * * /usr/local/bin/other-job\n")
    table = sched.CronTable(crontab)
    table.install(_spec(lakehouse_project, at="02:30"))
    table.install(_spec(lakehouse_project, at="04:05"))  # replaces, never duplicates
    text = crontab.read_text()
    assert text.count("backup.scheduled-run") == 1
    assert f"5 4 * * * cd {lakehouse_project} && LAKEHOUSE_HOME={lakehouse_project}" in text
    assert "MAILTO=ops" in text and "other-job" in text
    [entry] = table.entries()
    assert (entry.environment, entry.at, entry.platform) == ("prod", "04:05", "cron")
    assert table.remove("lakehouse-prod")
    assert crontab.read_text() == "MAILTO=ops\n0 * * * * /usr/local/bin/other-job\n"
    assert not table.remove("lakehouse-prod")


def test_cron_escapes_percent_signs(lakehouse_project: Path) -> None:
    spec = _spec(lakehouse_project)
    spec = sched.ScheduleSpec(**{**spec.__dict__, "argv": (*spec.argv, "--tag", "50%")})
    line = sched.render_cron_entry(spec).splitlines()[1]
    assert "50\\%" in line


def test_dev_is_refused_without_force(lakehouse_project: Path) -> None:
    env = _env(lakehouse_project, "dev", BACKUP_SCHEDULE="manual")
    with pytest.raises(ConfigError) as err:
        sched.check_schedule_wanted(env, force=False)
    assert err.value.exit_code == 2
    assert "BACKUP_SCHEDULE=manual" in err.value.message and "--force" in err.value.message
    sched.check_schedule_wanted(env, force=True)
    sched.check_schedule_wanted(_env(lakehouse_project, "prod"), force=False)


@pytest.mark.parametrize("bad", ["2am", "24:00", "02:60", ""])
def test_bad_times_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="--at takes a time of day"):
        sched.parse_at(bad)


def test_crontab_file_variable_chooses_cron(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(sched.CRONTAB_FILE_ENV, str(tmp_path / "ct"))
    assert sched.choose_platform("auto") == "cron"
    assert sched.choose_platform("systemd") == "systemd"
    with pytest.raises(ConfigError, match="--via"):
        sched.choose_platform("launchd")


def test_no_systemd_as_init_means_cron(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sched.CRONTAB_FILE_ENV, raising=False)
    monkeypatch.setattr(sched.installed, "systemd_is_init", lambda runner=None: False)
    assert sched.choose_platform() == "cron"


# ---- the scheduled run --------------------------------------------------------------------
class _Manifest:
    id = "prod-20260101T020000Z-scheduled"


class _Pruned:
    deleted = [type("B", (), {"id": "old-1"})()]


def test_scheduled_run_records_success(lakehouse_project: Path) -> None:
    record = sched.run_scheduled_backup(
        "prod",
        open_project=lambda: "project",
        backup=lambda p: _Manifest(),
        prune=lambda p: _Pruned(),
        root=lakehouse_project,
    )
    stored = sched.ScheduledRun.load(lakehouse_project, "prod")
    assert stored.result == record.result == "ok"
    assert stored.backup_id == _Manifest.id and stored.pruned == ["old-1"]
    assert stored.last_success == stored.last_run


def test_scheduled_run_failure_is_recorded_and_emitted_once(
    lakehouse_project: Path, lakehouse_plugins: Any
) -> None:
    plugin = RecordingPlugin()
    lakehouse_plugins(plugin)

    def broken_env() -> Any:
        raise ConfigError("env/prod.env:3: malformed line")

    with pytest.raises(ConfigError):
        sched.run_scheduled_backup(
            "prod",
            open_project=broken_env,
            backup=lambda p: _Manifest(),
            prune=lambda p: _Pruned(),
            root=lakehouse_project,
        )
    [event] = plugin.events
    assert event.kind == EventKind.BACKUP_FAILED and "malformed line" in event.message
    stored = sched.ScheduledRun.load(lakehouse_project, "prod")
    assert stored.result == "failed" and "malformed" in stored.error


def test_a_failed_backup_is_left_to_create_backup_to_report(
    lakehouse_project: Path, lakehouse_plugins: Any
) -> None:
    plugin = RecordingPlugin()
    lakehouse_plugins(plugin)

    def failing_backup(project: Any) -> Any:
        raise LakehouseError("pg_dump failed")

    with pytest.raises(LakehouseError):
        sched.run_scheduled_backup(
            "prod",
            open_project=lambda: "p",
            backup=failing_backup,
            prune=lambda p: _Pruned(),
            root=lakehouse_project,
        )
    assert plugin.events == []  # create_backup emits BACKUP_FAILED itself: no double alert


# ---- missed schedules ---------------------------------------------------------------------
NOW = _dt.datetime(2026, 3, 10, 12, 0, tzinfo=_dt.UTC)


def test_a_recent_backup_is_on_time(lakehouse_project: Path) -> None:
    env = _env(lakehouse_project)
    status = sched.backup_schedule_status(
        env, now=NOW, backup_times=[NOW - _dt.timedelta(hours=24.5)]
    )
    assert not status.missed and status.source == "backups"


def test_an_old_backup_is_missed(lakehouse_project: Path) -> None:
    env = _env(lakehouse_project)
    status = sched.backup_schedule_status(
        env, now=NOW, backup_times=[NOW - _dt.timedelta(hours=26)]
    )
    assert status.missed
    assert "overdue" in status.message and "26h" in status.message
    event = sched.schedule_missed_event(status)
    assert event.kind == EventKind.SCHEDULE_MISSED and event.environment == "prod"


def test_the_scheduled_run_record_counts_as_a_success(lakehouse_project: Path) -> None:
    env = _env(lakehouse_project)
    sched.ScheduledRun("prod", last_success=(NOW - _dt.timedelta(hours=2)).isoformat()).save(
        lakehouse_project
    )
    status = sched.backup_schedule_status(env, now=NOW, backup_times=[])
    assert not status.missed and status.source == "schedule record"


def test_no_backup_at_all_is_missed_but_manual_never_is(lakehouse_project: Path) -> None:
    assert sched.backup_schedule_status(_env(lakehouse_project), now=NOW, backup_times=[]).missed
    dev = _env(lakehouse_project, "dev", BACKUP_SCHEDULE="manual")
    assert not sched.backup_schedule_status(dev, now=NOW, backup_times=[]).missed


def test_health_warns_and_emits_schedule_missed_once_per_watch(
    lakehouse_project: Path, lakehouse_plugins: Any
) -> None:
    from lakehouse_tasks.health import HealthSnapshot
    from lakehouse_tasks.tasks import health as health_tasks
    from lakehouse_tasks.ui import Output

    plugin = RecordingPlugin()
    lakehouse_plugins(plugin)
    env = _env(lakehouse_project)
    project = type("P", (), {"env": env})()
    snapshot = HealthSnapshot(environment="prod", project="lakehouse-prod", rows=())
    backend = FakeBackend(snapshots=[snapshot] * 3)
    out = Output(json_mode=True)
    health_tasks.watch_health(
        project,  # type: ignore[arg-type]
        out,
        interval=0.01,
        count=3,
        resources=False,
        services=[],
        detailed=False,
        sleep=lambda s: None,
        take=backend.snapshot,
    )
    assert len(backend.calls) == 3
    missed = [e for e in plugin.events if e.kind == EventKind.SCHEDULE_MISSED]
    assert len(missed) == 1


def test_a_schedule_with_drill_drills_each_backup_it_takes(lakehouse_project: Path) -> None:
    env = _env(lakehouse_project)
    spec = sched.build_spec(env, at="03:00", executable=LAKEHOUSE, drill=True)
    assert spec.argv == (LAKEHOUSE, "backup.scheduled-run", "--env", "prod", "--drill")
    assert "--drill" in sched.render_cron_entry(spec)
    assert "--drill" not in " ".join(_spec(lakehouse_project).argv)
