"""Deploy without an engine: the plan, compose error classification, judging a service."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.backends.compose.deploy import judge, up_arguments
from lakehouse_tasks.backends.compose.plan import plan_deploy
from lakehouse_tasks.backends.compose.problems import classify_compose_error, service_of_container
from lakehouse_tasks.deploy import DeployOptions, resolve_timeout
from lakehouse_tasks.errors import ConfigError
from lakehouse_tasks.health import ServiceHealth
from lakehouse_tasks.lock import lock_path
from lakehouse_tasks.project import open_project
from lakehouse_tasks.stack import Stack, with_dependencies
from lakehouse_tasks.testing import write_env

CONFIG: dict[str, Any] = {
    "name": "lakehouse-dev",
    "services": {
        "minio": {
            "image": "minio:1",
            "labels": {"io.lakehouse.layer": "1"},
            "volumes": [{"type": "volume", "source": "minio-data", "target": "/data"}],
        },
        "minio-init": {
            "image": "mc:1",
            "labels": {"io.lakehouse.layer": "1", "io.lakehouse.oneshot": "true"},
            "depends_on": {"minio": {"condition": "service_healthy"}},
        },
        "trino": {
            "image": "trino:1",
            "labels": {"io.lakehouse.layer": "4"},
            "depends_on": {"minio-init": {"condition": "service_completed_successfully"}},
        },
        "superset": {"image": "superset:1", "labels": {"io.lakehouse.layer": "5"}},
    },
    "volumes": {"minio-data": {"name": "lakehouse-dev_minio-data"}},
}


@pytest.fixture
def project(lakehouse_project: Path) -> Any:
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text("services: {}\n")
    write_env(lakehouse_project, "dev", {"DEPLOY_TIMEOUT": "5m"})
    opened = open_project("dev", root=lakehouse_project)
    opened._stack = Stack.from_config(CONFIG)  # no `compose config` call
    return opened


def test_dry_run_plan_names_everything_and_the_exact_command(project: Any) -> None:
    plan = plan_deploy(project, DeployOptions(timeout=120))
    assert plan.services == ("minio", "superset", "trino")
    assert plan.oneshots == ("minio-init",)
    assert plan.volumes == ("lakehouse-dev_minio-data",)
    assert plan.layers[0] == ("minio", "superset")
    assert plan.compose_files[0].endswith("compose/docker-compose.yaml")
    (command,) = plan.commands
    assert "compose" in command and "create --remove-orphans --no-build" in command
    assert "--wait" not in command
    assert "-p lakehouse-dev" in command or "--project-name lakehouse-dev" in command
    assert any("120s" in step for step in plan.steps)
    assert not lock_path(project.env.root, "dev").exists()  # planning changes nothing


def test_plan_for_some_services_includes_their_dependencies(project: Any) -> None:
    plan = plan_deploy(project, DeployOptions(services=("trino",), pull=True))
    assert plan.services == ("minio", "trino") and plan.oneshots == ("minio-init",)
    assert plan.commands[0].endswith("--pull always trino")


def test_unknown_service_is_bad_input(project: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        with_dependencies(project.stack, ["nope"])
    assert "known services" in raised.value.message


def test_build_only_when_a_built_image_is_missing() -> None:
    config = {"services": {"ingestor": {"image": "ingestor:dev", "build": {"context": "."}}}}
    stack = Stack.from_config(config)
    assert "--no-build" in up_arguments(stack, [], pull=False)
    assert "--no-build" not in up_arguments(stack, [], pull=False, missing_images=["ingestor:dev"])


def test_timeout_from_flag_then_environment_then_default(project: Any) -> None:
    assert resolve_timeout(project, "90") == 90
    assert resolve_timeout(project, None) == 300  # DEPLOY_TIMEOUT=5m
    with pytest.raises(ConfigError):
        resolve_timeout(project, "soon")


# ---- compose errors -----------------------------------------------------------------------
def test_dependency_unhealthy_names_the_service() -> None:
    stderr = (
        " Container lakehouse-dev-minio-1  Waiting\n"
        "dependency failed to start: container lakehouse-dev-minio-1 is unhealthy\n"
    )
    (problem,) = classify_compose_error(stderr, "lakehouse-dev", ["minio"])
    assert problem.service == "minio" and problem.reason == "is unhealthy"


def test_oneshot_that_did_not_complete_names_the_service() -> None:
    stderr = 'service "minio-init" didn\'t complete successfully: exit 3\n'
    (problem,) = classify_compose_error(stderr, "lakehouse-dev", ["minio-init"])
    assert problem.service == "minio-init" and "exit 3" in problem.reason


def test_other_errors_keep_compose_last_error_line() -> None:
    stderr = (
        "Error response from daemon: driver failed programming external connectivity on "
        "endpoint lakehouse-dev-trino-1: Bind for 0.0.0.0:8086 failed: port is already allocated\n"
    )
    (problem,) = classify_compose_error(stderr, "lakehouse-dev", ["trino"])
    assert problem.service == "trino"
    assert "port is already allocated" in problem.reason
    (unnamed,) = classify_compose_error("Error: pull access denied for x\n", "p", ["a"])
    assert unnamed.service is None


def test_container_names_map_back_to_services() -> None:
    assert service_of_container("lakehouse-dev-spark-worker-1-1", "lakehouse-dev") == (
        "spark-worker-1"
    )
    assert service_of_container("custom-name", "lakehouse-dev") == "custom-name"


# ---- judging one service ------------------------------------------------------------------
START = _dt.datetime(2025, 1, 1, 12, 0, tzinfo=_dt.UTC)
FRESH = "2025-01-01T12:00:05.123456789Z"
OLD = "2025-01-01T11:00:00Z"


def row(**kw: Any) -> ServiceHealth:
    return ServiceHealth(service=kw.pop("service", "svc"), started_at=kw.pop("at", FRESH), **kw)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"state": "missing"}, ("waiting", False, "")),
        ({"state": "running", "health": "starting"}, ("starting", False, "")),
        ({"state": "running", "health": "healthy"}, ("healthy", True, "")),
        ({"state": "running", "health": "none"}, ("running", True, "")),
        ({"state": "exited", "exit_code": 0, "oneshot": True}, ("exited (0)", True, "")),
    ],
)
def test_ready_and_waiting_states(fields: dict[str, Any], expected: tuple[str, bool, str]) -> None:
    assert judge(row(**fields), deploy_started=START, up_finished=False) == expected


def test_failures() -> None:
    failed = judge(
        row(state="exited", exit_code=3, oneshot=True), deploy_started=START, up_finished=False
    )
    assert failed[2] == "one-shot exited with code 3"
    unhealthy = judge(
        row(state="running", health="unhealthy"), deploy_started=START, up_finished=True
    )
    assert unhealthy[0] == "unhealthy" and unhealthy[2]
    looping = judge(
        row(state="restarting", restart_count=3), deploy_started=START, up_finished=False
    )
    assert "crash-looping" in looping[2]
    exited = judge(row(state="exited", exit_code=137), deploy_started=START, up_finished=True)
    assert exited[2] == "exited with code 137"


def test_old_state_is_not_held_against_a_service_until_compose_is_done() -> None:
    stale = row(state="exited", exit_code=3, oneshot=True, at=OLD)
    assert judge(stale, deploy_started=START, up_finished=False) == ("waiting", False, "")
    assert judge(stale, deploy_started=START, up_finished=True)[2]
