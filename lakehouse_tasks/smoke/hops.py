"""The smoke hops, in the order data flows through the lakehouse.

Clients load inside the hop bodies (boto3, trino), so ``invoke --list`` does not pay for them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

from .hms import MetastoreClient, ThriftError
from .model import HopFailure, HopSkipped
from .runner import Hop, SmokeContext

# Ports inside the containers (the compose files publish them on the host).
S3_PORT, HMS_PORT, TRINO_PORT, SUPERSET_PORT = 9000, 9083, 8080, 8088
AIRFLOW_PORT, INGESTOR_PORT = 8080, 8000
SMOKE_PREFIX = "_lakehouse-smoke"
DAG_ID = "lakehouse_daily"
SCHEDULER_HEARTBEAT_MAX_AGE = 120.0  # seconds
SPARK_TIMEOUT = 900.0  # a loaded 2-core machine needs minutes to start the JVMs of a first job


def _bucket(ctx: SmokeContext) -> str:
    buckets = ctx.value("MINIO_BUCKETS", "lakehouse warehouse raw").split()
    return "lakehouse" if "lakehouse" in buckets else buckets[0]


# ---------------------------------------------------------------------------------- S3


def s3_client(ctx: SmokeContext) -> Any:
    import boto3
    from botocore.config import Config

    host, port = ctx.services.endpoint("minio", S3_PORT)
    return boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id=ctx.secret("MINIO_ROOT_USER"),
        aws_secret_access_key=ctx.secret("MINIO_ROOT_PASSWORD"),
        region_name=ctx.value("S3_REGION", "us-east-1"),
        config=Config(
            connect_timeout=5,
            read_timeout=20,
            retries={"max_attempts": 2},
            s3={"addressing_style": "path"},
        ),
    )


def _s3_cause(exc: Exception, bucket: str) -> str:
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(exc, EndpointConnectionError):
        return "object storage does not answer on its API port; check that minio runs."
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchBucket", "404"}:
            return f"bucket {bucket!r} does not exist; run the minio-init job (redeploy)."
        if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}:
            return (
                f"object storage refused the credentials ({code}); check MINIO_ROOT_USER and "
                "MINIO_ROOT_PASSWORD."
            )
        return f"object storage answered {code or 'an error'}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def hop_object_storage(ctx: SmokeContext) -> str:
    s3 = s3_client(ctx)
    bucket = _bucket(ctx)
    key = f"{SMOKE_PREFIX}/{ctx.run_id}/canary.txt"
    body = f"lakehouse smoke canary {ctx.run_id}\n".encode() * 64
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)

        def remove() -> None:
            s3.delete_object(Bucket=bucket, Key=key)

        ctx.on_cleanup(f"s3://{bucket}/{key}", remove)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if hashlib.sha256(got).digest() != hashlib.sha256(body).digest():
            raise HopFailure(f"s3://{bucket}/{key} read back different bytes than were written.")
        s3.delete_object(Bucket=bucket, Key=key)
        left = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0)
        if left:
            raise HopFailure(f"s3://{bucket}/{key} is still listed after its deletion.")
    except HopFailure:
        raise
    except Exception as exc:
        raise HopFailure(_s3_cause(exc, bucket)) from None
    return f"wrote, read back and deleted {len(body)} bytes in s3://{bucket}/{SMOKE_PREFIX}/"


# ---------------------------------------------------------------------------------- HMS


def hop_metastore(ctx: SmokeContext) -> str:
    host, port = ctx.services.endpoint("hive-metastore", HMS_PORT)
    name = f"{ctx.run_id}_hms"
    try:
        with MetastoreClient(host, port) as hms:
            # No location: the metastore puts the schema under its own warehouse directory,
            # as it does for a user's CREATE SCHEMA (and removes it again with the drop).
            hms.create_database(name, description="lakehouse smoke scratch")

            def drop() -> None:
                # Only when it is still there: Hive 2.3 answers a drop of a missing schema
                # with a MetaException, not NoSuchObjectException.
                with MetastoreClient(host, port) as again:
                    if name in [d.lower() for d in again.get_all_databases()]:
                        again.drop_database(name)

            ctx.on_cleanup(f"metastore schema {name}", drop)
            db = hms.get_database(name)
            if db.get(1, "").lower() != name:
                raise HopFailure(f"the metastore returned {db.get(1)!r} for schema {name}.")
            hms.drop_database(name)
            if name in [d.lower() for d in hms.get_all_databases()]:
                raise HopFailure(f"schema {name} is still listed after drop_database.")
    except ThriftError as exc:
        raise HopFailure(
            f"the metastore refused the call: {exc.name}: {exc.message[:200]}"
        ) from None
    except (ConnectionError, OSError) as exc:
        raise HopFailure(
            f"the metastore does not answer Thrift on {host}:{port} ({type(exc).__name__}); "
            "check hive-metastore's logs."
        ) from None
    except ValueError as exc:
        raise HopFailure(f"the metastore's answer is not Thrift: {exc}") from None
    return f"created, read and dropped schema {name} through Thrift"


# ---------------------------------------------------------------------------------- Trino


def trino_connection(ctx: SmokeContext, schema: str | None = None) -> Any:
    import trino

    host, port = ctx.services.endpoint("trino", TRINO_PORT)
    return trino.dbapi.connect(
        host=host,
        port=port,
        user="lakehouse-smoke",
        catalog="hive",
        schema=schema,
        http_scheme="http",
        request_timeout=60,
    )


def _trino_all(conn: Any, sql: str) -> list[list[Any]]:
    cur = conn.cursor()
    cur.execute(sql)
    return [list(r) for r in cur.fetchall()]


def hop_trino(ctx: SmokeContext) -> str:
    schema = ctx.run_id
    table = f"hive.{schema}.canary"
    try:
        conn = trino_connection(ctx)
        catalogs = {row[0] for row in _trino_all(conn, "SHOW CATALOGS")}
        if "hive" not in catalogs:
            raise HopFailure(
                f"Trino has no hive catalog (it has {', '.join(sorted(catalogs))}); check "
                "compose/config/trino/catalog/hive.properties."
            )
        _trino_all(conn, f"CREATE SCHEMA hive.{schema}")

        def drop() -> None:
            again = trino_connection(ctx)
            _trino_all(again, f"DROP TABLE IF EXISTS {table}")
            _trino_all(again, f"DROP SCHEMA IF EXISTS hive.{schema}")

        ctx.on_cleanup(f"trino schema hive.{schema}", drop)
        _trino_all(conn, f"CREATE TABLE {table} (id integer, label varchar)")
        _trino_all(conn, f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two')")
        rows = _trino_all(conn, f"SELECT id, label FROM {table} ORDER BY id")
        if rows != [[1, "one"], [2, "two"]]:
            raise HopFailure(f"{table} read back {rows!r} instead of the two rows inserted.")
    except HopFailure:
        raise
    except Exception as exc:
        raise HopFailure(_trino_cause(exc)) from None
    ctx.state["trino_table"] = f"{schema}.canary"
    return f"SHOW CATALOGS has hive; created, filled and read {table} on object storage"


def _trino_cause(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    first = str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__
    return f"Trino failed: {first[:300]}"


# ---------------------------------------------------------------------------------- Spark

SPARK_JOB = r"""
import json, sys
from pyspark.sql import SparkSession
run_id, table = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
spark = SparkSession.builder.appName(run_id).getOrCreate()
result = {"version": spark.version}
result["sum"] = spark.range(0, 1000, numPartitions=2).selectExpr("sum(id) AS s").collect()[0]["s"]
result["executors"] = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
if spark.conf.get("spark.sql.catalogImplementation", "in-memory") == "hive":
    result["schemas"] = sorted(r[0] for r in spark.sql("SHOW DATABASES").collect())
