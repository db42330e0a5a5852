"""The two-service stack (a real PostgreSQL with a named volume, a busybox stand-in with
one) as an environment of a throw-away project, on the compose or the swarm backend: what the
backend-parametrized engine tests share."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.backends import backend_named
from lakehouse_tasks.project import open_project
from lakehouse_tasks.testing import write_env
from tests.conftest import unique_project_name
from tests.engine.test_swarm_data_engine import COMPOSE
from tests.engine.test_swarm_engine import remove_stack


@dataclass
class World:
    backend: Any
    env: str
    name: str  # the compose project (and swarm stack) name
    image: str  # the postgres stand-in
    root: Path
    recorder: Any = None  # a RecordingPlugin, where the test registers one

    def project(self) -> Any:
        opened = open_project(self.env, root=self.root, strict=False)
        opened.rehearsal = True  # a labelled single node, no reservations on swarm
        return opened

    def psql(self, sql: str) -> str:
        """``sql`` run by ``psql`` in the running metastore-db; its output, stripped."""
        cid = self.backend.exec_target(self.project(), "metastore-db")
        proc = subprocess.run(
            ["docker", "exec", cid, "psql", "-U", "hive", "-d", "metastore", "-tAc", sql],
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


@contextmanager
def backend_world(
    request: pytest.FixtureRequest,
    root: Path,
    standin_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    env: str,
    hint: str,
    password: str,
) -> Iterator[World]:
    """``request.param`` names the backend; its stack is removed, volumes too, at the end."""
    name = str(request.param)
    if name == "swarm":
        request.getfixturevalue("single_node_swarm")
    project_name = unique_project_name(f"{hint}{name}")
    monkeypatch.delenv("LAKEHOUSE_REHEARSAL", raising=False)
    monkeypatch.delenv("DEPLOY_TARGET", raising=False)
    (root / "compose" / "docker-compose.yaml").write_text(COMPOSE)
    write_env(
        root,
        env,
        {
            "COMPOSE_PROJECT_NAME": project_name,
            "PG_IMAGE": standin_images["postgres"],
            "BB_IMAGE": standin_images["busybox"],
            "DB_PASSWORD": password,
            "BACKUP_DIR": str(root / "backups"),
        },
    )
    try:
        yield World(backend_named(name), env, project_name, standin_images["postgres"], root)
    finally:
        if name == "swarm":
            remove_stack(project_name)
        else:
            subprocess.run(
                ["docker", "compose", "-p", project_name, "down", "-v", "--remove-orphans"],
                capture_output=True,
                cwd=root,
            )
