"""A crash-looping database is backed up as it rests, on compose and on swarm, and loses nothing.

A real PostgreSQL server (the stand-in image) holds rows in its named volume; a bad setting
added to its ``postgresql.conf`` makes every start fail, and the engine keeps starting it
again (compose: ``restart: unless-stopped``; swarm: restart condition any). Such a database
is neither up (it cannot be dumped) nor at rest (the engine starts it again at any moment):
the backup stops it with the volumes' users, archives its data volume, and leaves it in its
loop as it found it, without waiting for a health it did not have; a restore of that
archive stops it the same way while the volume goes back. Once the setting is gone
the server comes back with every row, and the next backup dumps it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.data.backup import create_backup
from lakehouse_tasks.data.restore import restore_backup
from lakehouse_tasks.data.store import list_backups
from lakehouse_tasks.deploy import DeployOptions, deploy
from lakehouse_tasks.notices import RecordedNotices
from tests.engine.backend_world import World, backend_world

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PGDATA = "/var/lib/postgresql/data"


@pytest.fixture(params=["compose", "swarm"])
def world(
    request: pytest.FixtureRequest,
    lakehouse_project: Path,
    standin_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    with backend_world(
        request,
        lakehouse_project,
        standin_images,
        monkeypatch,
        env="dev",
        hint="loop",
        password="restarting-password-0123456789",
    ) as world:
        yield world


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _until(what: str, check: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_crash_looping_database_is_archived_at_rest_and_keeps_its_rows(world: Any) -> None:
    backend = world.backend
    first = deploy(
        world.project(), DeployOptions(skip_preflight=True, timeout=240), backend=backend
    )
    assert first.ok, first.summary
    world.psql("CREATE TABLE kept AS SELECT generate_series(1, 100) AS id")

    # a setting the server does not know: every start ends in FATAL, and the engine retries
    cid = backend.exec_target(world.project(), "metastore-db")
    _docker("exec", cid, "sh", "-c", f"echo 'no_such_setting = 1' >> {PGDATA}/postgresql.conf")
    _docker("exec", cid, "kill", "-INT", "1")  # a fast shutdown: the server exits by itself
    _until(
        "the engine to restart metastore-db",
        lambda: "metastore-db" in backend.restarting_services(world.project()),
    )

    # the backup stops it (with the volume's other users), archives its volume at rest,
    # never dumps it, and puts it back into its loop: the stack is left as it was found
    notices = RecordedNotices()
    manifest = create_backup(world.project(), backend=backend, tag="looping", out=notices)
    kinds = {(a.kind, a.source) for a in manifest.artefacts}
    assert ("volume-archive", "db-data") in kinds
    assert ("postgres-dump", "metastore-db") not in kinds
    assert (
        "info",
        "metastore-db is restarting (a crash loop): stopping and archiving its data volume "
        "(db-data) as it rests instead of dumping",
    ) in notices.lines
    _until(
        "metastore-db to be back in its loop",
        lambda: "metastore-db" in backend.restarting_services(world.project()),
    )

    # a restore of that archive stops it first: while the volume goes back, nothing runs or
    # restarts it; then it goes back into its loop, and the restore does not wait for it
    backups, _ = list_backups(world.root / "backups", "dev")
    info = next(b for b in backups if b.id == manifest.id)
    during: list[tuple[list[str], dict[str, str]]] = []

    def look() -> None:
        project = world.project()
        during.append((backend.running_services(project), backend.restarting_services(project)))

    told = RecordedNotices()
    restored = restore_backup(
        world.project(), info, only=["metastore-db"], backend=backend, safety_backup=False,
        out=told, inspect_restored=look,
    )  # fmt: skip
    assert {r["status"] for r in restored.restored} == {"ok"}
    assert "metastore-db" in restored.services
    ((running, restarting),) = during
    assert "metastore-db" not in running and "metastore-db" not in restarting, during
    assert (
        "warn",
        "metastore-db is restarting (a crash loop): stopped for the restore with the others, "
        "started again after it, not waited for",
    ) in told.lines

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
    assert world.psql("SELECT count(*) FROM kept") == "100"
    recovered = create_backup(world.project(), backend=backend, tag="recovered")
    assert ("postgres-dump", "metastore-db") in {(a.kind, a.source) for a in recovered.artefacts}