if table:
    result["rows"] = spark.sql("SELECT count(*) AS c FROM " + table).collect()[0]["c"]
print("LAKEHOUSE-SMOKE " + json.dumps(result), flush=True)
spark.stop()
"""


def _spark_submit(ctx: SmokeContext, table: str = "") -> dict[str, Any]:
    master = ctx.services.require("spark-master")
    # Ask the master itself which workers are alive (its UI's JSON), before waiting on a job.
    probe = ctx.exec_in("spark-master", ["curl", "-fsS", "http://localhost:8080/json/"], timeout=20)
    if probe.returncode != 0:
        raise HopFailure("the Spark master's web UI does not answer; check spark-master's logs.")
    try:
        status = json.loads(probe.stdout)
    except ValueError:
        raise HopFailure("the Spark master's /json/ answer is not JSON.") from None
    alive = [w for w in status.get("workers", []) if w.get("state") == "ALIVE"]
    if not alive:
        raise HopFailure(
            "no ALIVE worker is registered with the Spark master; check spark-worker-1."
        )
    jars = ctx.exec_in("spark-master", ["sh", "-c", "ls /opt/spark/jars"], timeout=20).stdout
    conf = [
        "--master", "spark://spark-master:7077",
        "--conf", "spark.driver.host=spark-master",
        "--conf", "spark.driver.bindAddress=0.0.0.0",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.cores.max=1",
        "--conf", "spark.executor.memory=512m",
    ]  # fmt: skip
    notes = []
    if "hadoop-aws" not in jars:
        # Without S3A, SparkSession cannot even qualify an s3a:// warehouse: the job keeps its
        # warehouse on local disk; reading a table on object storage needs the jars.
        conf += ["--conf", f"spark.sql.warehouse.dir=file:/tmp/{ctx.run_id}-warehouse"]
        notes.append("no S3A jars in the image")
    hms = ctx.services.get("hive-metastore")
    if not table and (hms is None or hms.standin):
        conf += ["--conf", "spark.sql.catalogImplementation=in-memory"]
        notes.append("metastore not used (stand-in)")
    script = f"/tmp/{ctx.run_id}.py"
    # `timeout` inside the container: the job itself is stopped, not only this client.
    limit = int(SPARK_TIMEOUT)
    shell = (
        f"cat > {script} && timeout {limit} /opt/spark/bin/spark-submit "
        f'"$@" {script} {ctx.run_id} {table}; rc=$?; rm -f {script}; exit $rc'
    )
    proc = ctx.exec_in(
        "spark-master",
        ["bash", "-c", shell, "spark-smoke", *conf],
        stdin=SPARK_JOB,
        timeout=SPARK_TIMEOUT + 30,
    )
    if proc.returncode == 124:
        raise HopFailure(f"the Spark job did not finish within {limit} s; see spark-master's logs.")
    for line in proc.stdout.splitlines():
        if line.startswith("LAKEHOUSE-SMOKE "):
            result = json.loads(line.split(" ", 1)[1])
            result["notes"] = notes
            result["master"] = master.service
            return result
    executor_error = _worker_error(ctx) if "removed our application" in proc.stderr else ""
    if executor_error:
        raise HopFailure(f"no executor could start on the workers: {executor_error}")
    raise HopFailure(f"the Spark job failed (exit {proc.returncode}): {_spark_error(proc.stderr)}")


def _worker_error(ctx: SmokeContext) -> str:
    """The reason a worker gave for failing to launch an executor (its last log lines)."""
    import subprocess

    for name in sorted(ctx.services.infos):
        if not name.startswith("spark-worker"):
            continue
        info = ctx.services.infos[name]
        logs = subprocess.run(
            [*ctx.docker_cmd, "logs", "--tail", "200", info.container_id],
            capture_output=True,
            text=True,
        )
        lines = (logs.stdout + logs.stderr).splitlines()
        for i, line in enumerate(lines):
            if "Failed to launch executor" in line:
                cause = next(
                    (n.strip() for n in lines[i + 1 : i + 4] if "Exception" in n), line.strip()
                )
                return f"{name} says {cause[:250]}"
    return ""


def _spark_error(stderr: str) -> str:
    keys = ("Exception", "Error", "FAILED", "Failed", "removed our application")
    for line in reversed(stderr.splitlines()):
        if any(k in line for k in keys) and "WARN" not in line[:40]:
            return line.strip()[:300]
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else "no output"


def hop_spark(ctx: SmokeContext) -> str:
    result = _spark_submit(ctx)
    if result.get("sum") != 499500:
        raise HopFailure(f"the Spark job computed {result.get('sum')!r} instead of 499500.")
    ctx.state["spark_version"] = result.get("version")
    if "schemas" in result:
        result["notes"].insert(0, f"lists {len(result['schemas'])} metastore schema(s)")
    notes = f" ({'; '.join(result['notes'])})" if result["notes"] else ""
    return (
        f"Spark {result.get('version')}: a 2-task job ran on the cluster's executors "
        f"(sum of 0..999 = 499500){notes}"
    )


def hop_spark_table(ctx: SmokeContext) -> str:
    table = ctx.state.get("trino_table", "")
    result = _spark_submit(ctx, table)
    if result.get("rows") != 2:
        raise HopFailure(f"Spark read {result.get('rows')!r} rows of {table} instead of 2.")
    return f"Spark read the 2 rows of {table} through the metastore"


# ---------------------------------------------------------------------------------- HTTP


class _Http:
    """A tiny cookie-keeping JSON client on urllib."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.headers: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        for key, value in {**self.headers, **(headers or {})}.items():
            req.add_header(key, value)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=self.timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
                status = resp.status
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            status = exc.code
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        return status, payload, text


