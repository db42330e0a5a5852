"""Backup and restore against a real engine and real PostgreSQL.

A small synthetic stack: two PostgreSQL stand-ins (databases, found by ``POSTGRES_DB``) and two
busybox stand-ins with named volumes, one volume shared by both; a client of one database and a
viewer behind that client.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks.backends.compose import ComposeBackend
from lakehouse_tasks.data import backup as data_backup
from lakehouse_tasks.data.backup import create_backup
from lakehouse_tasks.data.maintenance import recover_interrupted
from lakehouse_tasks.data.plan import has_data
from lakehouse_tasks.data.restore import restore_backup
from lakehouse_tasks.data.store import find_backup, list_backups
from lakehouse_tasks.data.verify import verify_backup
from lakehouse_tasks.errors import LakehouseError
from lakehouse_tasks.project import Project, open_project
from lakehouse_tasks.tasks.backup import verify as verify_task
from lakehouse_tasks.tasks.restore import restore as restore_task
from lakehouse_tasks.ui import Output

pytestmark = [pytest.mark.engine, pytest.mark.slow]

POSTGRES = "lakehouse-rehearsal/postgres:rehearsal"
BUSYBOX = "lakehouse-rehearsal/busybox:rehearsal"

COMPOSE = """
x-pg-health: &pg-health
  interval: 1s
  timeout: 3s
  retries: 90
services:
  db-a:
    image: {pg}
    environment: {{POSTGRES_USER: alice, POSTGRES_PASSWORD: alice-secret-pw, POSTGRES_DB: appa}}
    volumes: [dba-data:/var/lib/postgresql/data]
    healthcheck:
      <<: *pg-health
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U alice -d appa"]
  db-b:
    image: {pg}
    environment: {{POSTGRES_USER: bob, POSTGRES_PASSWORD: bob-secret-pw, POSTGRES_DB: appb}}
    volumes: [dbb-data:/var/lib/postgresql/data]
    healthcheck:
      <<: *pg-health
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U bob -d appb"]
  store:
    image: {bb}
    environment: {{STANDIN_SERVICE: store, STANDIN_DATA_DIR: /data}}
    volumes: [store-data:/data]
  worker:
    image: {bb}
    environment: {{STANDIN_SERVICE: worker, STANDIN_DATA_DIR: /work}}
    depends_on: [db-a]
    volumes: [work-data:/work, store-data:/shared]
  client:
    image: {bb}
    environment: {{STANDIN_SERVICE: client}}
    depends_on: [db-b]
  viewer:
    image: {bb}
    environment: {{STANDIN_SERVICE: viewer}}
    depends_on: [client]
volumes:
  dba-data: {{}}
  dbb-data: {{}}
  store-data: {{}}
  work-data: {{}}
