"""Off-site copies (plugins/lakehouse-offsite) and restore drills on a real engine.

A small rehearsal stack (a PostgreSQL stand-in with rows, a busybox stand-in with files in a
named volume and a published port), real restic (Debian's package) and, for S3, a real S3
API server on loopback (moto's ``moto_server``). Every test reads what a user would see:
rows and file checksums, exit codes and their sentence, what is left on the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks.data.backup import create_backup
from lakehouse_tasks.data.drill import run_drill
from lakehouse_tasks.data.drill_copy import copy_name, copy_project, drill_lock, leftovers_of
from lakehouse_tasks.data.store import find_backup
from lakehouse_tasks.errors import LakehouseError
from lakehouse_tasks.project import Project, open_project
from lakehouse_tasks.tasks.backup import list_ as list_task
from lakehouse_tasks.tasks.backup import verify as verify_task
from lakehouse_tasks.tasks.restore import restore as restore_task
from lakehouse_tasks.testing import free_port
from lakehouse_tasks.ui import Output
from tests.conftest import unique_project_name

pytestmark = [pytest.mark.engine, pytest.mark.slow]

POSTGRES = "lakehouse-rehearsal/postgres:rehearsal"
BUSYBOX = "lakehouse-rehearsal/busybox:rehearsal"
PASSWORD = "correct-horse-battery-staple-offsite"
VENV_BIN = Path(sys.executable).parent

COMPOSE = """
services:
  db:
    image: {pg}
    environment: {{POSTGRES_USER: alice, POSTGRES_PASSWORD: alice-secret-pw, POSTGRES_DB: app}}
    volumes: [db-data:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U alice -d app"]
      interval: 1s
      timeout: 3s
      retries: 90
  store:
    image: {bb}
    environment: {{STANDIN_SERVICE: store, STANDIN_DATA_DIR: /data}}
    volumes: [store-data:/data]
    ports: ["127.0.0.1:{port}:8080"]
volumes:
  db-data: {{}}
  store-data: {{}}
"""


def _have(*commands: str) -> bool:
    return all(shutil.which(c) or (VENV_BIN / c).exists() for c in commands)


def _images_present() -> bool:
    done = subprocess.run(["docker", "image", "inspect", POSTGRES, BUSYBOX], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on a loopback port, for the whole module."""
    if not (VENV_BIN / "moto_server").exists():
        pytest.skip("moto_server is not installed (scripts/setup --test installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("moto_server did not answer within 30 s")
            time.sleep(0.2)
    try:
        yield {"url": url}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not _have("restic"):
        pytest.skip("restic is not installed (scripts/docker-engine installs it)")
    if not _images_present():
        pytest.skip("the rehearsal stand-in images are not built")
    root = tmp_path_factory.mktemp("offsite")
    (root / "compose").mkdir()
    (root / "env").mkdir()
    name = unique_project_name("offsite")
    (root / "compose" / "docker-compose.yaml").write_text(
        COMPOSE.format(pg=POSTGRES, bb=BUSYBOX, port=free_port())
    )
    password = root / "env" / "dev.restic-password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    saved = {k: os.environ.get(k) for k in ("LAKEHOUSE_HOME", "LAKEHOUSE_STATE_DIR")}
    os.environ["LAKEHOUSE_HOME"] = str(root)
    os.environ["LAKEHOUSE_STATE_DIR"] = str(root / ".lakehouse")
    info = {"root": root, "name": name, "dest": root / "backups", "password": password}
    configure(info, repository=str(root / "repo-local"))
    project = open_project("dev")
    try:
        project.compose.compose("up", "-d", "--wait", "--wait-timeout", "120")
        yield info
    finally:
        project.compose.compose("down", "-v", "--remove-orphans")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def configure(
    info: dict[str, Any], *, repository: str, extra: str = "", init: bool = True
) -> Project:
    """Write the environment's file (its off-site repository) and open the project."""
    (info["root"] / "env" / "dev.env").write_text(
        f"COMPOSE_PROJECT_NAME={info['name']}\nBACKUP_DIR={info['dest']}\n"
        f"OFFSITE_REPOSITORY={repository}\nOFFSITE_PASSWORD_FILE=env/dev.restic-password\n"
        f"OFFSITE_INIT={'true' if init else 'false'}\n{extra}"
    )
    return open_project("dev")


def s3_repository(info: dict[str, Any], server: dict[str, str], bucket: str) -> Project:
    creds = info["root"] / "env" / "dev.offsite-credentials"
    creds.write_text(
        "AWS_ACCESS_KEY_ID=lht-access-key\nAWS_SECRET_ACCESS_KEY=lht-secret-key-value\n"
        "AWS_DEFAULT_REGION=us-east-1\n"
    )
    creds.chmod(0o600)
    return configure(
        info,
        repository=f"s3:{server['url']}/{bucket}/dev",
        extra="OFFSITE_CREDENTIALS_FILE=env/dev.offsite-credentials\n",
    )


def psql(project: Project, sql: str) -> str:
    return project.compose.compose(
        "exec", "-T", "db", "psql", "-U", "alice", "-d", "app", "-tAc", sql
    )


def in_volume(project: Project, script: str) -> str:
    volume = project.stack.volumes["store-data"]
    done = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{volume}:/v", "--entrypoint", "sh", POSTGRES, "-c", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def seed(project: Project, rows: int) -> dict[str, str]:
    psql(
        project,
        "CREATE TABLE IF NOT EXISTS items(id int primary key, body text);"
        "CREATE TABLE IF NOT EXISTS empty_table(id int);"
        f"INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, {rows}) g "
        "ON CONFLICT DO NOTHING;",
    )
    in_volume(
        project,
        "mkdir -p /v/seed/sub && head -c 400000 /dev/urandom > /v/seed/blob.bin "
        "&& echo hello > /v/seed/sub/note.txt",
    )
    return state(project)


def state(project: Project) -> dict[str, str]:
    return {
        "rows": psql(
            project,
            "SELECT count(*) || ':' || md5(string_agg(id || body, ',' ORDER BY id)) FROM items",
        ),
        "files": in_volume(project, "cd /v/seed && find . -type f | sort | xargs sha256sum"),
    }


def live_containers(info: dict[str, Any]) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={info['name']}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(out.split())


def snapshots(
    info: dict[str, Any], repository: str, extra_env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": repository,
        "RESTIC_PASSWORD_FILE": str(info["password"]),
        **(extra_env or {}),
    }
    done = subprocess.run(
        ["restic", "snapshots", "--json", "--no-cache"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(done.stdout))


def exit_of(call: Any, capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capfd.readouterr()
    try:
        call()
    except Exit as exc:
        return int(exc.code), capfd.readouterr().err
    return 0, capfd.readouterr().err


def destroy_everything(project: Project, info: dict[str, Any]) -> None:
    """The local backups and the whole stack (containers, networks, volumes) gone."""
    shutil.rmtree(info["dest"])
    project.compose.compose("down", "-v", "--remove-orphans")
    assert not any(leftovers_of(info["name"]).values())
    project.compose.compose("up", "-d", "--wait", "--wait-timeout", "120")


# ---- the proof: backup -> off-site -> everything lost -> restore from off-site only ---------
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_restore_from_the_off_site_copy_alone_brings_back_every_row_and_file(
    stack: dict[str, Any],
    backend: str,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
) -> None:
    if backend == "s3":
        server = request.getfixturevalue("s3_server")
        project = s3_repository(stack, server, "lht-roundtrip")
        repository = f"s3:{server['url']}/lht-roundtrip/dev"
        restic_env = {
            "AWS_ACCESS_KEY_ID": "lht-access-key",
            "AWS_SECRET_ACCESS_KEY": "lht-secret-key-value",
        }
    else:
        repository = str(stack["root"] / "repo-roundtrip")
        project = configure(stack, repository=repository)
        restic_env = {}
    before = seed(project, 700)
    manifest = create_backup(project, tag=f"offsite-{backend}", out=Output())
    recorded = json.loads((stack["dest"] / manifest.id / "manifest.json").read_text())["offsite"]
    held = snapshots(stack, repository, restic_env)
    assert [s["id"] for s in held if f"backup={manifest.id}" in s["tags"]] == [recorded["snapshot"]]
    # no secret in the manifest, the record or the snapshot's metadata
    for text in (
        json.dumps(recorded),
        json.dumps(held),
        (stack["root"] / ".lakehouse" / "offsite-dev.json").read_text(),
    ):
        assert PASSWORD not in text and "lht-secret-key-value" not in text

    capfd.readouterr()
    list_task(Context(), env="dev", json_=True)
    assert [b["where"] for b in json.loads(capfd.readouterr().out)["backups"]][:1] == ["both"]

    destroy_everything(project, stack)
    with pytest.raises(LakehouseError):  # the table is gone with the stack's volumes
        state(project)

    capfd.readouterr()
    list_task(Context(), env="dev", json_=True)
    listing = json.loads(capfd.readouterr().out)
    assert [b["id"] for b in listing["offsite_only"]] == [manifest.id]
    assert listing["offsite_only"][0]["where"] == "off-site"

    code, err = exit_of(
        lambda: restore_task(Context(), backup=manifest.id, env="dev", yes=True), capfd
    )
    assert code == 0, err
    assert "fetched it from its off-site copy" in err
    assert PASSWORD not in err and "lht-secret-key-value" not in err
    assert state(project) == before
    # the fetched backup is a local copy again: both places (as the pre-restore safety backup)
    capfd.readouterr()
    list_task(Context(), env="dev", json_=True)
    where = {b["id"]: b["where"] for b in json.loads(capfd.readouterr().out)["backups"]}
    assert where[manifest.id] == "both"
    assert [w for i, w in where.items() if i.endswith("pre-restore")] == ["both"]


# ---- the drill -------------------------------------------------------------------------------
def test_a_drill_restores_into_an_isolated_copy_and_leaves_nothing_behind(
    stack: dict[str, Any],
) -> None:
    project = configure(stack, repository=str(stack["root"] / "repo-drill"))
    seed(project, 900)
    manifest = create_backup(project, tag="drill", out=Output())
    live_before = live_containers(stack)
    copy = copy_project(project, stack["root"])
    config = json.loads(copy.compose.compose("config", "--format", "json"))
    assert all(not svc.get("ports") for svc in config["services"].values())

    result = run_drill(project, backup_id=manifest.id, out=Output())

    assert result.ok, result.problem
    assert result.restore_seconds > 0
    db = result.databases[0]
    assert db["expected"]["public.items"] == 900 and db["actual"] == db["expected"]
    assert db["expected"]["public.empty_table"] == 0
    assert result.volumes[0]["files"] >= 2 and result.volumes[0]["ok"]
    assert not any(leftovers_of(copy_name(project.env)).values())
    assert live_containers(stack) == live_before
    evidence = json.loads(Path(result.evidence).read_text())
    assert evidence["ok"] and evidence["backup"] == manifest.id
    # the smoke test ran against the copy (no published ports there: those hops are skipped)
    assert evidence["smoke"].startswith("smoke dev: ") and evidence["smoke_counts"]
    assert evidence["smoke_counts"]["failed"] == 0
    assert "alice-secret-pw" not in Path(result.evidence).read_text()
    assert PASSWORD not in Path(result.evidence).read_text()


def test_a_drill_killed_outright_is_cleaned_up_by_the_next_one(stack: dict[str, Any]) -> None:
    project = configure(stack, repository=str(stack["root"] / "repo-kill"))
    seed(project, 50)
    manifest = create_backup(project, tag="kill", out=Output())
    live_before = live_containers(stack)
    copy = copy_name(project.env)
    proc = subprocess.Popen(
        [str(VENV_BIN / "lakehouse"), "backup.drill", "--env", "dev", "--backup", manifest.id],
        cwd=stack["root"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not leftovers_of(copy)["container"]:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert leftovers_of(copy)["container"]  # the killed drill could not clean up

    result = run_drill(project, backup_id=manifest.id, out=Output())
    assert result.ok
    assert not any(leftovers_of(copy).values())
    assert live_containers(stack) == live_before


def test_a_second_drill_at_the_same_time_is_refused(
    stack: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    project = configure(stack, repository=str(stack["root"] / "repo-two"))
    live_before = live_containers(stack)
    with drill_lock(project.env):
        done = subprocess.run(
            [str(VENV_BIN / "lakehouse"), "backup.drill", "--env", "dev"],
            cwd=stack["root"], capture_output=True, text=True,
        )  # fmt: skip
    assert done.returncode == 7
    assert done.stderr.strip().startswith("error: Another restore drill of dev is running")
    assert len(done.stderr.strip().splitlines()) == 1
    assert live_containers(stack) == live_before
    assert not any(leftovers_of(copy_name(project.env)).values())


# ---- verify --offsite -----------------------------------------------------------------------
def test_a_corrupted_pack_is_found_by_verify_offsite(
    stack: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    repo = stack["root"] / "repo-corrupt"
    project = configure(stack, repository=str(repo))
    seed(project, 100)
    create_backup(project, tag="corrupt", out=Output())
    code, err = exit_of(
        lambda: verify_task(Context(), env="dev", offsite=True, read_data_subset=True), capfd
    )
    assert code == 0, err
    pack = max(
        (p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))

    code, err = exit_of(
        lambda: verify_task(Context(), env="dev", offsite=True, read_data_subset="all"), capfd
    )
    assert code == 6
    assert "is damaged" in err
    code, err = exit_of(
        lambda: verify_task(Context(), env="dev", offsite=True, read_data_subset="1/1"), capfd
    )
    assert code == 6


# ---- bad input and faults: one sentence, a documented code, nothing live touched ------------
def _one_sentence(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_wrong_password_is_exit_2_and_names_the_file(
    stack: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    repo = stack["root"] / "repo-password"
    project = configure(stack, repository=str(repo))
    create_backup(project, only=["store"], tag="pw", out=Output())
    live_before = live_containers(stack)
    wrong = stack["root"] / "env" / "wrong-password"
    wrong.write_text("not-the-password-at-all\n")
    configure(stack, repository=str(repo), extra=f"OFFSITE_PASSWORD_FILE={wrong}\n")
    code, err = exit_of(lambda: verify_task(Context(), env="dev", offsite=True), capfd)
    assert code == 2
    assert "OFFSITE_PASSWORD_FILE does not open" in _one_sentence(err)
    assert "not-the-password-at-all" not in err
    assert live_containers(stack) == live_before


def test_unreachable_repository_is_exit_4(
    stack: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    configure(stack, repository=f"s3:http://127.0.0.1:{free_port()}/nothing/dev")
    live_before = live_containers(stack)
    code, err = exit_of(lambda: verify_task(Context(), env="dev", offsite=True), capfd)
    assert code == 4
    assert "cannot be reached" in _one_sentence(err)
    code, err = exit_of(
        lambda: restore_task(Context(), backup="dev-20200101T000000Z", env="dev", yes=True), capfd
    )
    assert code == 4 and "cannot be reached" in _one_sentence(err)
    assert live_containers(stack) == live_before


def test_a_repository_that_is_not_restics_is_exit_2(
    stack: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    other = stack["root"] / "someone-elses-files"
    other.mkdir()
    (other / "notes.txt").write_text("not a restic repository\n")
    configure(stack, repository=str(other), init=False)
    code, err = exit_of(lambda: verify_task(Context(), env="dev", offsite=True), capfd)
    assert code == 2
    assert "holds no restic repository" in _one_sentence(err)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_a_snapshot_deleted_behind_the_tools_back(
    stack: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    repo = stack["root"] / "repo-deleted"
    project = configure(stack, repository=str(repo))
    manifest = create_backup(project, only=["store"], tag="deleted", out=Output())
    snapshot = json.loads((stack["dest"] / manifest.id / "manifest.json").read_text())["offsite"][
        "snapshot"
    ]
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD_FILE": str(stack["password"]),
    }
    subprocess.run(
        ["restic", "forget", "--prune", "--no-cache", snapshot],
        env=env,
        check=True,
        capture_output=True,
    )
    live_before = live_containers(stack)

    code, err = exit_of(lambda: verify_task(Context(), env="dev", offsite=True), capfd)
    assert code == 6
    assert f"records off-site snapshot {snapshot[:8]}, which is no longer in" in err
    shutil.rmtree(stack["dest"] / manifest.id)
    code, err = exit_of(
        lambda: restore_task(Context(), backup=manifest.id, env="dev", yes=True), capfd
    )
    assert code == 2
    assert "neither in" in _one_sentence(err)
    assert live_containers(stack) == live_before


def test_a_full_disk_at_the_restore_target_is_refused_before_anything(
    stack: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = stack["root"] / "repo-full"
    project = configure(stack, repository=str(repo))
    manifest = create_backup(project, only=["store"], tag="full", out=Output())
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    live_before = live_containers(stack)
    try:
        code, err = exit_of(
            lambda: restore_task(
                Context(), backup=manifest.id, env="dev", yes=True, dest=str(small)
            ),
            capfd,
        )
        assert code == 7
        assert "Not enough free space for the fetch of backup" in _one_sentence(err)
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
    assert live_containers(stack) == live_before
    with pytest.raises(LakehouseError):
        find_backup(small, manifest.id)