def _http_failure(service: str, exc: Exception) -> HopFailure:
    reason = getattr(exc, "reason", exc)
    return HopFailure(f"{service} does not answer HTTP ({reason}); check that it runs.")


def hop_superset(ctx: SmokeContext) -> str:
    host, port = ctx.services.endpoint("superset", SUPERSET_PORT)
    http = _Http(f"http://{host}:{port}")
    try:
        status, _, page = http.request("GET", "/login/")
        if status != 200 or "superset" not in page.lower():
            raise HopFailure(f"Superset's login page answered {status} without Superset in it.")
        status, payload, _ = http.request(
            "POST",
            "/api/v1/security/login",
            {
                "username": ctx.secret("SUPERSET_ADMIN_USER"),
                "password": ctx.secret("SUPERSET_ADMIN_PASSWORD"),
                "provider": "db",
                "refresh": False,
            },
        )
        token = (payload or {}).get("access_token")
        if status != 200 or not token:
            raise HopFailure(
                f"Superset refused the admin login ({status}); check SUPERSET_ADMIN_USER and "
                "SUPERSET_ADMIN_PASSWORD."
            )
        http.headers["Authorization"] = f"Bearer {token}"
        status, payload, _ = http.request("GET", "/api/v1/security/csrf_token/")
        csrf = (payload or {}).get("result")
        if status != 200 or not csrf:
            raise HopFailure(f"Superset gave no CSRF token ({status}).")
        http.headers["X-CSRFToken"] = csrf
        http.headers["Referer"] = http.base + "/"
        uri = "trino://lakehouse-smoke@trino:8080/hive"
        status, payload, text = http.request(
            "POST",
            "/api/v1/database/test_connection/",
            {"database_name": ctx.run_id, "sqlalchemy_uri": uri, "engine": "trino"},
        )
        if status != 200:
            message = (payload or {}).get("message") or text[:200]
            raise HopFailure(f"Superset cannot connect to Trino ({status}): {message}")
    except HopFailure:
        raise
    except (urllib.error.URLError, OSError) as exc:
        raise _http_failure("superset", exc) from None
    return "admin login, CSRF token and test_connection to trino://trino:8080/hive passed"


