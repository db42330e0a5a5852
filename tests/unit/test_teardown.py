"""Teardown rules without an engine: the prod fresh-backup rule and refusals."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.errors import RefusedError
from lakehouse_tasks.project import open_project
from lakehouse_tasks.teardown import TeardownResult, check_fresh_backup, teardown
from lakehouse_tasks.testing import write_env

NOW = _dt.datetime(2025, 6, 1, 12, 0, tzinfo=_dt.UTC)


@dataclass
class FakeBackup:
    id: str
    time: _dt.datetime


@pytest.fixture
def prod(lakehouse_project: Path) -> Any:
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text("services: {}\n")
    write_env(lakehouse_project, "prod", {"COMPOSE_PROJECT_NAME": "lakehouse-prod"})
    return open_project("prod", root=lakehouse_project, strict=False)


def test_a_backup_younger_than_a_day_is_fresh(prod: Any) -> None:
    backup = FakeBackup("prod-1", NOW - _dt.timedelta(hours=3))
    assert "prod-1" in check_fresh_backup(prod, now=NOW, latest=lambda _env: backup)


def test_an_old_backup_is_refused_naming_both_flags(prod: Any) -> None:
    backup = FakeBackup("prod-0", NOW - _dt.timedelta(hours=30))
    with pytest.raises(RefusedError) as raised:
        check_fresh_backup(prod, now=NOW, latest=lambda _env: backup)
    assert raised.value.exit_code == 7
    assert "30 h old" in raised.value.message
    assert "--backup" in raised.value.message and "--force-without-backup" in raised.value.message


def test_no_backup_at_all_is_refused(prod: Any) -> None:
    with pytest.raises(RefusedError):
        check_fresh_backup(prod, now=NOW, latest=lambda _env: None)


def test_volume_removal_is_refused_before_any_docker_call_without_tty(prod: Any) -> None:
    # No engine is touched: the refusal comes first (a docker call would fail the test's
    # compose file, which defines no services).
    with pytest.raises(RefusedError) as raised:
        teardown(prod, remove_volumes=True, is_tty=False)
    assert "--yes" in raised.value.message


def test_result_ok_reflects_what_was_asked() -> None:
    kept = TeardownResult("dev", "p", False, volumes_before=["v"], volumes_after=["v"])
    assert kept.ok and kept.volumes_kept == ["v"] and kept.volumes_removed == []
    gone = TeardownResult("dev", "p", True, volumes_before=["v"], volumes_after=[])
    assert gone.ok and gone.volumes_removed == ["v"]
    left = TeardownResult("dev", "p", False, containers_left=["p-minio-1"])
    assert not left.ok
