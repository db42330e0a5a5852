"""Read the compose stack and the environment files the way the contract tests need them.

`merged_config` asks `docker compose config` for the fully merged, interpolated model of
one environment; the other helpers read the tracked files directly.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
ENV_DIR = REPO / "env"
ENVIRONMENTS = ("dev", "staging", "prod")

SERVICES = (
    "minio",
    "minio-init",
    "metastore-db",
    "superset-db",
    "airflow-db",
    "hive-metastore",
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    "trino",
    "superset",
    "airflow-init",
    "airflow-webserver",
    "airflow-scheduler",
    "ingestor",
    "dbt",
)
ONESHOTS = ("minio-init", "airflow-init")

# A `${NAME`, not preceded by another `$` (`$${NAME}` is an escaped, container-side variable).
_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return probe.returncode == 0


def compose_command(env: str, *, profiles: tuple[str, ...] = ()) -> list[str]:
    argv = [
        "docker",
        "compose",
        "--project-directory",
        str(REPO),
        "--env-file",
        str(ENV_DIR / f"{env}.env"),
        "-f",
        str(COMPOSE_DIR / "docker-compose.yaml"),
        "-f",
        str(COMPOSE_DIR / f"docker-compose.override.{env}.yaml"),
    ]
    # The secrets, as the tool merges them (Environment.compose_files).
    as_files = env_values(env).get("SENSITIVE_AS_FILES") == "true"
    argv += [
        "-f",
        str(COMPOSE_DIR / f"docker-compose.secrets-{'files' if as_files else 'env'}.yaml"),
    ]
    for profile in profiles:
        argv += ["--profile", profile]
    return argv


@functools.cache
def merged_config(env: str, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """The merged compose model of one environment, as `docker compose config` sees it."""
    argv = [*compose_command(env, profiles=profiles), "config", "--format", "json"]
    # A variable exported in the caller's shell would override the env file: start clean.
    result = subprocess.run(argv, capture_output=True, text=True, env=_clean_environment())
    if result.returncode != 0:
        raise AssertionError(f"`{' '.join(argv)}` failed:\n{result.stderr}")
    return json.loads(result.stdout)


def _clean_environment() -> dict[str, str]:
    import os

    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "XDG_RUNTIME_DIR")
    return {k: v for k, v in os.environ.items() if k in keep}


@functools.cache
def env_values(env: str) -> dict[str, str]:
    """The variables of env/<env>.env (python-dotenv syntax), in file order."""
    values = dotenv_values(ENV_DIR / f"{env}.env", interpolate=False)
    return {k: (v if v is not None else "") for k, v in values.items()}


@functools.cache
def variables_schema() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((ENV_DIR / "variables.yaml").read_text())


def compose_files() -> list[Path]:
    return sorted(COMPOSE_DIR.glob("docker-compose*.yaml"))


def compose_variables() -> dict[str, set[str]]:
    """Every `${VAR}` of the compose files (comment lines aside), mapped to its files."""
    found: dict[str, set[str]] = {}
    for path in compose_files():
        code = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        for name in _VAR.findall(code):
            found.setdefault(name, set()).add(path.name)
    return found


def is_oneshot(service: dict[str, Any]) -> bool:
    return service.get("labels", {}).get("io.lakehouse.oneshot") == "true"


def replicas(service: dict[str, Any]) -> int:
    value = (service.get("deploy") or {}).get("replicas")
    return 1 if value is None else int(value)


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(value: str | int) -> int:
    """A compose size ("512M", "4G", or bytes as `config` prints them) in bytes."""
    text = str(value).strip().lower().removesuffix("b")
    match = re.fullmatch(r"(\d+)([kmg]?)", text)
    if not match:
        raise ValueError(f"not a memory size: {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def human_memory(n_bytes: int) -> str:
    for unit, size in (("G", 1024**3), ("M", 1024**2)):
        if n_bytes % size == 0:
            return f"{n_bytes // size}{unit}"
    return str(n_bytes)
