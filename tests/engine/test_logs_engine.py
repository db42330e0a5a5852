"""`logs` against a running synthetic stand-in project: prefixes, --tail, scrubbing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.environment import MASK
from lakehouse_tasks.logs import stream_logs
from lakehouse_tasks.project import Project, open_project
from tests.conftest import unique_project_name

pytestmark = pytest.mark.engine

SECRET = "engine-test-secret-9f3a"

COMPOSE = """
services:
  alpha:
    image: lakehouse-rehearsal/busybox:rehearsal
    environment:
      STANDIN_SERVICE: alpha
      STANDIN_FAULT: "${DEMO_PASSWORD}"
  beta:
    image: lakehouse-rehearsal/busybox:rehearsal
    environment:
      STANDIN_SERVICE: beta
"""


@pytest.fixture
def running(
    docker_engine: str, standin_images: dict[str, str], lakehouse_project: Path
) -> Iterator[Project]:
    name = unique_project_name("logs")
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text(COMPOSE)
    (lakehouse_project / "env" / "dev.env").write_text(
        f"COMPOSE_PROJECT_NAME={name}\nDEMO_PASSWORD={SECRET}\n"
    )
    project = open_project("dev", strict=False, root=lakehouse_project)
    try:
        project.compose.compose("up", "-d", "--wait", what="compose up")
        yield project
    finally:
        subprocess.run(
            [*project.compose.compose_cmd, "down", "-v", "--remove-orphans"],
            capture_output=True,
        )


def _lines(project: Project, **kwargs: Any) -> list[Any]:
    return list(stream_logs(project, kwargs.pop("services", []), **kwargs))


def test_lines_carry_service_prefixes_and_secrets_are_masked(running: Project) -> None:
    lines = _lines(running)
    assert {line.service for line in lines} == {"alpha", "beta"}
    assert all(line.container in ("alpha-1", "beta-1") for line in lines)
    alpha = [line.text for line in lines if line.service == "alpha"]
    assert any(MASK in text for text in alpha)  # the stand-in logs its unknown fault value
    assert not any(SECRET in line.text for line in lines)


def test_tail_one_limits_each_service_to_one_line(running: Project) -> None:
    lines = _lines(running, tail="1")
    assert sorted(line.service for line in lines) == ["alpha", "beta"]
    only_beta = _lines(running, services=["beta"], tail="1")
    assert [line.service for line in only_beta] == ["beta"]


def test_logs_task_prints_plain_prefixed_lines(
    running: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke import Context

    from lakehouse_tasks.tasks.logs import logs

    logs(Context(), env="dev", service=["alpha,beta"], tail="1")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert {line.split("|", 1)[0].strip() for line in out} == {"alpha-1", "beta-1"}
    assert SECRET not in "\n".join(out)
