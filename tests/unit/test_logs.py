"""Log lines: prefix parsing, consistent colours, scrubbing, argument validation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.environment import MASK, load_environment
from lakehouse_tasks.errors import ConfigError
from lakehouse_tasks.logs import (
    LogLine,
    logs_arguments,
    parse_log_line,
    render_plain,
    service_colour,
    split_services,
    stream_logs,
    validate_services,
)
from lakehouse_tasks.logs_view import render_coloured
from lakehouse_tasks.testing import FakeBackend, write_env

SECRET = "Zq8-very-secret-password"


def test_parse_compose_prefix() -> None:
    line = parse_log_line("spark-worker-1    | 2026-11-26T03:23:57.4Z started | ok")
    assert line == LogLine("spark-worker-1", "2026-11-26T03:23:57.4Z started | ok")
    assert line.service == "spark-worker"
    assert parse_log_line("no prefix here") == LogLine("", "no prefix here")


def test_colours_are_stable_per_service() -> None:
    assert service_colour("minio") == service_colour("minio")
    colours = {service_colour(s) for s in ("minio", "trino", "superset", "airflow-db", "dbt")}
    assert len(colours) > 1
    text = render_coloured(LogLine("minio-1", "hello"), width=10)
    assert text.plain == "minio-1    | hello"
    assert text.spans[0].style == service_colour("minio")
    assert text.spans[0].end == len("minio-1    | ")  # only the prefix is coloured


def test_plain_rendering_is_compose_format() -> None:
    assert render_plain(LogLine("minio-1", "hi"), width=9) == "minio-1   | hi"
    assert render_plain(LogLine("", "compose says")) == "compose says"


def test_services_from_repeated_flags_and_comma_lists() -> None:
    assert split_services(["minio,trino", "trino", " dbt "]) == ["minio", "trino", "dbt"]
    assert validate_services(["minio"], ["minio", "trino"]) == ["minio"]
    with pytest.raises(ConfigError, match="Unknown service nope; services of this stack"):
        validate_services(["nope"], ["minio", "trino"])


def test_logs_arguments() -> None:
    assert logs_arguments(["minio"], follow=True, since="10m", tail="5") == [
        "--no-color",
        "--timestamps",
        "--follow",
        "--since",
        "10m",
        "--tail",
        "5",
        "minio",
    ]
    assert "--since" in logs_arguments([], since="2026-11-01T08:00:00Z")
    with pytest.raises(ConfigError, match="--since"):
        logs_arguments([], since="yesterday")
    with pytest.raises(ConfigError, match="--tail"):
        logs_arguments([], tail="ten")


class _FakeProject:
    def __init__(self, env: Any) -> None:
        self.env = env
        self.stack = type("S", (), {"services": {"minio": None, "trino": None}})()


def test_a_line_holding_a_secret_is_masked(lakehouse_project: Path) -> None:
    (lakehouse_project / "env" / "variables.yaml").write_text(
        "MINIO_ROOT_PASSWORD:\n  type: secret\n  required: true\n"
    )
    write_env(lakehouse_project, "dev", {"MINIO_ROOT_PASSWORD": SECRET})
    env = load_environment("dev")
    backend = FakeBackend(logs=[f"minio-1  | login with {SECRET} ok", "trino-1  | fine"])
    lines = list(stream_logs(_FakeProject(env), ["minio"], tail="1", backend=backend))  # type: ignore[arg-type]
    assert lines[0] == LogLine("minio-1", f"login with {MASK} ok")
    assert all(SECRET not in render_plain(line) for line in lines)
    assert backend.calls == [("log_lines", ["--no-color", "--timestamps", "--tail", "1", "minio"])]


def test_docker_stream_lines_scrubs_strips_ansi_and_reports_failure() -> None:
    from lakehouse_tasks.engine.executor import stream_lines
    from lakehouse_tasks.errors import EngineError

    cmd = ["sh", "-c", f"printf '\\033[2Ka-1 | {SECRET}\\nb-1 | two\\n'"]
    out = list(stream_lines(cmd, scrub=lambda t: t.replace(SECRET, MASK)))
    assert out == [f"a-1 | {MASK}", "b-1 | two"]
    with pytest.raises(EngineError, match=re.escape(MASK)):
        list(
            stream_lines(
                ["sh", "-c", f"echo boom {SECRET} >&2; exit 3"],
                scrub=lambda t: t.replace(SECRET, MASK),
            )
        )
