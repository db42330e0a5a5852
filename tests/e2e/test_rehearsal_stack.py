"""The first end-to-end proof: the dev environment on the stand-ins, on a real engine.

The shared dev stack (tests/conftest.py) is brought up from nothing by the tool's own deploy,
with the real dev values (limits, restart policy, logging) and short health timings; these
tests only read it. The harness takes it down afterwards and fails the run if anything is left.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from lakehouse_tasks.environment import read_env_file
from lakehouse_tasks.schema import parse_size
from tests.conftest import REPO

pytestmark = pytest.mark.engine

ONESHOTS = {"minio-init", "airflow-init"}
PREFIX = {
    "minio": "MINIO",
    "minio-init": "MINIO_INIT",
    "metastore-db": "METASTORE_DB",
    "superset-db": "SUPERSET_DB",
    "airflow-db": "AIRFLOW_DB",
    "hive-metastore": "HIVE_METASTORE",
    "spark-master": "SPARK_MASTER",
    "spark-worker-1": "SPARK_WORKER",
    "trino": "TRINO",
    "superset": "SUPERSET",
    "airflow-init": "AIRFLOW_INIT",
    "airflow-webserver": "AIRFLOW_WEBSERVER",
    "airflow-scheduler": "AIRFLOW_SCHEDULER",
    "ingestor": "INGESTOR",
    "dbt": "DBT",
}


def inspect_project(project_name: str) -> dict[str, dict[str, Any]]:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project_name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert ids, f"no container of {project_name}"
    data = json.loads(
        subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
    )
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in data}


@pytest.fixture(scope="module")
def containers(shared_dev_stack: Any) -> dict[str, dict[str, Any]]:
    return inspect_project(shared_dev_stack.compose.project_name)


def test_every_service_is_up_and_every_oneshot_exited_zero(containers: dict[str, Any]) -> None:
    assert set(containers) == set(PREFIX), "dev runs 15 containers: spark-worker-2 is off"
    for name, c in containers.items():
        state = c["State"]
        if name in ONESHOTS:
            assert state["Status"] == "exited" and state["ExitCode"] == 0, name
        else:
            assert state["Status"] == "running", name
            assert state["Health"]["Status"] == "healthy", name


def test_limits_and_reservations_come_from_env_dev(containers: dict[str, Any]) -> None:
    dev = read_env_file(REPO / "env" / "dev.env")
    for name, c in containers.items():
        host = c["HostConfig"]
        prefix = PREFIX[name]
        assert host["NanoCpus"] == round(float(dev[f"{prefix}_CPU_LIMIT"]) * 1e9), name
        assert host["Memory"] == parse_size(dev[f"{prefix}_MEMORY_LIMIT"]), name
        assert host["MemoryReservation"] == parse_size(dev[f"{prefix}_MEMORY_RESERVATION"]), name


def test_restart_policy_and_log_options_of_the_environment(containers: dict[str, Any]) -> None:
    dev = read_env_file(REPO / "env" / "dev.env")
    for name, c in containers.items():
        host = c["HostConfig"]
        assert host["RestartPolicy"]["Name"] == dev["RESTART_POLICY"], name
        assert host["LogConfig"]["Type"] == "json-file", name
        assert host["LogConfig"]["Config"] == {
            "max-size": dev["LOG_MAX_SIZE"],
            "max-file": dev["LOG_MAX_FILE"],
        }, name


def test_healthchecks_use_the_environment_timings(
    containers: dict[str, Any], shared_dev_stack: Any
) -> None:
    from lakehouse_tasks.schema import parse_duration

    # The shared stack layers short health timings over dev's (tests/conftest.py FAST_HEALTH).
    interval = parse_duration(shared_dev_stack.env.values["HEALTHCHECK_INTERVAL"])
    for name, c in containers.items():
        if name in ONESHOTS:
            continue
        health = c["Config"]["Healthcheck"]
        assert health["Interval"] == int(interval * 1e9), name


def test_state_lives_in_named_volumes_of_the_project(
    containers: dict[str, Any], shared_dev_stack: Any
) -> None:
    project = shared_dev_stack.compose.project_name
    for name in ("minio", "metastore-db", "hive-metastore", "superset"):
        mounts = [m for m in containers[name]["Mounts"] if m["Type"] == "volume"]
        assert mounts, name
        assert all(m["Name"].startswith(f"{project}_") for m in mounts), name


def test_health_fills_the_url_column_of_the_built_in_interfaces(shared_dev_stack: Any) -> None:
    """Issue 14, item 9: rows are keyed by service, and so are the access URLs now."""
    from lakehouse_tasks.health import take_snapshot
    from lakehouse_tasks.health_view import health_rows

    rows = {r["service"]: r for r in health_rows(take_snapshot(shared_dev_stack))}
    for service in ("minio", "spark-master", "trino", "superset", "airflow-webserver"):
        assert str(rows[service]["url"]).startswith("http://"), (service, rows[service])
    assert rows["metastore-db"]["url"] in ("", None, "-")
