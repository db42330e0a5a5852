"""Data on the swarm target against a real engine, on a single-node swarm this module creates
(and leaves at its end when it created it).

- Backup and restore with ``--target swarm`` through the tasks: a postgres stand-in with a named
  volume and a busybox stand-in with a named volume; rows and a file are written, backed up,
  the stack and its volumes are removed, the stack is deployed again (empty) and restored; the
  rows and the file's sha256 are identical afterwards. An interrupted backup's state file is
  finished by ``recover_interrupted`` (scaled back to the recorded replica count).
- prod credentials as swarm secrets: the postgres stand-in reads ``POSTGRES_PASSWORD_FILE`` /
  ``POSTGRES_USER_FILE`` from ``/run/secrets``; the database answers with the secret password,
  the password is nowhere in ``docker service inspect``, and teardown removes the secrets.

Stacks use ``tests.conftest.unique_project_name()`` and are removed in finalizers (stack,
volumes, secrets).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from invoke import Context

from lakehouse_tasks.backends.swarm import SwarmBackend
from lakehouse_tasks.backends.swarm.policies import options_for
from lakehouse_tasks.backends.swarm.views import take_snapshot
from lakehouse_tasks.data import maintenance
from lakehouse_tasks.data import store as data_store
from lakehouse_tasks.deploy import DeployOptions
from lakehouse_tasks.deploy import deploy as run_deploy
from lakehouse_tasks.engine import swarm as engine_swarm
from lakehouse_tasks.errors import RefusedError
from lakehouse_tasks.project import open_project
from lakehouse_tasks.teardown import teardown as run_teardown
from lakehouse_tasks.testing import write_env
from tests.conftest import unique_project_name
from tests.engine.test_swarm_engine import remove_stack

pytestmark = [pytest.mark.engine, pytest.mark.slow]

COMPOSE = """
services:
  metastore-db:
    image: ${PG_IMAGE}
    environment:
      POSTGRES_USER: hive
      POSTGRES_PASSWORD: ${DB_PASSWORD}
      POSTGRES_DB: metastore
    volumes: [db-data:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U hive -d metastore"]
      interval: 1s
      timeout: 3s
      retries: 30
      start_period: 2s
    restart: unless-stopped
    labels: {io.lakehouse.layer: "1"}
  store:
    image: ${BB_IMAGE}
    environment: {STANDIN_SERVICE: store, STANDIN_DATA_DIR: /data, STANDIN_HTTP_PORTS: "8080"}
    volumes: [store-data:/data]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://localhost:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 3
      start_period: 1s
    restart: unless-stopped
    depends_on: [metastore-db]
    labels: {io.lakehouse.layer: "2"}
volumes:
  db-data: {}
  store-data: {}
"""


def deploy_on_swarm(
    project: Any,
    *,
    services: Sequence[str] = (),
    timeout: float = 600.0,
    reporter: Any = None,
    skip_preflight: bool = True,
    skip_backup: bool = True,
) -> Any:
    """The lifecycle deploy on the swarm backend (``deploy --target swarm``)."""
    options = DeployOptions(
        services=tuple(services),
        timeout=timeout,
        skip_preflight=skip_preflight,
        skip_backup=skip_backup,
    )
    return run_deploy(project, options, backend=SwarmBackend(), reporter=reporter)


def teardown_on_swarm(project: Any, **kwargs: Any) -> Any:
    """The lifecycle teardown on the swarm backend (``teardown --target swarm``)."""
    return run_teardown(project, backend=SwarmBackend(), **kwargs)


@pytest.fixture
def data_stack(
    lakehouse_project: Path,
    single_node_swarm: None,
    standin_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Any]]:
    """Factory ``make(env)``: writes ``env/<env>.env`` and opens the two-service project (a
    rehearsal for swarm's options: labelled node, short monitor window)."""
    name = unique_project_name("swdata")
    password = secrets.token_hex(12)
    monkeypatch.delenv("LAKEHOUSE_REHEARSAL", raising=False)
    monkeypatch.delenv("DEPLOY_TARGET", raising=False)
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text(COMPOSE)

    def make(env: str = "dev") -> Any:
        write_env(
            lakehouse_project,
            env,
            {
                "COMPOSE_PROJECT_NAME": name,
                "PG_IMAGE": standin_images["postgres"],
                "BB_IMAGE": standin_images["busybox"],
                "DB_PASSWORD": password,
                "BACKUP_DIR": str(lakehouse_project / "backups"),
            },
        )
        project = open_project(env, root=lakehouse_project, strict=False)
        project.rehearsal = True
        return project

    make.stack = name  # type: ignore[attr-defined]
    make.password = password  # type: ignore[attr-defined]
    make.root = lakehouse_project  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        remove_stack(name)


def _container(stack: str, service: str) -> str:
    out = subprocess.run(
        ["docker", "ps", "-q", "--filter",
         f"label={engine_swarm.SWARM_SERVICE_LABEL}={stack}_{service}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out, f"no running task of {service}"
    return out[0]


def _exec(container: str, *argv: str, env: dict[str, str] | None = None) -> str:
    extra = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    proc = subprocess.run(
        ["docker", "exec", *extra, container, *argv], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _psql(stack: str, sql: str) -> str:
    return _exec(
        _container(stack, "metastore-db"), "psql", "-U", "hive", "-d", "metastore", "-tAc", sql
    )


def _replicas(stack: str, service: str) -> int:
    return engine_swarm.service_replicas(["docker"], [f"{stack}_{service}"])[f"{stack}_{service}"]


def test_backup_and_restore_with_target_swarm(
    data_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.backup import create as backup_task
    from lakehouse_tasks.tasks.restore import restore as restore_task

    stack = data_stack.stack
    project = data_stack()
    timings: dict[str, float] = {}
    started = time.monotonic()
    first = deploy_on_swarm(project, skip_preflight=True, timeout=180)
    assert first.ok, first.summary
    timings["deploy"] = time.monotonic() - started

    _psql(stack, "CREATE TABLE kept (id int PRIMARY KEY, note text)")
    _psql(stack, "INSERT INTO kept SELECT g, md5(g::text) FROM generate_series(1, 500) g")
    rows_before = _psql(stack, "SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM kept")
    file_hash = _exec(
        _container(stack, "store"),
        "sh", "-c", "head -c 300000 /dev/urandom > /data/blob.bin && sha256sum /data/blob.bin",
    ).split()[0]  # fmt: skip

    # Backup through the task: store is scaled to 0 while its volume is archived, then back.
    started = time.monotonic()
    backup_task(Context(), env="dev", target="swarm", tag="swarm")
    timings["backup"] = time.monotonic() - started
    backups, _ = data_store.list_backups(data_stack.root / "backups", "dev")
    assert len(backups) == 1
    info = backups[0]
    kinds = {(a.kind, a.source) for a in info.manifest.artefacts}
    assert kinds == {("postgres-dump", "metastore-db"), ("volume-archive", "store-data")}
    assert _replicas(stack, "store") == 1
    assert not list((data_stack.root / ".lakehouse").glob("stopped-*.json"))

    # Wipe: the stack and its volumes go, the stack comes back empty.
    started = time.monotonic()
    torn = teardown_on_swarm(project, remove_volumes=True, yes=True)
    assert torn.ok and not torn.volumes_after
    again = deploy_on_swarm(data_stack(), skip_preflight=True, timeout=180)
    assert again.ok, again.summary
    timings["wipe+redeploy"] = time.monotonic() - started
    assert "kept" not in _psql(stack, "SELECT string_agg(tablename, ',') FROM pg_tables")
    assert "blob.bin" not in _exec(_container(stack, "store"), "ls", "/data")

    started = time.monotonic()
    capsys.readouterr()
    restore_task(Context(), backup=info.id, env="dev", yes=True, target="swarm", json_=True)
    timings["restore"] = time.monotonic() - started
    restored = json.loads(capsys.readouterr().out)
    # store (it mounts the volume and depends on the database) was scaled to 0 and back.
    assert restored["services"] == ["store"], restored
    assert {r["status"] for r in restored["restored"]} == {"ok"}
    assert _psql(stack, "SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM kept") == (
        rows_before
    )
    restored_hash = _exec(_container(stack, "store"), "sha256sum", "/data/blob.bin").split()[0]
    assert restored_hash == file_hash
    assert _replicas(stack, "store") == 1
    assert take_snapshot(data_stack()).ok
    # The restore took a safety backup of the (empty) redeployed state first, on swarm too.
    backups, _ = data_store.list_backups(data_stack.root / "backups", "dev")
    assert any(b.manifest.tag == "pre-restore" for b in backups)

    # A killed backup's state file: recover_interrupted scales the service back.
    subprocess.run(
        ["docker", "service", "scale", "--detach", f"{stack}_store=0"],
        check=True, capture_output=True,
    )  # fmt: skip
    state = data_stack.root / ".lakehouse" / f"stopped-{stack}-1-1.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(
        json.dumps({"services": ["store"], "target": "swarm", "replicas": {"store": 1}, "pid": 0})
    )
    assert maintenance.recover_interrupted(data_stack()) == ["store"]
    assert _replicas(stack, "store") == 1 and not state.exists()
    print(f"\nswarm backup/restore: {', '.join(f'{k} {v:.1f}s' for k, v in timings.items())}")


def test_prod_credentials_as_swarm_secrets(data_stack: Any) -> None:
    stack = data_stack.stack
    project = data_stack("prod")
    options = options_for(project)
    assert options.secrets
    started = time.monotonic()
    result = deploy_on_swarm(project, skip_preflight=True, timeout=180)
    took = time.monotonic() - started
    assert result.ok, result.summary

    inspected = subprocess.run(
        ["docker", "service", "inspect", f"{stack}_metastore-db"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert data_stack.password not in inspected
    spec = json.loads(inspected)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]
    env = spec.get("Env") or []
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in env
    assert "POSTGRES_USER_FILE=/run/secrets/postgres_user" in env
    assert not any(e.startswith(("POSTGRES_PASSWORD=", "POSTGRES_USER=")) for e in env)
    created = engine_swarm.stack_secrets(["docker"], stack)
    assert len(created) == 2

    # The database answers over TCP (scram-sha-256) with the password read from the secret
    # file, and refuses another one.
    db = _container(stack, "metastore-db")
    answer = _exec(
        db, "sh", "-c",
        'PGPASSWORD="$(cat /run/secrets/postgres_password)" psql -h 127.0.0.1 '
        '-U "$(cat /run/secrets/postgres_user)" -d metastore -tAc "SELECT current_user"',
    )  # fmt: skip
    assert answer == "hive"
    wrong = subprocess.run(
        ["docker", "exec", "-e", "PGPASSWORD=not-the-password", db,
         "psql", "-h", "127.0.0.1", "-U", "hive", "-d", "metastore", "-tAc", "SELECT 1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    assert data_stack.password not in _exec(db, "env")

    # prod's fresh-backup rule holds on swarm too: without a backup the volumes stay, the
    # stack keeps running; with --backup the backup is taken on swarm, then everything goes.
    with pytest.raises(RefusedError, match="has no backup"):
        teardown_on_swarm(project, remove_volumes=True, yes=True)
    assert _psql(stack, "SELECT 1") == "1"
    torn = teardown_on_swarm(project, remove_volumes=True, yes=True, backup=True)
    assert torn.ok and "taken before teardown" in torn.backup
    assert engine_swarm.stack_secrets(["docker"], stack) == []
    print(f"\nswarm prod secrets: deploy {took:.1f}s, {len(created)} secrets, removed by teardown")
