"""`security` on a running container: root user and writable root filesystem are flagged."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse_tasks.checks import Status
from lakehouse_tasks.project import Project, open_project
from lakehouse_tasks.security import CHECK_ROOTFS, CHECK_USER, security_report
from tests.conftest import unique_project_name

pytestmark = pytest.mark.engine

COMPOSE = """
services:
  loose:
    image: lakehouse-rehearsal/busybox:rehearsal
  tight:
    image: lakehouse-rehearsal/busybox:rehearsal
    user: "65534"
    read_only: true
    tmpfs: [/tmp]
    security_opt: ["no-new-privileges:true"]
    cap_drop: [ALL]
"""


@pytest.fixture
def running(
    docker_engine: str, standin_images: dict[str, str], lakehouse_project: Path
) -> Iterator[Project]:
    name = unique_project_name("sec")
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text(COMPOSE)
    (lakehouse_project / "env" / "dev.env").write_text(f"COMPOSE_PROJECT_NAME={name}\n")
    project = open_project("dev", strict=False, root=lakehouse_project)
    try:
        project.compose.compose("up", "-d", what="compose up")
        yield project
    finally:
        subprocess.run(
            [*project.compose.compose_cmd, "down", "-v", "--remove-orphans"],
            capture_output=True,
        )


def test_running_containers_flag_root_and_writable_rootfs(running: Project) -> None:
    report = security_report(running)
    assert report.containers_inspected == 2
    seen = {
        (f.group, f.check.name): f.status
        for f in report.findings
        if f.origin.startswith("container ")
    }
    assert seen[("loose", CHECK_USER)] is Status.FAIL
    assert seen[("loose", CHECK_ROOTFS)] is Status.FAIL
    assert seen[("tight", CHECK_ROOTFS)] is Status.PASS
    # The image is present locally: its real Config.User ("" = root) judges the config too.
    config = {(f.group, f.check.name): f for f in report.findings if f.origin == "config"}
    assert config[("loose", CHECK_USER)].status is Status.FAIL
    assert config[("tight", CHECK_USER)].status is Status.PASS
    assert report.status is Status.FAIL
