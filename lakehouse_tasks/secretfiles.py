"""Secrets as files for the containers: the sources of the compose ``secrets:`` of the stack.

In staging and prod no secret reaches a container through its environment (which ``docker
inspect`` and ``docker compose config`` show) or its command line (which ``ps`` shows): each
service reads its secrets from files under ``/run/secrets/`` with the image's own convention
(``POSTGRES_PASSWORD_FILE``, ``MINIO_ROOT_PASSWORD_FILE``, Grafana's ``__FILE``, Airflow's
``_CMD``, Superset's config, the Hive and generic wrappers). The compose files name those
files ``${LAKEHOUSE_SENSITIVE_DIR}/<VARIABLE>``; this module writes them from the resolved
environment before compose runs.

The directory is ``<state dir>/secrets/<project>`` (mode 0700, untracked). A file is mode
0640, owned by the operator and the operator's group, and every service that reads one gets
that group (``group_add: [${LAKEHOUSE_SENSITIVE_GID}]``): the images run as different users
(root without capabilities, spark 185, hive/trino 1000, superset, airflow 50000, grafana
472), and a group is what lets each of them read the file without making it world-readable or
needing root to chown it. Files are replaced atomically; files of secrets that no longer
exist are removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from .environment import PLACEHOLDER, Environment
from .paths import state_dir, write_atomic

DIR_VARIABLE = "LAKEHOUSE_SENSITIVE_DIR"
GID_VARIABLE = "LAKEHOUSE_SENSITIVE_GID"


def derived_secrets(env: Environment) -> dict[str, str]:
    """Secrets composed from other values: Airflow reads its whole database URL from one
    command (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD``)."""
    password = env.get("AIRFLOW_DB_PASSWORD") or ""
    if not password:
        return {}
    user = quote(env.get("AIRFLOW_DB_USER") or "airflow", safe="")
    name = quote(env.get("AIRFLOW_DB_NAME") or "airflow", safe="")
    return {
        "AIRFLOW_SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://{user}:{quote(password, safe='')}@airflow-db:5432/{name}"
        )
    }


def secret_values(env: Environment) -> dict[str, str]:
    """Every secret of the environment that has a real value, by variable name."""
    values = {
        key: value
        for key, value in env.values.items()
        if env.is_secret(key) and value and PLACEHOLDER not in value
    }
    values.update(derived_secrets(env))
    return values


def secrets_dir(env: Environment, project_name: str) -> Path:
    return state_dir(env.root) / "secrets" / project_name


def write_secret_files(env: Environment, project_name: str) -> dict[str, str]:
    """Write the secret files of one project; return the variables that tell compose where
    they are (``LAKEHOUSE_SENSITIVE_DIR``, ``LAKEHOUSE_SENSITIVE_GID``)."""
    directory = secrets_dir(env, project_name)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    gid = os.getgid()
    wanted = secret_values(env)
    for name, value in wanted.items():
        target = directory / name
        if target.exists() and _same(target, value, gid):
            continue
        write_atomic(target, value, mode=0o640)  # no trailing newline: some readers keep it
    for stale in directory.iterdir():
        if stale.name not in wanted and not stale.name.startswith("."):
            stale.unlink(missing_ok=True)
    return {DIR_VARIABLE: str(directory), GID_VARIABLE: str(gid)}


def _same(path: Path, value: str, gid: int) -> bool:
    try:
        info = path.stat()
        return info.st_mode & 0o777 == 0o640 and info.st_gid == gid and path.read_text() == value
    except OSError:
        return False
