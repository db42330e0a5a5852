"""The engine the suite runs on: compose v2 present, healthchecks working (issue: foundation)."""

from __future__ import annotations

import subprocess
import time

import pytest

from lakehouse_tasks.engine.client import MIN_COMPOSE_VERSION, Engine, parse_version
from tests.conftest import unique_project_name

pytestmark = pytest.mark.engine


def test_compose_v2_answers_and_meets_the_documented_minimum(docker_engine: str) -> None:
    info = Engine().info()
    assert parse_version(info.compose_version)[:2] >= MIN_COMPOSE_VERSION
    assert info.server_version == docker_engine
    assert info.cpus >= 1 and info.memory_bytes > 0


def test_a_container_with_a_healthcheck_goes_healthy_and_is_removed(
    standin_images: dict[str, str],
) -> None:
    name = unique_project_name("ready")
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"com.docker.compose.project={name}",
            "--health-cmd",
            "wget -q -O /dev/null http://127.0.0.1:8080/health",
            "--health-interval",
            "1s",
            "--health-retries",
            "3",
            "-e",
            "STANDIN_HTTP_PORTS=8080",
            "-e",
            "STANDIN_HTTP_PATHS_8080=/health",
            standin_images["busybox"],
        ],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline:
            status = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Health.Status}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if status == "healthy":
                break
            time.sleep(0.5)
        assert status == "healthy"
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=True)
    gone = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name=^{name}$"], capture_output=True, text=True
    ).stdout.strip()
    assert gone == ""