"""

DATABASES = {"db-a": ("alice", "appa"), "db-b": ("bob", "appb")}
VOLUMES = {"store-data": "store", "work-data": "worker"}


def _images_present() -> bool:
    try:
        out = subprocess.run(
            ["docker", "image", "inspect", POSTGRES, BUSYBOX], capture_output=True, check=False
        )
    except OSError:
        return False
    return out.returncode == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not _images_present():
        pytest.skip("the rehearsal stand-in images are not built")
    root = tmp_path_factory.mktemp("bkstack")
    (root / "compose").mkdir()
    (root / "env").mkdir()
    name = f"lhbk{uuid.uuid4().hex[:8]}"
    (root / "compose" / "docker-compose.yaml").write_text(COMPOSE.format(pg=POSTGRES, bb=BUSYBOX))
    dest = root / "backups"
    (root / "env" / "dev.env").write_text(f"COMPOSE_PROJECT_NAME={name}\nBACKUP_DIR={dest}\n")
    saved = {k: os.environ.get(k) for k in ("LAKEHOUSE_HOME", "LAKEHOUSE_STATE_DIR")}
    os.environ["LAKEHOUSE_HOME"] = str(root)
    os.environ["LAKEHOUSE_STATE_DIR"] = str(root / ".lakehouse")
    project = open_project("dev")
    info = {"root": root, "name": name, "dest": dest, "project": project}
    try:
        _up(project)
        yield info
    finally:
        project.compose.compose("down", "-v", "--remove-orphans")
        for vol in subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"name={name}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split():
            subprocess.run(["docker", "volume", "rm", "-f", vol], check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _up(project: Project) -> None:
    project.compose.compose("up", "-d", "--wait", "--wait-timeout", "120")


def _psql(project: Project, service: str, sql: str) -> str:
    user, db = DATABASES[service]
    return project.compose.compose("exec", "-T", service, "psql", "-U", user, "-d", db, "-tAc", sql)


def _seed(project: Project) -> dict[str, Any]:
    """Rows in each database, files in each volume; returns what must come back."""
    for service in DATABASES:
        _psql(
            project,
            service,
            "CREATE TABLE IF NOT EXISTS items(id int primary key, body text);"
            f"INSERT INTO items SELECT g, md5(g::text || '{service}') FROM generate_series(1, 500) g "
            "ON CONFLICT DO NOTHING;",
        )
    for volume in VOLUMES:
        _in_volume(
            project,
            volume,
            "mkdir -p /v/seed/sub && head -c 300000 /dev/urandom > /v/seed/blob.bin "
            "&& echo hello > /v/seed/sub/note.txt && echo dot > /v/seed/.hidden",
        )
    return _state(project)


def _volume_name(project: Project, key: str) -> str:
    return project.stack.volumes[key]


def _in_volume(project: Project, key: str, script: str) -> str:
    out = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{_volume_name(project, key)}:/v", "--entrypoint", "sh",
         POSTGRES, "-c", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


def _state(project: Project) -> dict[str, Any]:
    rows = {
        s: _psql(
            project, s, "SELECT md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM items"
        )
        for s in DATABASES
    }
    files = {
        key: _in_volume(project, key, "cd /v/seed && find . -type f | sort | xargs sha256sum")
        for key in VOLUMES
    }
    return {"rows": rows, "files": files}


def test_round_trip_restores_every_row_and_file(stack: dict[str, Any]) -> None:
    project: Project = stack["project"]
    before = _seed(project)
    assert has_data(project)
    manifest = create_backup(project, tag="roundtrip", out=Output())
    # volumes in zstd (Debian's zstd program is on the test machines), named in the manifest
    assert {a.compression for a in manifest.artefacts if a.kind == "volume-archive"} == {"zstd"}
    kinds = {(a.kind, a.source) for a in manifest.artefacts}
    assert kinds == {
        ("postgres-dump", "db-a"),
        ("postgres-dump", "db-b"),
        ("volume-archive", "store-data"),
        ("volume-archive", "work-data"),
    }
    # every service runs again after the consistent (stopped) archive
    assert set(ComposeBackend().running_services(project)) == {
        "db-a",
        "db-b",
        "store",
        "worker",
        "client",
        "viewer",
    }
    info = find_backup(stack["dest"], manifest.id)
    on_disk = json.loads((info.path / "manifest.json").read_text())
    assert on_disk["environment"] == "dev" and on_disk["tag"] == "roundtrip"
    assert all(len(a["sha256"]) == 64 for a in on_disk["artefacts"])
    verify_backup(info, deep=True, project=project, out=Output())
    assert find_backup(stack["dest"], manifest.id).is_verified

    project.compose.compose("down", "-v")
    fresh = open_project("dev")
    _up(fresh)
    assert _state_or_none(fresh) != before
    result = restore_backup(fresh, info, safety_backup=True, out=Output())
    assert result.safety_backup is not None
    assert _state(fresh) == before
    leftovers = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", "name=pre-restore"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert stack["name"] not in leftovers


def _state_or_none(project: Project) -> Any:
    try:
        return _state(project)
    except Exception:
        return None


def _started_at(project: Project, service: str) -> str:
    cid = ComposeBackend().exec_target(project, service)
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.StartedAt}}", cid],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _backup_of_db_b(stack: dict[str, Any], table: str, value: int) -> Any:
    """A backup of db-b holding ``table`` with one row, ``value``."""
    project: Project = stack["project"]
    _psql(project, "db-b", f"CREATE TABLE {table}(v int); INSERT INTO {table} VALUES ({value})")
    manifest = create_backup(project, only=["db-b"], tag=table, out=Output())
    return find_backup(stack["dest"], manifest.id)


def test_a_database_restore_restarts_its_client_and_leaves_the_rest_running(
    stack: dict[str, Any],
) -> None:
    project: Project = stack["project"]
    info = _backup_of_db_b(stack, "marks", 1)
    _psql(project, "db-b", "INSERT INTO marks VALUES (2)")
    before = {s: _started_at(project, s) for s in ("client", "viewer", "worker", "db-b")}
    result = restore_backup(project, info, only=["db-b"], safety_backup=False, out=Output())
    assert result.services == ["client"]
    assert _psql(project, "db-b", "SELECT string_agg(v::text, ',') FROM marks").strip() == "1"
    after = {s: _started_at(project, s) for s in before}
    assert after["client"] != before["client"]  # stopped for the restore, started again
    assert {s: after[s] for s in ("viewer", "worker", "db-b")} == {
        s: before[s] for s in ("viewer", "worker", "db-b")
    }
    assert {"client", "viewer", "worker", "db-b"} <= set(ComposeBackend().running_services(project))


def test_a_dump_that_does_not_load_leaves_the_current_database_as_it_was(
    stack: dict[str, Any],
) -> None:
    project: Project = stack["project"]
    info = _backup_of_db_b(stack, "keep", 7)
    # a dump whose checksum matches (re-recorded) but that pg_restore cannot read
    raw = json.loads((info.path / "manifest.json").read_text())
    entry = next(a for a in raw["artefacts"] if a["kind"] == "postgres-dump")
    dump = info.path / entry["name"]
    dump.write_bytes(b"PGDMP" + b"\x00" * 4096)
    entry["sha256"] = hashlib.sha256(dump.read_bytes()).hexdigest()
    entry["size"] = dump.stat().st_size
    (info.path / "manifest.json").write_text(json.dumps(raw))
    info = find_backup(stack["dest"], info.id)

    with pytest.raises(LakehouseError, match="pg_restore into db-b failed"):
        restore_backup(project, info, only=["db-b"], safety_backup=False, out=Output())
    assert _psql(project, "db-b", "SELECT string_agg(v::text, ',') FROM keep").strip() == "7"
    names = _psql(project, "db-b", "SELECT string_agg(datname, ',') FROM pg_database")
    assert "appb" in names.split(",") and "__restoring" not in names
    assert "client" in ComposeBackend().running_services(project)  # started again after the failure


def test_flipped_byte_is_refused_by_verify_and_restore(stack: dict[str, Any]) -> None:
    project: Project = open_project("dev")
    manifest = create_backup(project, only=["store", "db-b"], tag="corrupt", out=Output())
    info = find_backup(stack["dest"], manifest.id)
    (archive,) = (info.path / "volumes").glob("store-data.tar.*")
    name = f"volumes/{archive.name}"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))

    with pytest.raises(LakehouseError) as err:
        verify_backup(info, out=Output())
    assert err.value.exit_code == 6 and name in err.value.message

    with pytest.raises(Exit) as exited:
        verify_task(Context(), manifest.id, env="dev")
    assert exited.value.code == 6
    with pytest.raises(Exit) as exited:
        restore_task(Context(), backup=manifest.id, env="dev", yes=True)
    assert exited.value.code == 6
    assert not find_backup(stack["dest"], manifest.id).is_verified


def test_not_enough_space_refuses_before_writing(stack: dict[str, Any], tmp_path: Path) -> None:
    project: Project = open_project("dev")
    _in_volume(project, "work-data", "head -c 3000000 /dev/urandom > /v/big.bin")
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(LakehouseError) as err:
            create_backup(project, dest=small, out=Output())
        assert err.value.exit_code == 7
        assert "Not enough free space" in err.value.message
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
        _in_volume(project, "work-data", "rm -f /v/big.bin")


def test_killed_backup_leaves_nothing_complete_and_services_come_back(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    project: Project = open_project("dev")
    dest = tmp_path / "killed"
    env = {**os.environ, data_backup.TEST_DELAY_ENV: "60"}
    code = (
        "from lakehouse_tasks.project import open_project\n"
        "from lakehouse_tasks.backup import create_backup\n"
        f"create_backup(open_project('dev'), dest={str(dest)!r}, only=['volumes'])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not list(dest.glob(".tmp-*/volumes/*.tar.*")):
            assert proc.poll() is None, "the backup ended before it could be killed"
            assert time.monotonic() < deadline, "the backup never started an archive"
            time.sleep(0.2)
        assert "store" not in ComposeBackend().running_services(project)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    backups, leftovers = list_backups(dest, "dev")
    assert backups == []
    assert len(leftovers) == 1
    assert not list(dest.glob("dev-*"))

    restarted = recover_interrupted(project)
    assert set(restarted) == {"store", "worker"}
    assert set(ComposeBackend().running_services(project)) >= {"store", "worker"}


def test_an_old_gzip_backup_still_restores(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backups written before zstd (``.tar.gz``, gzip in the manifest) keep restoring."""
    project: Project = stack["project"]
    before = _seed(project)
    monkeypatch.setenv("LAKEHOUSE_BACKUP_COMPRESSION", "gzip")
    manifest = create_backup(project, only=["store"], tag="oldgzip", out=Output())
    monkeypatch.delenv("LAKEHOUSE_BACKUP_COMPRESSION")
    (art,) = [a for a in manifest.artefacts if a.kind == "volume-archive"]
    assert art.compression == "gzip" and art.name == "volumes/store-data.tar.gz"
    info = find_backup(stack["dest"], manifest.id)
    verify_backup(info, deep=True, project=project, out=Output())
    _in_volume(project, "store-data", "rm -rf /v/seed")
    restore_backup(project, info, only=["store"], safety_backup=False, out=Output())
    assert _state(project)["files"]["store-data"] == before["files"]["store-data"]