def hop_airflow(ctx: SmokeContext) -> str:
    host, port = ctx.services.endpoint("airflow-webserver", AIRFLOW_PORT)
    http = _Http(f"http://{host}:{port}")
    user, password = ctx.secret("AIRFLOW_ADMIN_USER"), ctx.secret("AIRFLOW_ADMIN_PASSWORD")
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    http.headers["Authorization"] = f"Basic {auth}"
    try:
        status, health, _ = http.request("GET", "/api/v1/health")
        if status != 200 or not isinstance(health, dict):
            raise HopFailure(f"Airflow's /api/v1/health answered {status}.")
        sched = health.get("scheduler") or {}
        beat = sched.get("latest_scheduler_heartbeat")
        age = _age_seconds(beat)
        if sched.get("status") != "healthy" or age is None or age > SCHEDULER_HEARTBEAT_MAX_AGE:
            raise HopFailure(
                f"the Airflow scheduler's last heartbeat is {beat or 'missing'} "
                f"({'never' if age is None else f'{int(age)} s ago'}); check airflow-scheduler."
            )
        status, errors, _ = http.request("GET", "/api/v1/importErrors")
        if status == 401:
            raise HopFailure(
                "Airflow refused the admin login (401); check AIRFLOW_ADMIN_USER and "
                "AIRFLOW_ADMIN_PASSWORD."
            )
        if status != 200 or not isinstance(errors, dict):
            raise HopFailure(f"Airflow's /api/v1/importErrors answered {status}.")
        if errors.get("total_entries"):
            first = (errors.get("import_errors") or [{}])[0]
            raise HopFailure(
                f"Airflow has {errors['total_entries']} DAG import error(s), first in "
                f"{first.get('filename', '?')}."
            )
        status, _dag, _ = http.request("GET", f"/api/v1/dags/{DAG_ID}")
        if status != 200:
            raise HopFailure(f"the {DAG_ID} DAG is not loaded in Airflow ({status}).")
    except HopFailure:
        raise
    except (urllib.error.URLError, OSError) as exc:
        raise _http_failure("airflow-webserver", exc) from None
    return f"scheduler heartbeat {int(age)} s old, no import errors, DAG {DAG_ID} present"


