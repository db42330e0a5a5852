"""`invoke smoke` on the real-application rehearsal tier, on a real engine.

One dev stack (tests/conftest.py ``real_app_stack``) runs real Spark 3.5.6 (master and worker),
a real Hive metastore (2.3.9, on the real PostgreSQL stand-in) and a real S3 API (moto behind
MinIO's interface); Trino, Superset, Airflow, the ingestor and dbt are stand-ins there. The
smoke check must pass every real hop, report the others "not rehearsed", leave nothing behind,
and fail naming the hop when a real service is stopped or misconfigured. Tests that break a
service restore it before they end.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks.smoke.context import Services
from lakehouse_tasks.smoke.hms import MetastoreClient
from lakehouse_tasks.smoke.runner import RUN_PREFIX

pytestmark = pytest.mark.engine

REAL_HOPS = ("object-storage", "metastore", "spark")


def run_smoke(
    project: Any, capsys: pytest.CaptureFixture[str], *hops: str
) -> tuple[int, dict[str, Any]]:
    from lakehouse_tasks.tasks.smoke import smoke

    code = 0
    try:
        smoke(
            Context(),
            env="dev",
            rehearsal=True,
            env_file=[project.env_file],
            hop=list(hops),
            json_=True,
        )
    except Exit as exc:
        code = exc.code
    return code, json.loads(capsys.readouterr().out)


def services(project: Any) -> Services:
    return Services.of_project(project.compose.project_name)


def container(project: Any, service: str) -> str:
    info = services(project).get(service)
    assert info is not None, service
    return info.container_id


def wait_healthy(project: Any, service: str, timeout: float = 300) -> None:
    cid = container(project, service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", cid],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if status == "healthy":
            return
        time.sleep(2)
    pytest.fail(f"{service} did not become healthy again within {timeout} s")


def s3(project: Any) -> Any:
    from lakehouse_tasks.smoke.context import SmokeContext
    from lakehouse_tasks.smoke.hops import s3_client

    ctx = SmokeContext("dev", project.env.get, services(project), "x")
    return s3_client(ctx)


def test_real_spark_runs_its_own_version_and_ui_as_uid_185(real_app_stack: Any) -> None:
    master = container(real_app_stack, "spark-master")
    version = subprocess.run(
        ["docker", "exec", master, "/opt/spark/bin/spark-submit", "--version"],
        capture_output=True,
        text=True,
    )
    assert "version 3.5.6" in version.stdout + version.stderr
    page = subprocess.run(
        ["docker", "exec", master, "curl", "-fsS", "http://localhost:8080/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Spark Master at spark://spark-master:7077" in page
    uid = subprocess.run(
        ["docker", "exec", master, "id", "-u"], capture_output=True, text=True, check=True
    )
    assert uid.stdout.strip() == "185"


def test_smoke_passes_every_real_hop_and_never_passes_a_stand_in(
    real_app_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_smoke(real_app_stack, capsys)
    verdicts = {h["hop"]: h for h in report["hops"]}
    for hop in REAL_HOPS:
        assert verdicts[hop]["verdict"] == "passed", verdicts[hop]
    assert "Spark 3.5.6" in verdicts["spark"]["detail"]
    assert "metastore schema" in verdicts["spark"]["detail"]  # Spark listed the real HMS
    for hop in ("trino", "spark-table", "superset", "airflow", "ingestor", "dbt"):
        assert verdicts[hop]["verdict"] == "not rehearsed", verdicts[hop]
    assert code == 0 and report["ok"]
    assert all(c["ok"] for c in report["cleanup"])
    # Nothing of the run is left: no scratch schema, no canary object.
    host, port = services(real_app_stack).endpoint("hive-metastore", 9083)
    with MetastoreClient(host, port) as hms:
        assert not [d for d in hms.get_all_databases() if d.startswith(RUN_PREFIX)]
    left = s3(real_app_stack).list_objects_v2(Bucket="lakehouse", Prefix="_lakehouse-smoke/")
    assert left.get("KeyCount", 0) == 0


def test_object_storage_hop_fails_naming_a_missing_bucket(
    real_app_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = s3(real_app_stack)
    client.delete_bucket(Bucket="lakehouse")
    try:
        code, report = run_smoke(real_app_stack, capsys, "object-storage")
    finally:
        client.create_bucket(Bucket="lakehouse")
    hop = report["hops"][0]
    assert code == 8 and hop["verdict"] == "failed"
    assert hop["cause"] == "bucket 'lakehouse' does not exist; run the minio-init job (redeploy)."


def test_each_real_hop_fails_naming_its_stopped_service(
    real_app_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for hop, service, cause in (
        ("object-storage", "minio", "minio is not running (exited); start it or redeploy."),
        (
            "metastore",
            "hive-metastore",
            "hive-metastore is not running (exited); start it or redeploy.",
        ),
        ("spark", "spark-master", "spark-master is not running (exited); start it or redeploy."),
    ):
        cid = container(real_app_stack, service)
        subprocess.run(["docker", "stop", "-t", "5", cid], capture_output=True, check=True)
        try:
            code, report = run_smoke(real_app_stack, capsys, hop)
        finally:
            subprocess.run(["docker", "start", cid], capture_output=True, check=True)
            wait_healthy(real_app_stack, service)
        assert code == 8, (hop, report)
        assert report["hops"][0]["cause"] == cause
        if service == "minio":  # moto keeps its buckets in memory: give them back
            client = s3(real_app_stack)
            for bucket in ("lakehouse", "warehouse", "raw"):
                client.create_bucket(Bucket=bucket)


def test_spark_hop_fails_when_no_worker_is_alive(
    real_app_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = container(real_app_stack, "spark-worker-1")
    subprocess.run(["docker", "stop", "-t", "5", worker], capture_output=True, check=True)
    try:
        # The master drops a worker whose connection closed; give it a moment.
        time.sleep(5)
        code, report = run_smoke(real_app_stack, capsys, "spark")
    finally:
        subprocess.run(["docker", "start", worker], capture_output=True, check=True)
        wait_healthy(real_app_stack, "spark-worker-1")
    hop = report["hops"][0]
    assert code == 8 and hop["verdict"] == "failed"
    # The worker stopped is either not running (exact) or, when the smoke checked the master
    # first, no ALIVE worker is registered: both name the Spark hop and the worker.
    assert "spark-worker-1" in hop["cause"], hop


def test_real_images_are_cached_by_their_inputs(real_app_images: dict[str, str]) -> None:
    from lakehouse_tasks import rehearsal_real

    messages: list[str] = []
    again = rehearsal_real.build_real_images(log=messages.append)
    assert again == real_app_images
    assert set(rehearsal_real.LAST_BUILD.values()) == {"cached"}
    assert all(" cached " in m for m in messages), messages  # looked up, nothing built
