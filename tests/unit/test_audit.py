"""The audit log: masking, failures recorded, invoke still sees every flag."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks.audit import AuditRecord, audit_path, audited, parse_since, read_records
from lakehouse_tasks.environment import MASK
from lakehouse_tasks.errors import ConfigError, LakehouseError, RefusedError
from lakehouse_tasks.tasks._base import lakehouse_task
from lakehouse_tasks.testing import write_env

SECRET = "s3cr3t-value-for-tests-only"


@pytest.fixture
def project(lakehouse_project: Path) -> Path:
    (lakehouse_project / "env" / "variables.yaml").write_text(
        "MINIO_ROOT_PASSWORD:\n  type: secret\n  required: true\n"
        "LOG_LEVEL:\n  type: str\n  required: false\n"
    )
    write_env(lakehouse_project, "dev", {"MINIO_ROOT_PASSWORD": SECRET, "LOG_LEVEL": "INFO"})
    return lakehouse_project


def records(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_path(root).read_text().splitlines()]


@lakehouse_task(help={"note": "free text", "password": "a password given on the command line"})
@audited("demo.change")
def change(
    c: Any,
    env: str | None = None,
    note: str = "",
    password: str = "",
    fail: str = "",
    env_file: list[str] | None = None,
) -> str:
    """A state-changing demo task."""
    if fail == "lakehouse":
        raise ConfigError("bad input")
    if fail == "refused":
        raise RefusedError("refused")
    if fail == "exit":
        raise Exit("stop", code=4)
    if fail == "bug":
        raise RuntimeError("a bug")
    return "done"


@audited("demo.outer")
@lakehouse_task
def outer(c: Any, env: str | None = None, count: int = 1) -> None:
    """Audited above the task decorator."""
    if count < 0:
        raise ConfigError("count must be positive")


def test_success_is_recorded_with_context(project: Path) -> None:
    assert change(Context(), env="dev", note="hello") == "done"
    (rec,) = records(project)
    assert rec["task"] == "demo.change"
    assert rec["environment"] == "dev"
    assert rec["result"] == "ok" and rec["exit_code"] == 0
    assert rec["arguments"]["note"] == "hello"
    assert rec["user"] and rec["host"]
    assert rec["duration_s"] >= 0
    assert dt.datetime.fromisoformat(rec["time"]).tzinfo is not None
    assert "commit" in rec


def test_secrets_are_masked_by_name_and_by_value(project: Path) -> None:
    change(Context(), env="dev", note=f"rotated to {SECRET}", password="hunter2-typed")
    text = audit_path(project).read_text()
    assert SECRET not in text and "hunter2-typed" not in text
    (rec,) = records(project)
    assert rec["arguments"]["password"] == MASK
    assert rec["arguments"]["note"] == f"rotated to {MASK}"


def test_name_equals_value_arguments_are_masked(project: Path) -> None:
    change(Context(), env="dev", note="MINIO_ROOT_PASSWORD=whatever-it-is")
    (rec,) = records(project)
    assert rec["arguments"]["note"] == f"MINIO_ROOT_PASSWORD={MASK}"


@pytest.mark.parametrize(
    ("fail", "result", "code"),
    [("lakehouse", "failed", 2), ("refused", "refused", 7), ("exit", "failed", 4)],
)
def test_failures_are_recorded_with_their_exit_code(
    project: Path, fail: str, result: str, code: int
) -> None:
    with pytest.raises(Exit) as raised:
        change(Context(), env="dev", fail=fail)
    assert raised.value.code == code  # the task's own outcome is unchanged
    (rec,) = records(project)
    assert (rec["result"], rec["exit_code"]) == (result, code)


def test_a_bug_is_recorded_and_keeps_its_traceback(project: Path) -> None:
    with pytest.raises(RuntimeError):
        change(Context(), env="dev", fail="bug")
    (rec,) = records(project)
    assert rec["result"] == "failed" and "RuntimeError" in rec["error"]


def test_invoke_still_sees_every_flag_in_both_orders() -> None:
    # One get_arguments() call per task: invoke consumes the help mapping as it reads it.
    help_ = {a.name: a.help for a in change.get_arguments()}
    assert {"env", "note", "password", "fail", "env_file"} <= set(help_)
    assert help_["note"] == "free text"
    assert {a.name for a in outer.get_arguments()} >= {"env", "count"}
    assert change.__doc__ and "state-changing" in change.__doc__


def test_audited_above_the_task_decorator_records_too(project: Path) -> None:
    with pytest.raises(Exit):
        outer(Context(), env="dev", count=-1)
    outer(Context(), env="dev", count=3)
    recs = records(project)
    assert [(r["task"], r["result"]) for r in recs] == [
        ("demo.outer", "failed"),
        ("demo.outer", "ok"),
    ]
    assert recs[1]["arguments"]["count"] == 3


def test_unknown_environment_still_records_with_name_masking(project: Path) -> None:
    with pytest.raises(Exit):
        change(Context(), env="nowhere", password="p4ss-word-xyz", fail="lakehouse")
    (rec,) = records(project)
    assert rec["environment"] == "nowhere" and rec["arguments"]["password"] == MASK


def test_audit_log_is_private(project: Path) -> None:
    change(Context(), env="dev")
    assert audit_path(project).stat().st_mode & 0o077 == 0


def test_secrets_generate_is_audited(project: Path) -> None:
    from lakehouse_tasks.tasks.secrets import generate

    write_env(project, "dev", {"MINIO_ROOT_PASSWORD": "CHANGE_THIS"})
    generate(Context(), env="dev", json_=True)
    (rec,) = records(project)
    assert rec["task"] == "secrets.generate" and rec["result"] == "ok"
    generated = (project / "env" / "dev.local.env").read_text()
    value = generated.split("MINIO_ROOT_PASSWORD=", 1)[1].split()[0]
    assert value not in audit_path(project).read_text()
    # invoke's get_arguments() pops the help texts it hands out: ask a copy.
    assert {a.name for a in copy.deepcopy(generate).get_arguments()} >= {"env", "rotate", "json_"}


def test_read_records_filters_and_skips_damaged_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    base = dict(user="u", host="h", arguments={}, exit_code=0, duration_s=1.0, commit="")
    old = AuditRecord(
        time="2026-01-01T00:00:00+00:00", environment="dev", task="deploy", result="ok", **base
    )  # type: ignore[arg-type]
    new = AuditRecord(
        time="2026-11-02T00:00:00+00:00",
        environment="prod",
        task="backup.create",
        result="failed",
        **base,
    )  # type: ignore[arg-type]
    path.write_text(json.dumps(old.to_dict()) + "\n{not json\n" + json.dumps(new.to_dict()) + "\n")
    assert [r.task for r in read_records(path)] == ["deploy", "backup.create"]
    assert [r.task for r in read_records(path, environment="prod")] == ["backup.create"]
    assert [r.task for r in read_records(path, task="backup")] == ["backup.create"]
    since = parse_since("2026-11-01")
    assert [r.task for r in read_records(path, since=since)] == ["backup.create"]


def test_parse_since_forms() -> None:
    now = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)
    assert parse_since("24h", now=now) == now - dt.timedelta(hours=24)
    assert parse_since("7d", now=now) == now - dt.timedelta(days=7)
    assert parse_since("2026-11-01") == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_since("") is None
    with pytest.raises(LakehouseError, match="duration"):
        parse_since("yesterday")


def test_audit_task_shows_records(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lakehouse_tasks.tasks.audit import audit

    change(Context(), env="dev", note="one")
    with pytest.raises(Exit):
        change(Context(), env="dev", fail="refused")
    capsys.readouterr()
    audit(Context(), env="dev", json_=True)
    data = json.loads(capsys.readouterr().out)
    assert [d["result"] for d in data] == ["ok", "refused"]
    audit(Context(), task="demo.change")
    out = capsys.readouterr().out
    assert "demo.change" in out and "refused (7)" in out
