"""Secrets as files on a real engine: a prod (and a staging) rehearsal, deployed by the tool.

Every secret gets a unique random value. After the deploy (every service healthy: the
stand-ins, like the real images, refuse to start when a ``*_FILE``/``__FILE``/``_CMD`` secret
cannot be read), no value may appear in ``docker inspect`` of any container, in the merged
configuration or in the host's process list; the files the tool wrote are private; and the
real PostgreSQL of metastore-db accepts the password from its file and refuses another.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.environment import read_env_file
from lakehouse_tasks.secretfiles import secret_values, secrets_dir
from tests.conftest import REPO, deploy_and_wait, self_signed_cert

pytestmark = pytest.mark.engine


def _schema() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((REPO / "env" / "variables.yaml").read_text())


def _overrides(env: str, tmp: Path) -> dict[str, str]:
    """Unique secrets, a certificate, and CPU limits a 2-core machine can create."""
    schema = _schema()
    values = {n: "S" + secrets.token_hex(14) for n, s in schema.items() if s["type"] == "secret"}
    values = {n: v for n, v in values.items() if schema[n]["required"]}
    for name, value in read_env_file(REPO / "env" / f"{env}.env").items():
        if name.endswith("_CPU_LIMIT") and float(value) > 1.0:
            values[name] = "1.0"
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    self_signed_cert(cert, key)
    os.chmod(key, 0o600)
    values.update({"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)})
    return values


def _containers(project_name: str) -> list[dict[str, Any]]:
    ids = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={project_name}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert ids, "the deploy created no container"
    out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module", params=["prod", "staging"])
def deployed(
    request: pytest.FixtureRequest,
    docker_engine: str,
    standin_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    from tests.conftest import RehearsalFactory

    env = request.param
    factory = RehearsalFactory(tmp_path_factory)
    overrides = _overrides(env, tmp_path_factory.mktemp("tls"))
    if env == "staging":
        overrides["HTTPS_MODE"] = "optional"  # the tls profile, with the certificate above
    project = factory(env=env, hint=f"sec{env}", **overrides)
    try:
        deploy_and_wait(project, timeout=420)
        yield project, {n: v for n, v in overrides.items() if project.env.is_secret(n)}
    finally:
        factory.cleanup()


def test_no_secret_value_in_docker_inspect_config_or_process_list(deployed: Any) -> None:
    project, values = deployed
    containers = _containers(project.compose.project_name)
    services = {c["Config"]["Labels"]["com.docker.compose.service"] for c in containers}
    assert {"metastore-db", "airflow-webserver", "trino", "spark-master", "tls-proxy"} <= services
    for container in containers:
        name = container["Name"]
        state = container["State"]
        oneshot = container["Config"]["Labels"].get("io.lakehouse.oneshot") == "true"
        assert state["Status"] == ("exited" if oneshot else "running"), (name, state["Status"])
        if oneshot:
            assert state["ExitCode"] == 0, name
        shown = json.dumps({k: container[k] for k in ("Config", "Args", "Path", "HostConfig")})
        leaked = sorted(n for n, v in values.items() if v in shown)
        assert leaked == [], f"docker inspect {name} shows {leaked}"
    merged = json.dumps(project.compose.config())
    assert [n for n, v in values.items() if v in merged] == []
    processes = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True).stdout
    assert [n for n, v in values.items() if v in processes] == []


def test_the_secret_files_are_private_and_hold_the_values(deployed: Any) -> None:
    project, values = deployed
    directory = secrets_dir(project.env, project.compose.project_name)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    written = secret_values(project.env)
    for name, value in values.items():
        path = directory / name
        assert path.read_text() == value == written[name]
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == os.getgid(), name


def test_metastore_db_was_initialised_with_the_password_from_its_file(deployed: Any) -> None:
    project, values = deployed
    (db,) = [
        c
        for c in _containers(project.compose.project_name)
        if c["Config"]["Labels"]["com.docker.compose.service"] == "metastore-db"
    ]
    env = dict(e.split("=", 1) for e in db["Config"]["Env"])
    assert env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/metastore_db_password"
    assert "POSTGRES_PASSWORD" not in env

    def login(password: str) -> subprocess.CompletedProcess[str]:
        # The password goes in on stdin: never on a command line or in an environment.
        script = (
            "read -r PGPASSWORD; export PGPASSWORD; "
            'psql -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "select 42"'
        )
        return subprocess.run(
            ["docker", "exec", "-i", db["Id"], "sh", "-c", script],
            input=password + "\n",
            capture_output=True,
            text=True,
        )

    good = login(values["METASTORE_DB_PASSWORD"])
    assert good.returncode == 0 and good.stdout.strip() == "42", good.stderr
    bad = login("not-the-password")
    assert bad.returncode != 0 and "password authentication failed" in bad.stderr


def test_a_dry_run_right_after_the_deploy_plans_no_recreation(deployed: Any) -> None:
    """Every container carries the tool's own config hash, and `deploy --dry-run` (run as a
    user would, in a new process) compares that: nothing to recreate, create or remove."""
    from lakehouse_tasks.confighash import LABEL, service_hashes

    project, _ = deployed
    hashes = service_hashes(project.compose.config())
    for container in _containers(project.compose.project_name):
        labels = container["Config"]["Labels"]
        service = labels["com.docker.compose.service"]
        assert labels.get(LABEL) == hashes[service], f"{service}: stale or missing {LABEL}"
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "invoke"),
            "deploy",
            "--env",
            project.env.name,
            "--rehearsal",
            "--env-file",
            project.env_file,
            "--dry-run",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "LAKEHOUSE_STATE_DIR": os.environ["LAKEHOUSE_STATE_DIR"]},
    )
    assert result.returncode == 0, result.stderr
    containers = json.loads(result.stdout)["containers"]
    assert containers is not None, "the dry run did not compare with the running containers"
    assert containers["create"] == [] and containers["remove"] == [], containers
    # The engine is shared: another test session may have rebuilt a stand-in image under the
    # same `:rehearsal` tag since this deploy, and then a recreation for the new image id is
    # right. A recreation for any other reason (a configuration hash) is the lie this test is
    # about.
    moved = {
        c["Config"]["Labels"]["com.docker.compose.service"]
        for c in _containers(project.compose.project_name)
        if _tag_moved(c)
    }
    wrong = [
        c
        for c in containers["changes"]
        if c["action"] == "recreate"
        and (c["service"] not in moved or any("configuration" in r for r in c["reasons"]))
    ]
    assert wrong == [], wrong


def _tag_moved(container: dict[str, Any]) -> bool:
    """Whether the container's image reference now names another image than it runs."""
    ref = container["Config"]["Image"]
    now = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True
    ).stdout.strip()
    return now != container["Image"]
