"""Secrets as files: in staging and prod no secret value is in the merged model at all.

`docker compose config` of staging (with and without the `tls` profile) and prod is asked
with a unique random value for every secret variable (an extra env file after the tracked
one): none of those values may appear anywhere in the output, no container environment may
carry a secret-named variable, and every `*_FILE`/`__FILE`/`_CMD` variable must name a file
under /run/secrets that the service mounts from the tool's secret directory.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.secretfiles import DIR_VARIABLE, GID_VARIABLE

from .stack import COMPOSE_DIR, _clean_environment, compose_command, variables_schema

CASES = [("staging", ()), ("staging", ("tls",)), ("prod", ())]
SECRET_DIR = "/var/lib/lakehouse-contract/secrets/p"
SECRET_GID = "4242"
#: Container-side names that carry a secret when set directly.
SECRET_VARIABLES = {
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "METASTORE_DB_PASSWORD",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__WEBSERVER__SECRET_KEY",
    "SUPERSET_SECRET_KEY",
    "SUPERSET_DB_PASSWORD",
    "SUPERSET_ADMIN_PASSWORD",
    "SUPERSET_ADMIN_USER",
    "AIRFLOW_ADMIN_USER",
    "AIRFLOW_ADMIN_PASSWORD",
    "GF_SECURITY_ADMIN_PASSWORD",
    "GF_SECURITY_ADMIN_USER",
}


def _secret_names() -> list[str]:
    return sorted(n for n, spec in variables_schema().items() if spec["type"] == "secret")


@pytest.fixture(scope="module")
def unique_values(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    values = {name: "v" + secrets.token_hex(12) for name in _secret_names()}
    path = tmp_path_factory.mktemp("secret-values") / "values.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path, values


def _merged(env: str, profiles: tuple[str, ...], values_file: Path) -> tuple[str, dict[str, Any]]:
    argv = [
        *compose_command(env, profiles=profiles),
        "--env-file",
        str(values_file),
        "config",
        "--format",
        "json",
    ]
    environment = {**_clean_environment(), DIR_VARIABLE: SECRET_DIR, GID_VARIABLE: SECRET_GID}
    result = subprocess.run(argv, capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads(result.stdout)


@pytest.mark.parametrize(("env", "profiles"), CASES, ids=lambda c: "-".join(c) if c else "")
def test_no_secret_value_appears_in_the_merged_model(compose_cli, unique_values, env, profiles):
    values_file, values = unique_values
    text, config = _merged(env, profiles, values_file)
    # The values did reach compose (interpolation needs them), or the test would prove nothing.
    assert config["services"]["metastore-db"]["environment"]["POSTGRES_USER"]
    leaked = sorted(name for name, value in values.items() if value in text)
    assert leaked == [], f"{env}: `docker compose config` shows the value of {leaked}"


@pytest.mark.parametrize(("env", "profiles"), CASES, ids=lambda c: "-".join(c) if c else "")
def test_every_service_reads_its_secrets_from_mounted_files(
    compose_cli, unique_values, env, profiles
):
    values_file, _ = unique_values
    _, config = _merged(env, profiles, values_file)
    top = config.get("secrets") or {}
    secret_names = set(_secret_names()) | {"AIRFLOW_SQL_ALCHEMY_CONN"}
    for key, spec in top.items():
        path = Path(spec["file"])
        assert path.parent == Path(SECRET_DIR), f"{key}: {path} is not in the tool's directory"
        assert path.name in secret_names, f"{key}: no variable {path.name} to write it from"
    readers = 0
    for name, service in config["services"].items():
        environment = service.get("environment") or {}
        carried = SECRET_VARIABLES & set(environment)
        assert not carried, f"{env}/{name}: {sorted(carried)} in the container's environment"
        assert "Password=" not in str(environment.get("SERVICE_OPTS", ""))
        mounted = {s["target"] for s in service.get("secrets") or []}
        for variable, value in environment.items():
            if variable.endswith("_FILE") or variable.endswith("_CMD"):
                target = str(value).removeprefix("cat ").strip()
                assert target in mounted, f"{env}/{name}: {variable} names {target}, not mounted"
        if mounted:
            readers += 1
            assert SECRET_GID in [str(g) for g in service.get("group_add") or []], (
                f"{env}/{name}: reads secret files without their group"
            )
            for entry in service["secrets"]:
                assert entry["source"] in top
    assert readers >= 15, "most services read no secret file: the wiring is missing"


def test_dev_keeps_its_documented_values_in_the_environment(merged):
    config = merged("dev")
    assert not config.get("secrets")
    assert config["services"]["metastore-db"]["environment"]["POSTGRES_PASSWORD"]


def test_the_two_secrets_files_wire_the_same_services_and_declare_what_they_use():
    files = (COMPOSE_DIR / "docker-compose.secrets-files.yaml").read_text()
    env = (COMPOSE_DIR / "docker-compose.secrets-env.yaml").read_text()
    services = re.compile(r"^  ([a-z0-9-]+):\n", re.M)
    in_files = set(services.findall(files.split("\nsecrets:\n")[0]))
    assert in_files == set(services.findall(env))
    # Every secret the file mounts is declared, and every declared one is used.
    declared = set(re.findall(r"^  ([a-z_]+):\n    file:", files, re.M))
    used = set()
    for line in re.findall(r"secrets: \[([^\]]+)\]", files):
        used |= {s.strip() for s in line.split(",")}
    assert declared == used


def test_the_base_file_sets_no_secret():
    base = (COMPOSE_DIR / "docker-compose.yaml").read_text()
    code = "\n".join(line for line in base.splitlines() if not line.lstrip().startswith("#"))
    for name in _secret_names():
        # `$${NAME}` is the container's own shell variable, not an interpolation.
        assert not re.search(r"(?<!\$)\$\{" + name + r"\b", code), (
            f"docker-compose.yaml interpolates {name}"
        )
