"""Layer 3, processing: the Spark hops (a job on the cluster, a table through the metastore)."""

from __future__ import annotations

import json
from typing import Any

from ..context import SmokeContext
from ..model import HopFailure

SPARK_TIMEOUT = 900.0  # a loaded 2-core machine needs minutes to start the JVMs of a first job


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
    from ...engine import commands as engine_commands

    for name in sorted(ctx.services.infos):
        if not name.startswith("spark-worker"):
            continue
        info = ctx.services.infos[name]
        logs = engine_commands.logs(info.container_id, tail=200, docker_cmd=ctx.docker_cmd)
        lines = logs.splitlines()
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
