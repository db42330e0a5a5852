"""`invoke smoke` on the real-application rehearsal tier, on a real engine.

One dev stack (tests/conftest.py ``real_app_stack``) runs real Spark 3.5.6 (master and worker),
a real Hive metastore (2.3.9, on the real PostgreSQL stand-in), a real S3 API (moto behind
MinIO's interface), real Superset 5.0.0 and real Airflow 2.11.0 (webserver and scheduler,
their migrations on the real PostgreSQL stand-ins); Trino, the ingestor and dbt are stand-ins
there. The smoke check must pass every real hop, report the others "not rehearsed" (Superset's
connection to Trino among them), leave nothing behind, and fail naming the hop when a real
service is stopped or misconfigured. Tests that break a service restore it before they end.
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
from tests.conftest import REAL_TIER_TIMEOUT_S

pytestmark = [pytest.mark.engine, pytest.mark.timeout(REAL_TIER_TIMEOUT_S)]

REAL_HOPS = ("object-storage", "metastore", "spark", "superset", "airflow")
SUPERSET_LOGIN_MARK = "<title>Superset</title>"  # Flask-AppBuilder's login page, Superset's title
AIRFLOW_LOGIN_MARK = "<title>Sign In - Airflow"


def run_smoke(
    project: Any, capsys: pytest.CaptureFixture[str], *hops: str, extra_env_file: str = ""
) -> tuple[int, dict[str, Any]]:
    from lakehouse_tasks.tasks.smoke import smoke

    code = 0
    try:
        smoke(
            Context(),
            env="dev",
            rehearsal=True,
            env_file=[project.env_file, *([extra_env_file] if extra_env_file else [])],
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
    assert verdicts["superset"]["detail"] == "login page, admin login and CSRF token passed"
    assert "DAG lakehouse_daily present" in verdicts["airflow"]["detail"]
    for hop in ("trino", "spark-table", "superset-trino", "ingestor", "dbt"):
        assert verdicts[hop]["verdict"] == "not rehearsed", verdicts[hop]
    # Superset's Trino connection did not run (Trino is a stand-in): said so, never passed.
    assert "trino is a rehearsal stand-in" in verdicts["superset-trino"]["detail"]
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
        ("superset", "superset", "superset is not running (exited); start it or redeploy."),
        (
            "airflow",
            "airflow-webserver",
            "airflow-webserver is not running (exited); start it or redeploy.",
        ),
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


def exec_out(project: Any, service: str, *argv: str) -> str:
    done = subprocess.run(
        ["docker", "exec", container(project, service), *argv], capture_output=True, text=True
    )
    return done.stdout + done.stderr


def http_get(project: Any, service: str, port: int, path: str, auth: str = "") -> tuple[int, str]:
    import base64
    import urllib.error
    import urllib.request

    host, published = services(project).endpoint(service, port)
    request = urllib.request.Request(f"http://{host}:{published}{path}")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_real_superset_runs_its_own_version_and_login_page_as_its_user(
    real_app_stack: Any,
) -> None:
    assert "5.0.0" in exec_out(real_app_stack, "superset", "superset", "version")
    assert exec_out(real_app_stack, "superset", "id", "-un").strip() == "superset"
    status, page = http_get(real_app_stack, "superset", 8088, "/login/")
    assert status == 200
    assert SUPERSET_LOGIN_MARK in page
    # The metadata database really is the PostgreSQL stand-in, migrated by `superset db upgrade`.
    admins = exec_out(
        real_app_stack,
        "superset-db",
        "psql",
        "-U",
        "superset",
        "-d",
        "superset",
        "-tAc",
        "SELECT count(*) FROM ab_user WHERE username = 'admin'",
    )
    assert admins.strip() == "1"


def test_real_airflow_runs_its_own_version_and_login_page_as_uid_50000(
    real_app_stack: Any,
) -> None:
    # `airflow version` prints the version on a line of its own (dev's DEBUG logs around it).
    version = subprocess.run(
        ["docker", "exec", container(real_app_stack, "airflow-webserver"), "airflow", "version"],
        capture_output=True,
        text=True,
    )
    assert "2.11.0" in version.stdout.splitlines(), version
    assert exec_out(real_app_stack, "airflow-scheduler", "id", "-u").strip() == "50000"
    status, page = http_get(real_app_stack, "airflow-webserver", 8080, "/login/")
    assert status == 200 and AIRFLOW_LOGIN_MARK in page
    env = real_app_stack.env.get
    admin = f"{env('AIRFLOW_ADMIN_USER')}:{env('AIRFLOW_ADMIN_PASSWORD')}"
    status, answer = http_get(real_app_stack, "airflow-webserver", 8080, "/api/v1/version", admin)
    assert status == 200 and json.loads(answer)["version"] == "2.11.0", answer
    # The scheduler's own health server (the compose healthcheck's target) answers 200 (with
    # an empty body) while the scheduler's heartbeat is fresh.
    scheduler = container(real_app_stack, "airflow-scheduler")
    probe = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://localhost:8974/health"]
    health = subprocess.run(
        ["docker", "exec", scheduler, *probe],
        capture_output=True,
        text=True,
    )
    assert health.stdout == "200", health


def bad_env_file(project: Any, tmp_path: Any, **values: str) -> str:
    path = tmp_path / "bad.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return str(path)


def test_superset_and_airflow_hops_fail_naming_a_wrong_admin_password(
    real_app_stack: Any, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    wrong = bad_env_file(
        real_app_stack, tmp_path, SUPERSET_ADMIN_PASSWORD="wrong", AIRFLOW_ADMIN_PASSWORD="wrong"
    )
    code, report = run_smoke(real_app_stack, capsys, "superset", "airflow", extra_env_file=wrong)
    verdicts = {h["hop"]: h for h in report["hops"]}
    assert code == 8
    assert verdicts["superset"]["verdict"] == "failed"
    assert verdicts["superset"]["cause"] == (
        "Superset refused the admin login (401); check SUPERSET_ADMIN_USER and "
        "SUPERSET_ADMIN_PASSWORD."
    )
    assert verdicts["airflow"]["verdict"] == "failed"
    assert verdicts["airflow"]["cause"] == (
        "Airflow refused the admin login (401); check AIRFLOW_ADMIN_USER and "
        "AIRFLOW_ADMIN_PASSWORD."
    )


def test_airflow_hop_fails_naming_the_scheduler_when_it_is_stopped(
    real_app_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduler = container(real_app_stack, "airflow-scheduler")
    subprocess.run(["docker", "stop", "-t", "10", scheduler], capture_output=True, check=True)
    try:
        # The webserver reports the scheduler unhealthy once its last heartbeat is older than
        # [scheduler] scheduler_health_check_threshold (30 s by default).
        deadline = time.monotonic() + 120
        while True:
            code, report = run_smoke(real_app_stack, capsys, "airflow")
            if code != 0 or time.monotonic() > deadline:
                break
            time.sleep(10)
    finally:
        subprocess.run(["docker", "start", scheduler], capture_output=True, check=True)
        # a restarted scheduler imports Airflow and parses the DAGs again before its health
        # server answers: more than 300 s once in a fresh-clone run at load 20-40
        wait_healthy(real_app_stack, "airflow-scheduler", timeout=900)
    hop = report["hops"][0]
    assert code == 8 and hop["verdict"] == "failed", hop
    assert hop["cause"].startswith("the Airflow scheduler's last heartbeat is "), hop
    assert hop["cause"].endswith("check airflow-scheduler."), hop


def test_real_images_are_cached_by_their_inputs(real_app_images: dict[str, str]) -> None:
    from lakehouse_tasks import rehearsal_real

    for jobs in (1, 4):  # one by one, and side by side as the session fixture builds them
        messages: list[str] = []
        again = rehearsal_real.build_real_images(log=messages.append, jobs=jobs)
        assert again == real_app_images
        assert list(again) == list(rehearsal_real.REAL_KINDS)
        assert set(rehearsal_real.LAST_BUILD.values()) == {"cached"}
        kinds = [m for m in messages if not m.startswith("debian root")]
        assert all(" cached " in m for m in kinds), messages  # looked up, nothing built
