"""The stand-in images of the offline rehearsal, on a real Docker engine.

Every test starts real containers from the images built by lakehouse_tasks.rehearsal and
removes its containers and volumes even when it fails.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from lakehouse_tasks import rehearsal

pytestmark = pytest.mark.engine

# The healthchecks of compose/docker-compose.yaml (after compose interpolation), unchanged.
REAL_HEALTHCHECKS = {
    "minio": "mc ready local",
    "hive-metastore": "bash -c 'echo > /dev/tcp/localhost/9083'",
    "spark-master": "curl -fsS http://localhost:8080/",
    "spark-worker-1": "curl -fsS http://localhost:8081/",
    "spark-worker-2": "curl -fsS http://localhost:8081/",
    "trino": "/usr/lib/trino/bin/health-check",
    "superset": "curl -f http://localhost:8088/health",
    "airflow-webserver": "curl --fail http://localhost:8080/health",
    "airflow-scheduler": "curl --fail http://localhost:8974/health",
    "ingestor": 'python -c "import urllib.request; '
    "urllib.request.urlopen('http://localhost:8000/health', timeout=5)\"",
    "dbt": "dbt --version",
    "prometheus": "promtool check healthy",
    "grafana": "wget -qO- http://localhost:3000/api/health",
}
PG_HEALTHCHECK = "pg_isready -h 127.0.0.1 -U ${POSTGRES_USER} -d ${POSTGRES_DB}"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="module", autouse=True)
def engine():
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine (run scripts/docker-engine)")


@pytest.fixture(scope="module")
def images(engine) -> dict[str, str]:
    return rehearsal.build_standins(log=lambda msg: None)


class Engine:
    """Creates uniquely named containers and volumes and removes them all at teardown."""

    def __init__(self) -> None:
        self.prefix = f"standin-test-{uuid.uuid4().hex[:8]}"
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def volume(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        docker("volume", "create", full)
        self.volumes.append(full)
        return full

    def run(
        self,
        name: str,
        image: str,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        command: list[str] | None = None,
        health_cmd: str | None = None,
        detach: bool = True,
    ) -> str:
        full = f"{self.prefix}-{name}"
        self.containers.append(full)
        argv = ["run", "--name", full]
        if detach:
            argv.append("-d")
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        if health_cmd:
            argv += [
                "--health-cmd",
                health_cmd,
                "--health-interval",
                "1s",
                "--health-timeout",
                "5s",
                "--health-retries",
                "2",
            ]
        argv += list(args or [])
        argv.append(image)
        argv += list(command or [])
        docker(*argv)
        return full

    def cleanup(self) -> None:
        if self.containers:
            docker("rm", "-f", "-v", *self.containers, check=False)
        if self.volumes:
            docker("volume", "rm", "-f", *self.volumes, check=False)


@pytest.fixture
def eng(images):
    e = Engine()
    try:
        yield e
    finally:
        e.cleanup()


def state(container: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)


def health(container: str) -> str:
    st = state(container)
    return (st.get("Health") or {}).get("Status", "none")


def wait_health(container: str, wanted: str, timeout: float) -> float:
    start = time.monotonic()
    seen = None
    while time.monotonic() - start < timeout:
        seen = health(container)
        if seen == wanted:
            return time.monotonic() - start
        time.sleep(0.5)
    logs = docker("logs", "--tail", "30", container, check=False)
    raise AssertionError(
        f"{container} is {seen!r}, not {wanted!r}, after {timeout}s\n{logs.stdout}{logs.stderr}"
    )


def wait_exit(container: str, timeout: float) -> int:
    proc = docker("wait", container, timeout=timeout)
    return int(proc.stdout.strip())


def dexec(container: str, *cmd: str, check: bool = True) -> str:
    return docker("exec", container, *cmd, check=check).stdout


def http_get(container: str, port: int, path: str) -> str:
    host_port = docker("port", container, f"{port}/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{host_port}{path}", timeout=10) as resp:
        return resp.read().decode()


# ----------------------------------------------------------------------------------------


def test_second_build_is_cached(images):
    ids = {kind: rehearsal.image_id(ref) for kind, ref in images.items()}
    messages: list[str] = []
    again = rehearsal.build_standins(log=messages.append)
    assert again == images
    assert rehearsal.LAST_BUILD == {"busybox": "cached", "postgres": "cached"}
    assert all("cached" in m for m in messages), messages
    assert {kind: rehearsal.image_id(ref) for kind, ref in again.items()} == ids
    for kind, ref in again.items():
        assert ref == f"lakehouse-rehearsal/{kind}:{rehearsal.inputs_hash(kind)}"
        assert rehearsal.image_id(f"lakehouse-rehearsal/{kind}:rehearsal") == ids[kind]


def test_service_standins_cover_the_stack():
    services = set(rehearsal.SERVICE_STANDINS)
    core = services - rehearsal.PLUGIN_SERVICES - rehearsal.OPTIONAL_SERVICES
    assert len(core) == 16
    assert {"tls-proxy"} == rehearsal.OPTIONAL_SERVICES
    for name, entry in rehearsal.SERVICE_STANDINS.items():
        assert entry["image_kind"] in rehearsal.STANDIN_IMAGES
        assert entry["environment"]["STANDIN_SERVICE"] == name
        assert entry["healthcheck_override"] is None or isinstance(
            entry["healthcheck_override"], list
        )
    assert rehearsal.standin_env("minio-init")["STANDIN_ONESHOT"] == "1"
    assert rehearsal.standin_env("hive-metastore")["STANDIN_TCP_PORTS"] == "9083"


def test_real_healthchecks_work_through_shims_and_follow_faults(eng, images):
    names = {}
    for service, check in REAL_HEALTHCHECKS.items():
        names[service] = eng.run(
            service, images["busybox"], rehearsal.standin_env(service), health_cmd=check
        )
    for container in names.values():
        wait_health(container, "healthy", 30)
    for container in names.values():
        dexec(container, "sh", "-c", "echo unhealthy > /tmp/standin-fault")
    for container in names.values():
        wait_health(container, "unhealthy", 20)


def test_minio_standin_health_data_and_restart(eng, images):
    vol = eng.volume("minio-data")
    c = eng.run(
        "minio",
        images["busybox"],
        rehearsal.standin_env("minio"),
        args=["-v", f"{vol}:/data", "-p", "127.0.0.1::9000"],
        health_cmd="mc ready local",
    )
    wait_health(c, "healthy", 30)
    assert dexec(c, "cat", "/data/.standin/boot-count").strip() == "1"

    answer = http_get(c, 9000, "/cgi-bin/write?name=object-1.bin&size=65536")
    sha, name = answer.split()
    assert name == "object-1.bin" and len(sha) == 64
    inside = dexec(c, "sha256sum", "/data/object-1.bin").split()[0]
    assert inside == sha
    assert dexec(c, "stat", "-c", "%s", "/data/object-1.bin").strip() == "65536"
    listing = http_get(c, 9000, "/cgi-bin/files")
    assert f"{sha}  object-1.bin" in listing
    assert "write object-1.bin" in dexec(c, "cat", "/data/.standin/writes.log")
    with pytest.raises(urllib.error.HTTPError):
        http_get(c, 9000, "/cgi-bin/write?name=../escape")

    start = time.monotonic()
    docker("restart", c)
    assert time.monotonic() - start < 5, "SIGTERM is not handled promptly"
    wait_health(c, "healthy", 30)
    assert dexec(c, "cat", "/data/.standin/boot-count").strip() == "2"
    assert dexec(c, "sha256sum", "/data/object-1.bin").split()[0] == sha


def test_never_healthy_stays_unhealthy(eng, images):
    env = dict(rehearsal.standin_env("minio"), STANDIN_FAULT="never-healthy")
    c = eng.run("never", images["busybox"], env, health_cmd="mc ready local")
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert health(c) in {"starting", "unhealthy"}
        time.sleep(0.5)
    wait_health(c, "unhealthy", 10)
    assert state(c)["Running"]


def test_fault_file_flips_a_running_container(eng, images):
    vol = eng.volume("grafana-data")
    c = eng.run(
        "flip",
        images["busybox"],
        rehearsal.standin_env("grafana"),
        args=["-v", f"{vol}:/var/lib/grafana"],
        health_cmd="wget -qO- http://localhost:3000/api/health",
    )
    wait_health(c, "healthy", 30)
    dexec(c, "sh", "-c", "echo unhealthy-after:0 > /var/lib/grafana/.standin/fault")
    wait_health(c, "unhealthy", 10)
    # /tmp/standin-fault (this container only) overrides the volume's fault file
    dexec(c, "sh", "-c", "echo none > /tmp/standin-fault")
    wait_health(c, "healthy", 10)


def test_slow_start_then_healthy(eng, images):
    env = dict(rehearsal.standin_env("hive-metastore"), STANDIN_FAULT="slow-start:4")
    c = eng.run(
        "slow", images["busybox"], env, health_cmd="bash -c 'echo > /dev/tcp/localhost/9083'"
    )
    time.sleep(2.5)
    assert health(c) != "healthy"
    wait_health(c, "healthy", 20)


def test_crash_exits_with_1(eng, images):
    env = dict(rehearsal.standin_env("trino"), STANDIN_FAULT="crash:1")
    c = eng.run("crash", images["busybox"], env)
    assert wait_exit(c, 20) == 1


def test_oneshot_exit_code_fault(eng, images):
    env = dict(rehearsal.standin_env("minio-init"), STANDIN_FAULT="exit:3")
    c = eng.run("oneshot-3", images["busybox"], env)
    assert wait_exit(c, 20) == 3


def test_oneshot_none_exits_0_and_records(eng, images):
    vol = eng.volume("airflow-logs")
    env = dict(rehearsal.standin_env("airflow-init"), STANDIN_FAULT="none")
    c = eng.run("oneshot-0", images["busybox"], env, args=["-v", f"{vol}:/opt/airflow/logs"])
    assert wait_exit(c, 20) == 0
    reader = eng.run(
        "reader",
        images["busybox"],
        detach=False,
        args=["-v", f"{vol}:/v", "--entrypoint", "cat"],
        command=["/v/.standin/oneshot-done"],
    )
    assert "airflow-init one-shot done" in docker("logs", reader).stdout


def test_postgres_standin_dump_restore_and_persistence(eng, images):
    vol = eng.volume("metastore-db-data")
    env = {"POSTGRES_USER": "hive", "POSTGRES_PASSWORD": "rehearsal-pw", "POSTGRES_DB": "metastore"}
    args = ["-v", f"{vol}:/var/lib/postgresql/data"]
    c = eng.run("pg", images["postgres"], env, args=args, health_cmd=PG_HEALTHCHECK)
    wait_health(c, "healthy", 90)

    def psql(container: str, db: str, sql: str) -> str:
        # over TCP with the password: proves the scram password and pg_hba work
        return docker(
            "exec",
            "-e",
            "PGPASSWORD=rehearsal-pw",
            container,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "hive",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        ).stdout.strip()

    psql(c, "metastore", "CREATE TABLE tbls (id int primary key, name text)")
    psql(c, "metastore", "INSERT INTO tbls SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
    assert psql(c, "metastore", "SELECT count(*) FROM tbls") == "1000"
    assert (
        psql(
            c,
            "metastore",
            "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database "
            "WHERE datname = current_database()",
        )
        == "hive"
    )
    docker("exec", c, "pg_dump", "-U", "hive", "-d", "metastore", "-Fc", "-f", "/tmp/m.dump")
    docker("exec", c, "createdb", "-U", "hive", "restored")
    docker("exec", c, "pg_restore", "-U", "hive", "-d", "restored", "/tmp/m.dump")
    assert psql(c, "restored", "SELECT count(*) FROM tbls") == "1000"
    assert psql(c, "restored", "SELECT sum(id) FROM tbls") == psql(
        c, "metastore", "SELECT sum(id) FROM tbls"
    )
    # the image carries the archive tools the backup feature uses
    for tool in ("tar", "gzip", "zstd", "sha256sum"):
        docker("exec", c, "sh", "-c", f"command -v {tool}")

    start = time.monotonic()
    docker("stop", c)
    assert time.monotonic() - start < 8
    docker("rm", c)
    c2 = eng.run("pg-again", images["postgres"], env, args=args, health_cmd=PG_HEALTHCHECK)
    wait_health(c2, "healthy", 60)
    assert psql(c2, "metastore", "SELECT count(*) FROM tbls") == "1000"
    assert "initialising" not in docker("logs", c2).stderr


def test_postgres_never_healthy_until_cleared(eng, images):
    env = {"POSTGRES_PASSWORD": "pw", "STANDIN_FAULT": "never-healthy"}
    c = eng.run("pg-fault", images["postgres"], env, health_cmd=PG_HEALTHCHECK)
    time.sleep(4)
    assert health(c) != "healthy"
    dexec(c, "sh", "-c", "echo none > /tmp/standin-fault")
    wait_health(c, "healthy", 60)
