"""Upgrades against a real engine, on a small synthetic stack shaped like the processing layer
(a Spark master, two workers, a Trino whose image comes from a variable)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Context

from lakehouse_tasks.backends.compose.upgrade import plan_upgrade
from lakehouse_tasks.deploy import deploy_stack
from lakehouse_tasks.health import parse_engine_time
from lakehouse_tasks.project import Project, open_project
from lakehouse_tasks.tasks.deploy import deploy as deploy_task
from lakehouse_tasks.testing import write_env
from tests.conftest import remove_project, unique_project_name

pytestmark = [pytest.mark.engine, pytest.mark.slow]

BUSYBOX = "lakehouse-rehearsal/busybox:rehearsal"
RETAGGED = "lakehouse-rehearsal/busybox:upgrade-v2"

# Each worker becomes healthy 3 s after it starts, so "one at a time" is visible in the times.
COMPOSE = """
x-svc: &svc
  image: {bb}
  entrypoint: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 100000"]
  stop_grace_period: 1s
  healthcheck:
    test: ["CMD", "test", "-f", "/tmp/ready"]
    interval: 1s
    timeout: 2s
    retries: 30
services:
  spark-master:
    <<: *svc
  spark-worker-1:
    <<: *svc
    environment: {{SPARK_WORKER_MEMORY: "${{SPARK_WORKER_MEMORY:-1g}}"}}
    depends_on: {{spark-master: {{condition: service_healthy}}}}
  spark-worker-2:
    <<: *svc
    environment: {{SPARK_WORKER_MEMORY: "${{SPARK_WORKER_MEMORY:-1g}}"}}
    depends_on: {{spark-master: {{condition: service_healthy}}}}
  trino:
    <<: *svc
    image: ${{TRINO_IMAGE:-{bb}}}
"""


@pytest.fixture
def stack(
    docker_engine: str, standin_images: dict[str, str], lakehouse_project: Path
) -> Iterator[dict[str, Any]]:
    root = lakehouse_project
    (root / "compose" / "docker-compose.yaml").write_text(COMPOSE.format(bb=BUSYBOX))
    name = unique_project_name("upgrade")
    subprocess.run(["docker", "tag", BUSYBOX, RETAGGED], check=True)
    try:
        yield {"root": root, "name": name}
    finally:
        remove_project(name)
        subprocess.run(["docker", "rmi", RETAGGED], capture_output=True, check=False)


def _open(stack: dict[str, Any], **values: str) -> Project:
    write_env(stack["root"], "dev", {"COMPOSE_PROJECT_NAME": stack["name"], **values})
    return open_project("dev", strict=False)


def _inspect(project: Project) -> dict[str, dict[str, Any]]:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project.compose.project_name}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    data = json.loads(subprocess.check_output(["docker", "inspect", *ids]))
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in data}


def test_upgrade_recreates_only_what_changed_and_rolls_the_workers(
    stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    project = _open(stack)
    deploy_stack(project, skip_backup=True, skip_preflight=True, timeout=120)
    first = _inspect(project)

    # 1. a new image tag for trino: the dry run names exactly trino, with the reason
    project = _open(stack, TRINO_IMAGE=RETAGGED)
    plan = plan_upgrade(project)
    assert plan.services("recreate") == ["trino"]
    [change] = plan.changed
    assert change.reasons == (f"image {BUSYBOX} -> {RETAGGED}",)
    capsys.readouterr()
    deploy_task(Context(), env="dev", dry_run=True, json_=True)
    dry = json.loads(capsys.readouterr().out)
    assert dry["containers"]["recreate"] == ["trino"]
    assert dry["containers"]["create"] == [] and dry["containers"]["remove"] == []
    assert _inspect(project)["trino"]["Id"] == first["trino"]["Id"]  # the dry run changed nothing

    result = deploy_stack(project, skip_backup=True, skip_preflight=True, timeout=120)
    assert result.containers["recreated"] == ["trino"]
    second = _inspect(project)
    assert second["trino"]["Config"]["Image"] == RETAGGED
    for service in ("spark-master", "spark-worker-1", "spark-worker-2"):
        assert second[service]["Id"] == first[service]["Id"]
        assert second[service]["State"]["StartedAt"] == first[service]["State"]["StartedAt"]

    # 2. both workers' configuration changes: they are updated one at a time
    project = _open(stack, TRINO_IMAGE=RETAGGED, SPARK_WORKER_MEMORY="2g")
    plan = plan_upgrade(project)
    assert plan.services("recreate") == ["spark-worker-1", "spark-worker-2"]
    assert plan.rolling == (("spark-worker-1", "spark-worker-2"),)
    assert all(c.reasons[0].startswith("configuration changed") for c in plan.changed)
    result = deploy_stack(project, skip_backup=True, skip_preflight=True, timeout=120)
    assert result.containers["recreated"] == ["spark-worker-1", "spark-worker-2"]
    third = _inspect(project)
    # A worker cannot be healthy before 3 s after its start (its /tmp/ready), and the engine
    # keeps only the last five healthcheck results, so the start times are the evidence.
    worker1_started = parse_engine_time(third["spark-worker-1"]["State"]["StartedAt"])
    worker2_started = parse_engine_time(third["spark-worker-2"]["State"]["StartedAt"])
    assert worker1_started is not None and worker2_started is not None
    assert (worker2_started - worker1_started).total_seconds() >= 3.0
    assert third["spark-worker-1"]["State"]["Health"]["Status"] == "healthy"
    for service in ("spark-master", "trino"):
        assert third[service]["Id"] == second[service]["Id"]
    assert plan_upgrade(project).changed == []  # nothing left to do