def _age_seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - when).total_seconds()


def hop_ingestor(ctx: SmokeContext) -> str:
    host, port = ctx.services.endpoint("ingestor", INGESTOR_PORT)
    try:
        status, stats, _ = _Http(f"http://{host}:{port}", timeout=10).request("GET", "/stats")
    except (urllib.error.URLError, OSError) as exc:
        raise _http_failure("ingestor", exc) from None
    if status != 200 or not isinstance(stats, dict):
        raise HopFailure(f"the ingestor's /stats answered {status}.")
    ok, failed = int(stats.get("uploads_ok", 0)), int(stats.get("uploads_failed", 0))
    if not stats.get("last_batch"):
        raise HopSkipped("the ingestor has not written a batch yet; run smoke again later.")
    if failed and not ok:
        raise HopFailure(f"every ingestor upload failed ({failed}); check its S3 settings.")
    if failed:
        raise HopFailure(f"{failed} of {ok + failed} ingestor uploads failed; see its logs.")
    return f"last batch {stats['last_batch']}: {ok} uploads, none failed"


def hop_dbt(ctx: SmokeContext) -> str:
    for step in ("debug", "parse"):
        proc = ctx.exec_in("dbt", ["dbt", step], timeout=180)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            error = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")
            raise HopFailure(f"dbt {step} failed: {error.strip()[:300]}")
    return "dbt debug (connection to Trino) and dbt parse passed"


# ---------------------------------------------------------------------------------- order

HOPS: tuple[Hop, ...] = (
    Hop("object-storage", ("minio",), hop_object_storage),
    Hop("metastore", ("hive-metastore",), hop_metastore),
    Hop("trino", ("trino", "hive-metastore", "minio"), hop_trino),
    Hop("spark", ("spark-master", "spark-worker-1"), hop_spark),
    Hop(
        "spark-table",
        ("spark-master", "spark-worker-1", "hive-metastore", "trino"),
        hop_spark_table,
        needs=("trino",),
    ),
    Hop("superset", ("superset", "trino"), hop_superset),
    Hop("airflow", ("airflow-webserver", "airflow-scheduler"), hop_airflow),
    Hop("ingestor", ("ingestor", "minio"), hop_ingestor),
    Hop("dbt", ("dbt", "trino"), hop_dbt),
)
HOP_NAMES = tuple(h.name for h in HOPS)

__all__ = ["HOPS", "HOP_NAMES", "HopSkipped"]
