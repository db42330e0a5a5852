"""A scheduled backup for real: install the cron entry, then run its command line the way cron
would (a bare environment, through sh) against a small stack, and check what it left."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Context

from lakehouse_tasks.data.store import list_backups
from lakehouse_tasks.project import open_project
from lakehouse_tasks.schedule import CRONTAB_FILE_ENV, ScheduledRun
from lakehouse_tasks.tasks.backup import schedule as schedule_task
from lakehouse_tasks.testing import write_env
from tests.conftest import remove_project, unique_project_name

pytestmark = [pytest.mark.engine, pytest.mark.slow]

COMPOSE = """
services:
  store:
    image: lakehouse-rehearsal/busybox:rehearsal
    entrypoint: ["sh", "-c", "echo nightly > /data/note.txt; exec sleep 100000"]
    stop_grace_period: 1s
    volumes: [store-data:/data]
volumes:
  store-data: {}
"""


@pytest.fixture
def stack(
    docker_engine: str,
    standin_images: dict[str, str],
    lakehouse_project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    root = lakehouse_project
    name = unique_project_name("schedule")
    (root / "compose" / "docker-compose.yaml").write_text(COMPOSE)
    dest = root / "backups"
    write_env(
        root,
        "staging",
        {
            "COMPOSE_PROJECT_NAME": name,
            "BACKUP_DIR": str(dest),
            "BACKUP_SCHEDULE": "daily",
            "BACKUP_RETENTION_DAYS": "7",
            "BACKUP_KEEP_LAST": "3",
        },
    )
    crontab = root / "crontab"
    monkeypatch.setenv(CRONTAB_FILE_ENV, str(crontab))
    project = open_project("staging", strict=False)
    project.compose.compose("up", "-d", "--wait", "--wait-timeout", "60")
    try:
        yield {"root": root, "dest": dest, "crontab": crontab, "name": name}
    finally:
        remove_project(name)


def test_the_installed_cron_command_backs_up_prunes_and_reports(stack: dict[str, Any]) -> None:
    schedule_task(Context(), env="staging", at="03:15")
    lines = stack["crontab"].read_text().splitlines()
    [entry] = [line for line in lines if "backup.scheduled-run" in line]
    minute, hour, dom, month, dow, command = entry.split(None, 5)
    assert (minute, hour, dom, month, dow) == ("15", "3", "*", "*", "*")
    assert "--env staging" in command

    # cron runs the line with sh, a bare PATH and no LAKEHOUSE_* variables of ours
    proc = subprocess.run(
        ["/bin/sh", "-c", command],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(stack["root"])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (stack["root"] / ".lakehouse" / "schedule-staging.log").read_text()
    assert proc.returncode == 0, log
    backups, _ = list_backups(stack["dest"], "staging")
    assert len(backups) == 1 and backups[0].id.endswith("-scheduled")
    record = ScheduledRun.load(stack["root"], "staging")
    assert record.result == "ok" and record.backup_id == backups[0].id
    events = [
        json.loads(line)
        for line in (stack["root"] / ".lakehouse" / "events.jsonl").read_text().splitlines()
    ]
    assert [e["kind"] for e in events if e["kind"].startswith("backup.")] == ["backup.succeeded"]


def test_a_failing_scheduled_run_reports_backup_failed(stack: dict[str, Any]) -> None:
    schedule_task(Context(), env="staging")
    [entry] = [
        line for line in stack["crontab"].read_text().splitlines() if "scheduled-run" in line
    ]
    # by the night, the backup directory has become unusable (a file stands in its way)
    blocker = stack["root"] / "not-a-directory"
    blocker.write_text("")
    env_file = stack["root"] / "env" / "staging.env"
    env_file.write_text(env_file.read_text() + f"BACKUP_DIR={blocker / 'backups'}\n")
    proc = subprocess.run(
        ["/bin/sh", "-c", entry.split(None, 5)[5]],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(stack["root"])},
        timeout=300,
    )
    assert proc.returncode != 0
    record = ScheduledRun.load(stack["root"], "staging")
    assert record.result == "failed" and record.error
    events = (stack["root"] / ".lakehouse" / "events.jsonl").read_text()
    assert "backup.failed" in events
