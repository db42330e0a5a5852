"""A crash-looping database is refused by backup, on compose and on swarm, and loses nothing.

A real PostgreSQL server (the stand-in image) holds rows in its named volume; a bad setting
added to its ``postgresql.conf`` makes every start fail, and the engine keeps starting it
again (compose: ``restart: unless-stopped``; swarm: restart condition any). Such a database
is neither up (it cannot be dumped) nor at rest (its volume would be archived while the
server starts and writes): backup refuses it with exit 7 and writes nothing, and so does a
deploy, whose automatic backup comes first. Once the
setting is gone the server comes back with every row, and the backup passes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.backends import backend_named
from lakehouse_tasks.data.backup import create_backup
from lakehouse_tasks.data.store import list_backups
from lakehouse_tasks.deploy import DeployOptions, deploy
from lakehouse_tasks.errors import LakehouseError, RefusedError
from lakehouse_tasks.project import open_project
from lakehouse_tasks.testing import write_env
from tests.conftest import unique_project_name
from tests.engine.test_swarm_data_engine import COMPOSE
from tests.engine.test_swarm_engine import remove_stack

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PGDATA = "/var/lib/postgresql/data"


@pytest.fixture(params=["compose", "swarm"])
def world(
    request: pytest.FixtureRequest,
    lakehouse_project: Path,
    standin_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    name = str(request.param)
    if name == "swarm":
        request.getfixturevalue("single_node_swarm")
    project_name = unique_project_name(f"loop{name}")
    monkeypatch.delenv("LAKEHOUSE_REHEARSAL", raising=False)
    monkeypatch.delenv("DEPLOY_TARGET", raising=False)
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text(COMPOSE)
    write_env(
        lakehouse_project,
        "dev",
        {
            "COMPOSE_PROJECT_NAME": project_name,
            "PG_IMAGE": standin_images["postgres"],
            "BB_IMAGE": standin_images["busybox"],
            "DB_PASSWORD": "restarting-password-0123456789",
            "BACKUP_DIR": str(lakehouse_project / "backups"),
        },
    )

    def project() -> Any:
        opened = open_project("dev", root=lakehouse_project, strict=False)
        opened.rehearsal = True  # a labelled single node, no reservations on swarm
        return opened

    try:
        yield type(
            "World",
            (),
            {
                "backend": backend_named(name),
                "project": staticmethod(project),
                "name": project_name,
                "image": standin_images["postgres"],
                "root": lakehouse_project,
            },
        )
    finally:
        if name == "swarm":
            remove_stack(project_name)
        else:
            subprocess.run(
                ["docker", "compose", "-p", project_name, "down", "-v", "--remove-orphans"],
                capture_output=True,
                cwd=lakehouse_project,
            )


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _psql(world: Any, sql: str) -> str:
    cid = world.backend.exec_target(world.project(), "metastore-db")
    return _docker("exec", cid, "psql", "-U", "hive", "-d", "metastore", "-tAc", sql)


def _until(what: str, check: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_crash_looping_database_is_refused_and_keeps_its_rows(world: Any) -> None:
    backend = world.backend
    first = deploy(
        world.project(), DeployOptions(skip_preflight=True, timeout=240), backend=backend
    )
    assert first.ok, first.summary
    _psql(world, "CREATE TABLE kept AS SELECT generate_series(1, 100) AS id")

    # a setting the server does not know: every start ends in FATAL, and the engine retries
    cid = backend.exec_target(world.project(), "metastore-db")
    _docker("exec", cid, "sh", "-c", f"echo 'no_such_setting = 1' >> {PGDATA}/postgresql.conf")
    _docker("exec", cid, "kill", "-INT", "1")  # a fast shutdown: the server exits by itself
    _until(
        "the engine to restart metastore-db",
        lambda: "metastore-db" in backend.restarting_services(world.project()),
    )

    with pytest.raises(LakehouseError) as refused:
        create_backup(world.project(), backend=backend, tag="looping")
    assert refused.value.exit_code == 7
    assert refused.value.message.startswith(
        "Database service metastore-db of 'dev' is restarting: neither dumped"
    ), refused.value.message
    assert "invoke logs --env dev --service metastore-db" in refused.value.message
    # a deploy takes that backup first: it stops before touching the stack, and says so
    with pytest.raises(RefusedError) as deploy_refused:
        deploy(world.project(), DeployOptions(skip_preflight=True, timeout=60), backend=backend)
    assert deploy_refused.value.message.endswith(
        "The deploy takes that backup first, so it stops here; deploy again after stopping "
        "it, or with --skip-backup to deploy without the backup."
    ), deploy_refused.value.message
    assert list_backups(world.root / "backups", "dev")[0] == []

    # the fix: take the setting out of the volume; the next start brings every row back
    volume = f"{world.name}_db-data"
    _docker(
        "run", "--rm", "--entrypoint", "sh", "-v", f"{volume}:{PGDATA}", world.image,
        "-c", f"sed -i '/no_such_setting/d' {PGDATA}/postgresql.conf",
    )  # fmt: skip
    _until(
        "metastore-db to come back",
        lambda: (
            "metastore-db" in backend.running_services(world.project())
            and not backend.restarting_services(world.project())
        ),
        timeout=180,
    )
    assert _psql(world, "SELECT count(*) FROM kept") == "100"
    manifest = create_backup(world.project(), backend=backend, tag="recovered")
    assert ("postgres-dump", "metastore-db") in {(a.kind, a.source) for a in manifest.artefacts}
