"""Issue 14, items 3-12: bad input files and directories, secrets never echoed, whole-value
masking, typos with the nearest name, the layer of a weak secret, the offline security
report, SPARK_WORKER_COUNT, the health URL column, tables that never cut names, dry runs
and the first-run conveniences. Through the real console script where a user would notice."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lakehouse_tasks.environment import MASK

REPO = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")
SECRET = "S3cretValue-never-printed"


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ)
    environ.pop("LAKEHOUSE_FORCE_TTY", None)
    environ.pop("NO_COLOR", None)
    environ.update(env or {})
    return subprocess.run(
        [INVOKE, *argv], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120
    )


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture
def state(tmp_path: Path) -> dict[str, str]:
    return {"LAKEHOUSE_STATE_DIR": str(tmp_path / "state")}


def audit_records(state: dict[str, str]) -> list[dict]:
    path = Path(state["LAKEHOUSE_STATE_DIR"]) / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- 3. encodings and the state directory ---------------------------------------------------
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("MINIO_ROOT_USER=café\n".encode("latin-1"), ":1: not UTF-8"),
        ("MINIO_ROOT_USER=admin\n".encode("utf-16"), "is UTF-16 encoded"),
    ],
)
def test_an_env_file_not_in_utf8_is_one_sentence(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    extra = tmp_path / "extra.env"
    extra.write_bytes(content)
    proc = cli("env.show", "--env", "dev", "--env-file", str(extra))
    assert proc.returncode == 2
    message = one_error(proc)
    assert expected in message and "save" in message and "UTF-8" in message


@pytest.mark.parametrize(
    "argv",
    [
        ["config", "--env", "staging"],
        ["plan", "--env", "prod"],
        ["history"],
        ["lock.status"],
        ["deploy", "--env", "dev"],
    ],
)
def test_a_state_directory_that_cannot_be_written_is_named(tmp_path: Path, argv: list[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = cli(*argv, env={"LAKEHOUSE_STATE_DIR": str(blocker / "state")})
    assert proc.returncode == 2, proc.stderr
    message = one_error(proc)
    assert f"The state directory {blocker / 'state'} cannot be written" in message
    assert "LAKEHOUSE_STATE_DIR" in message
    assert "lugin" not in proc.stderr  # not the monitoring plugin's fault


# ---- 4. a secret is never echoed ---------------------------------------------------------------
@pytest.mark.parametrize(
    "line", [f"MINIO_ROOT_PASSWORD: {SECRET}", f'MINIO_ROOT_PASSWORD="{SECRET}', f"{SECRET} x"]
)
def test_a_malformed_line_never_shows_the_value(tmp_path: Path, state, line: str) -> None:
    extra = tmp_path / "yaml.env"
    extra.write_text(line + "\n")
    proc = cli("deploy", "--env", "dev", "--env-file", str(extra), env=state)
    assert proc.returncode == 2
    message = one_error(proc)
    assert SECRET not in proc.stderr + proc.stdout
    assert "yaml.env:1" in message
    if line.startswith("MINIO_ROOT_PASSWORD:"):
        assert "write it as MINIO_ROOT_PASSWORD=value" in message
    records = audit_records(state)
    assert records and records[-1]["result"] == "failed"
    assert SECRET not in json.dumps(records)
    audit = cli("audit", "--json", env=state)
    assert SECRET not in audit.stdout


# ---- 5. masking whole values of secret keys only -----------------------------------------------
def test_config_masks_secret_values_only_and_stays_a_valid_compose_file(tmp_path: Path) -> None:
    proc = cli("config", "--env", "dev")
    assert proc.returncode == 0, proc.stderr
    masked = yaml.safe_load(proc.stdout)
    raw = json.loads(cli("config", "--env", "dev", "--json").stdout)
    services = masked["services"]
    images = {name: svc.get("image") for name, svc in services.items()}
    assert images["airflow-webserver"] == "apache/airflow:2.11.0"
    assert all(MASK not in str(image) for image in images.values())
    assert all(MASK not in name for name in masked.get("volumes", {}))
    assert "airflow-db-data" in masked["volumes"]
    for svc in services.values():
        for volume in svc.get("volumes", []):
            assert MASK not in str(volume.get("source", ""))
        assert MASK not in json.dumps(svc.get("command")), svc.get("command")
        assert MASK not in json.dumps(svc.get("healthcheck"))
    env = services["minio"]["environment"]
    assert env["MINIO_ROOT_PASSWORD"] == MASK
    assert services["airflow-db"]["environment"]["POSTGRES_PASSWORD"] == MASK
    conn = services["airflow-webserver"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert f":{MASK}@airflow-db" in conn
    assert raw["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == MASK
    # A valid compose file: compose itself reads it back.
    out = tmp_path / "config.yaml"
    out.write_text(proc.stdout)
    if shutil.which("docker"):
        check = subprocess.run(
            ["docker", "compose", "-f", str(out), "config", "--quiet"],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr


def test_the_saved_health_configuration_is_not_garbled(tmp_path: Path, monkeypatch) -> None:
    from lakehouse_tasks.project import open_project

    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path))
    project = open_project("dev", strict=False)
    project.compose.config()
    saved = list((tmp_path / "compose-config").glob("*.json"))
    assert saved
    text = saved[0].read_text()
    config = json.loads(text)
    assert config["services"]["airflow-webserver"]["image"] == "apache/airflow:2.11.0"
    assert "airflow-db-data" in config["volumes"]
    assert config["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == MASK
    assert project.env.values["MINIO_ROOT_PASSWORD"] not in text


# ---- 6. typos are errors with the nearest known name ------------------------------------------
def test_an_unknown_variable_one_typo_away_is_an_error(tmp_path: Path) -> None:
    extra = tmp_path / "typo.env"
    extra.write_text("MINIO_API_PROT=9001\n")
    proc = cli("env.show", "--env", "dev", "--env-file", str(extra))
    assert proc.returncode == 2
    assert "MINIO_API_PROT" in one_error(proc) and "MINIO_API_PORT" in one_error(proc)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["history", "--env", "prdo"], "'prod'"),
        (["lock.status", "--env", "prdo"], "'prod'"),
        (["lock.release", "--env", "prdo"], "'prod'"),
        (["backup.list", "--env", "dev", "--dest", "/nonexistent"], "/nonexistent does not exist"),
        (["backup.prune", "--env", "dev", "--dest", "/nonexistent"], "/nonexistent does not exist"),
        (["secrets.generate", "--env", "dev", "--rotate", "MINIO_PASSWORD"], "MINIO_ROOT_PASSWORD"),
    ],
)
def test_unknown_names_are_errors_naming_the_nearest(argv, expected, state) -> None:
    before = (
        (REPO / "env" / "dev.local.env").read_bytes()
        if (REPO / "env" / "dev.local.env").exists()
        else None
    )
    proc = cli(*argv, env=state)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in one_error(proc)
    after = (
        (REPO / "env" / "dev.local.env").read_bytes()
        if (REPO / "env" / "dev.local.env").exists()
        else None
    )
    assert before == after
    for record in audit_records(state):
        assert record["result"] != "ok"


# ---- 7. the weak-secret advice names the layer ---------------------------------------------
def test_weak_secret_advice_names_the_layer_it_came_from(tmp_path: Path) -> None:
    from lakehouse_tasks.environment import load_environment
    from lakehouse_tasks.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        load_environment("prod", process_env={"MINIO_ROOT_PASSWORD": "admin"})
    message = raised.value.message
    assert "MINIO_ROOT_PASSWORD comes from the process environment" in message
    # --rotate writes env/prod.local.env, which the process environment overrides anyway.
    assert not re.search(r"--rotate \S*MINIO_ROOT_PASSWORD", message)
    extra = tmp_path / "ops.env"
    extra.write_text("MINIO_ROOT_PASSWORD=admin\n")
    with pytest.raises(ConfigError) as raised:
        load_environment("prod", env_files=[extra], process_env={})
    assert f"MINIO_ROOT_PASSWORD comes from {extra}" in raised.value.message
    assert not re.search(r"--rotate \S*MINIO_ROOT_PASSWORD", raised.value.message)


# ---- 8. security --no-containers offline; SPARK_WORKER_COUNT ------------------------------------
def test_security_without_containers_does_not_call_the_engine(tmp_path: Path) -> None:
    real = shutil.which("docker")
    if real is None:
        pytest.skip("needs the docker CLI for `compose config`")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n'
        f'if [ "$1" = compose ]; then exec {real} "$@"; fi\n'
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2; exit 1\n'
    )
    (bindir / "docker").chmod(0o755)
    proc = cli("security", "--env", "dev", "--no-containers", env={"PATH": f"{bindir}"})
    assert proc.returncode in (0, 3), proc.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls and all(call.startswith("compose") for call in calls), calls


@pytest.mark.parametrize(("env", "count", "replicas"), [("dev", "2", 1), ("prod", "1", 0)])
def test_spark_worker_count_decides_the_second_worker(tmp_path, env, count, replicas) -> None:
    extra = tmp_path / "workers.env"
    extra.write_text(f"SPARK_WORKER_COUNT={count}\n")
    proc = cli("plan", "--env", env, "--env-file", str(extra), "--json")
    assert proc.returncode == 0, proc.stderr
    by_name = {s["service"]: s for s in json.loads(proc.stdout)["services"]}
    assert by_name["spark-worker-2"]["replicas"] == replicas
    assert by_name["spark-worker-1"]["replicas"] == 1


def test_an_unsupported_worker_count_is_refused(tmp_path: Path) -> None:
    extra = tmp_path / "workers.env"
    extra.write_text("SPARK_WORKER_COUNT=3\n")
    proc = cli("plan", "--env", "dev", "--env-file", str(extra))
    assert proc.returncode == 2
    assert "set it to 1 or 2" in one_error(proc)


# ---- 9. the health URL column --------------------------------------------------------------
def test_health_urls_are_keyed_by_service() -> None:
    from lakehouse_tasks.health import access_urls
    from lakehouse_tasks.project import open_project

    urls = access_urls(open_project("dev", strict=False))
    for service in ("minio", "spark-master", "trino", "superset", "airflow-webserver"):
        assert urls[service].startswith("http"), service


# ---- 10. tables never cut names and addresses -------------------------------------------------
def test_a_terminal_table_never_cuts_names_or_addresses() -> None:
    from rich.console import Console

    from lakehouse_tasks.ui import Table, render_rich

    rows = [
        {
            "service": "airflow-scheduler",
            "status": "healthy",
            "restarts": 0,
            "uptime": "3m12s",
            "cpu": "1.2% of 2 cpus",
            "memory": "300 MiB / 2 GiB (14%)",
            "url": "http://127.0.0.1:9001/",
            "ports": "127.0.0.1:9000->9000/tcp, 127.0.0.1:9001->9001/tcp",
        }
    ]
    columns = [(k, k.capitalize()) for k in rows[0]]
    buffer = io.StringIO()
    Console(file=buffer, width=120, force_terminal=False).print(
        render_rich(Table(columns=columns, rows=rows)), crop=False
    )
    text = buffer.getvalue()
    for whole in ("airflow-scheduler", "127.0.0.1:9000->9000/tcp", "http://127.0.0.1:9001/"):
        assert whole in text, text
    assert "…" not in text


def test_plan_on_a_120_column_terminal_keeps_every_service_name() -> None:
    proc = cli("plan", "--env", "dev", env={"LAKEHOUSE_FORCE_TTY": "1", "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    for name in ("airflow-scheduler", "airflow-webserver", "hive-metastore", "spark-worker-1"):
        assert name in plain
    assert "…" not in plain


# ---- 11. a dry run is no deploy ---------------------------------------------------------------
def test_a_dry_run_is_not_audited(state) -> None:
    proc = cli("deploy", "--env", "prod", "--dry-run", env=state)  # placeholders: exit 2
    assert proc.returncode == 2
    assert [r for r in audit_records(state) if r["task"] == "deploy"] == []


# ---- 12. first-run conveniences -------------------------------------------------------------
def test_the_readme_documents_completion_colour_state_and_logins() -> None:
    readme = (REPO / "README.md").read_text()
    for needle in ("--print-completion-script", "NO_COLOR", "LAKEHOUSE_STATE_DIR", "env.logins"):
        assert needle in readme
    script = cli("--print-completion-script", "bash")
    assert script.returncode == 0 and "complete" in script.stdout
    completion = cli("--complete", "--", "invoke", "hea")
    assert "health" in completion.stdout.split()


def test_no_color_turns_colour_off_on_a_terminal() -> None:
    coloured = cli("env.diff", "dev", "prod", env={"LAKEHOUSE_FORCE_TTY": "1"})
    assert re.search(r"\x1b\[3\dm", coloured.stdout)
    plain = cli("env.diff", "dev", "prod", env={"LAKEHOUSE_FORCE_TTY": "1", "NO_COLOR": "1"})
    assert plain.returncode == 0
    assert not re.search(r"\x1b\[3\dm", plain.stdout)


def test_admin_logins_show_on_a_terminal_only(state) -> None:
    from lakehouse_tasks.environment import load_environment

    password = load_environment("dev", strict=False).values["MINIO_ROOT_PASSWORD"]
    terminal = cli("env.logins", "--env", "dev", env={"LAKEHOUSE_FORCE_TTY": "1", **state})
    assert terminal.returncode == 0, terminal.stderr
    assert password in terminal.stdout and "MinIO console" in terminal.stdout
    piped = cli("env.logins", "--env", "dev", env=state)
    assert password not in piped.stdout and MASK in piped.stdout
    assert "terminal" in piped.stderr
    as_json = cli("env.logins", "--env", "dev", "--json", env={"LAKEHOUSE_FORCE_TTY": "1"})
    assert password not in as_json.stdout
    assert {r["name"] for r in json.loads(as_json.stdout)["logins"]} >= {"MinIO console"}
    assert password not in json.dumps(audit_records(state))