def test_a_stack_that_is_down_is_backed_up_as_it_rests_and_restores(
    stack: dict[str, Any],
) -> None:
    """After a teardown that kept the volumes (no container left), a backup archives the
    databases' data volumes instead of dumping them; restored into the running stack, every
    row and file is back and each database answers again."""
    project: Project = stack["project"]
    before = _seed(project)
    project.compose.compose("down")  # containers gone, volumes kept
    assert ComposeBackend().running_services(project) == []
    assert has_data(project)
    manifest = create_backup(project, tag="atrest", out=Output())
    assert {(a.kind, a.source) for a in manifest.artefacts} == {
        ("volume-archive", "dba-data"),
        ("volume-archive", "dbb-data"),
        ("volume-archive", "store-data"),
        ("volume-archive", "work-data"),
    }
    assert ComposeBackend().running_services(project) == []  # nothing was started
    info = find_backup(stack["dest"], manifest.id)
    verify_backup(info, deep=True, project=project, out=Output())

    _up(project)
    _psql(project, "db-a", "DELETE FROM items WHERE id > 10")
    _psql(project, "db-b", "DROP TABLE items")
    _in_volume(project, "store-data", "rm -rf /v/seed")
    assert _state_or_none(project) != before
    result = restore_backup(project, info, only=["db", "store"], safety_backup=True, out=Output())
    assert result.safety_backup is not None
    # the databases' servers with their volumes, and their clients (client uses db-b only)
    assert set(result.services) == {"db-a", "db-b", "store", "worker", "client"}
    assert _state(project) == before
    assert set(ComposeBackend().running_services(project)) == {
        "db-a", "db-b", "store", "worker", "client", "viewer",
    }  # fmt: skip
