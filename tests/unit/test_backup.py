"""Backup without an engine: manifest format, selection, free space, listing, checksums,
and the streaming helpers with an ordinary command standing in for docker."""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_tasks.data import store
from lakehouse_tasks.data.backup import at_rest
from lakehouse_tasks.data.manifest import Artefact, BackupManifest, check_checksums
from lakehouse_tasks.data.plan import plan
from lakehouse_tasks.data.restorable import selected_artefacts
from lakehouse_tasks.data.store import check_free_space, find_backup, list_backups
from lakehouse_tasks.engine.streams import stream_from_file, stream_to_file
from lakehouse_tasks.errors import ConfigError, EngineError, LakehouseError
from lakehouse_tasks.notices import RecordedNotices
from lakehouse_tasks.stack import Stack
from lakehouse_tasks.testing import FakeBackend

WHEN = _dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dt.UTC)


def _manifest(
    ident: str = "dev-20260102T030405Z", artefacts: tuple[Artefact, ...] = ()
) -> BackupManifest:
    return BackupManifest(
        id=ident,
        environment="dev",
        project="lakehouse-dev",
        time=WHEN,
        tag=None,
        tool_version="0.1.0",
        git_commit=None,
        config_hash="abc",
        online=False,
        images={"db": {"image": "postgres:16", "id": "sha256:1"}},
        artefacts=artefacts,
    )


def _write_backup(dest: Path, files: dict[str, bytes]) -> Path:
    ident = "dev-20260102T030405Z"
    path = dest / ident
    arts = []
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
        arts.append(
            Artefact(
                name, "volume-archive", name, len(data), hashlib.sha256(data).hexdigest(), "gzip"
            )
        )
    (path / "manifest.json").write_text(json.dumps(_manifest(ident, tuple(arts)).to_dict()))
    return path


def test_manifest_round_trips_through_json() -> None:
    art = Artefact("postgres/db.dump", "postgres-dump", "db", 10, "0" * 64, database="d", user="u")
    manifest = _manifest(artefacts=(art,))
    again = BackupManifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again == manifest
    data = manifest.to_dict()
    assert set(data) >= {"environment", "id", "time", "tag", "tool_version", "git_commit",
                         "config_hash", "images", "artefacts"}  # fmt: skip
    assert data["artefacts"][0] == {
        "name": "postgres/db.dump",
        "kind": "postgres-dump",
        "source": "db",
        "size": 10,
        "sha256": "0" * 64,
        "compression": "none",
        "raw_size": 0,
        "database": "d",
        "user": "u",
    }


def test_backup_id_is_env_utc_time_and_tag() -> None:
    assert store.backup_id("prod", WHEN, "before-upgrade") == "prod-20260102T030405Z-before-upgrade"
    with pytest.raises(LakehouseError):
        store.check_tag("../etc")


def _project() -> Any:
    config = {
        "name": "p",
        "services": {
            "metastore-db": {
                "image": "postgres:16",
                "environment": {"POSTGRES_DB": "metastore", "POSTGRES_USER": "hive"},
                "volumes": [{"type": "volume", "source": "metastore-db-data", "target": "/d"}],
            },
            "minio": {
                "image": "minio",
                "volumes": [{"type": "volume", "source": "minio-data", "target": "/data"}],
            },
            "spark-master": {
                "image": "spark",
                "volumes": [{"type": "volume", "source": "spark-work", "target": "/w"}],
            },
            "trino": {"image": "trino"},
        },
        "volumes": {
            "metastore-db-data": {"name": "p_metastore-db-data"},
            "minio-data": {"name": "p_minio-data"},
            "spark-work": {"name": "p_spark-work"},
        },
    }
    return SimpleNamespace(stack=Stack.from_config(config))


def test_plan_dumps_databases_and_archives_every_other_volume() -> None:
    everything = plan(_project())
    assert [(d.service, d.database, d.user) for d in everything.databases] == [
        ("metastore-db", "metastore", "hive")
    ]
    assert dict(everything.volumes) == {"minio-data": "p_minio-data", "spark-work": "p_spark-work"}


@pytest.mark.parametrize(
    ("only", "dbs", "vols"),
    [
        (["db"], ["metastore-db"], []),
        (["volumes"], [], ["minio-data", "spark-work"]),
        (["minio,metastore-db"], ["metastore-db"], ["minio-data"]),
        (["spark-work"], [], ["spark-work"]),
    ],
)
def test_only_selects(only: list[str], dbs: list[str], vols: list[str]) -> None:
    selection = plan(_project(), only)
    assert [d.service for d in selection.databases] == dbs
    assert list(selection.volumes) == vols


def test_only_with_an_unknown_name_is_bad_input() -> None:
    with pytest.raises(LakehouseError) as err:
        plan(_project(), ["nope"])
    assert err.value.exit_code == 2 and "nope" in err.value.message
    with pytest.raises(LakehouseError):
        plan(_project(), ["trino"])


def _at_rest_project() -> Any:
    project = _project()
    project.env = SimpleNamespace(name="dev")
    return project


def test_a_database_that_is_not_running_is_archived_as_it_rests() -> None:
    project = _at_rest_project()
    notices = RecordedNotices()
    cold = at_rest(project, plan(project), FakeBackend(running=["minio"]), notices)
    assert cold.databases == ()
    assert dict(cold.volumes) == {
        "metastore-db-data": "p_metastore-db-data",
        "minio-data": "p_minio-data",
        "spark-work": "p_spark-work",
    }
    assert notices.lines == [
        (
            "info",
            "metastore-db is not running: archiving its data volume (metastore-db-data) "
            "as it rests instead of dumping",
        )
    ]


def test_a_running_database_is_still_dumped() -> None:
    project = _at_rest_project()
    selection = plan(project)
    notices = RecordedNotices()
    assert at_rest(project, selection, FakeBackend(running=["metastore-db"]), notices) is selection
    assert notices.lines == []


def test_a_stopped_database_without_a_named_volume_is_bad_input() -> None:
    config = {
        "name": "p",
        "services": {"db": {"image": "postgres:16", "environment": {"POSTGRES_DB": "d"}}},
    }
    project = SimpleNamespace(stack=Stack.from_config(config), env=SimpleNamespace(name="dev"))
    with pytest.raises(LakehouseError) as err:
        at_rest(project, plan(project), FakeBackend(), RecordedNotices())
    assert err.value.exit_code == 2
    assert err.value.message == (
        "Database service db of 'dev' is not running and has no named volume, so it can be "
        "backed up only while it runs; deploy the stack first, or back up volumes only with --only volumes."
    )


def test_a_database_s_data_volume_selects_the_database() -> None:
    selection = plan(_project(), ["metastore-db-data"])
    assert [d.service for d in selection.databases] == ["metastore-db"]
    assert dict(selection.volumes) == {}


def test_restore_selection_counts_an_archived_database_as_a_database(tmp_path: Path) -> None:
    arts = (
        Artefact("volumes/metastore-db-data.tar.zst", "volume-archive", "metastore-db-data", 1,
                 "0" * 64, "zstd"),
        Artefact("volumes/minio-data.tar.zst", "volume-archive", "minio-data", 1, "0" * 64, "zstd"),
    )  # fmt: skip
    info = SimpleNamespace(id="dev-x", manifest=_manifest(artefacts=arts))
    project = _project()

    def picked(only: list[str]) -> list[str]:
        return [a.source for a in selected_artefacts(info, only, project)]  # type: ignore[arg-type]

    assert picked(["db"]) == ["metastore-db-data"]
    assert picked(["metastore-db"]) == ["metastore-db-data"]
    assert picked(["volumes"]) == ["minio-data"]
    assert picked([]) == ["metastore-db-data", "minio-data"]


def test_free_space_refuses_with_exit_7(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(store, "free_space", lambda path: 100 * 1024 * 1024)
    check_free_space(tmp_path, 1024)
    with pytest.raises(LakehouseError) as err:
        check_free_space(tmp_path / "not-yet", 200 * 1024 * 1024)
    assert err.value.exit_code == 7 and "--dest" in err.value.message


def test_list_ignores_and_reports_incomplete_backups(tmp_path: Path) -> None:
    _write_backup(tmp_path, {"volumes/a.tar.gz": b"aaa"})
    (tmp_path / ".tmp-dev-20260103T000000Z").mkdir()
    running = tmp_path / ".tmp-dev-20260104T000000Z"
    running.mkdir()
    (running / ".pid").write_text(str(os.getppid()))  # a live writer: still in progress
    backups, leftovers = list_backups(tmp_path, "dev")
    assert [b.id for b in backups] == ["dev-20260102T030405Z"]
    assert [p.name for p in leftovers] == [".tmp-dev-20260103T000000Z"]
    assert list_backups(tmp_path, "prod")[0] == []


def test_checksum_mismatch_names_the_artefact(tmp_path: Path) -> None:
    path = _write_backup(tmp_path, {"volumes/a.tar.gz": b"aaa", "volumes/b.tar.gz": b"bbb"})
    info = find_backup(tmp_path, "dev-20260102T030405Z")
    assert len(check_checksums(info)) == 2
    (path / "volumes" / "b.tar.gz").write_bytes(b"bbc")
    with pytest.raises(LakehouseError) as err:
        check_checksums(info)
    assert err.value.exit_code == 6 and "volumes/b.tar.gz" in err.value.message
    (path / "volumes" / "b.tar.gz").unlink()
    with pytest.raises(LakehouseError) as err:
        check_checksums(info)
    assert err.value.exit_code == 6 and "missing" in err.value.message


def test_unknown_backup_id_says_how_to_list(tmp_path: Path) -> None:
    with pytest.raises(LakehouseError) as err:
        find_backup(tmp_path, "dev-nope")
    assert "backup.list" in err.value.message


PRODUCE = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * 3_000_000)"]


def test_stream_to_file_compresses_and_hashes_what_it_writes(tmp_path: Path) -> None:
    target = tmp_path / "out.gz"
    seen: list[int] = []
    result = stream_to_file(PRODUCE, target, gzip_level=1, on_chunk=seen.append)
    data = target.read_bytes()
    assert result.size == len(data) < 3_000_000
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.raw_size == sum(seen) == 3_000_000
    assert gzip.decompress(data) == b"x" * 3_000_000


def test_stream_failure_carries_stderr(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('boom: no such db\\n'); sys.exit(3)"]
    with pytest.raises(EngineError) as err:
        stream_to_file(cmd, tmp_path / "x", what="pg_dump of db")
    assert "pg_dump of db failed: boom: no such db" in err.value.message


def test_stream_from_file_feeds_decompressed_bytes(tmp_path: Path) -> None:
    src = tmp_path / "in.gz"
    src.write_bytes(gzip.compress(b"hello world" * 1000))
    sink = tmp_path / "sink"
    cmd = [
        sys.executable,
        "-c",
        f"import sys; open({str(sink)!r}, 'wb').write(sys.stdin.buffer.read())",
    ]
    fed = stream_from_file(cmd, src, gunzip=True)
    assert fed == 11000 and sink.read_bytes() == b"hello world" * 1000


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd program")
def test_zstd_round_trip_through_the_external_programs(tmp_path: Path) -> None:
    from lakehouse_tasks import compress

    target = tmp_path / "out.tar.zst"
    result = stream_to_file(PRODUCE, target, compress_argv=compress.ZSTD.compress)
    data = target.read_bytes()
    assert data[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
    assert result.raw_size == 3_000_000 and result.sha256 == hashlib.sha256(data).hexdigest()
    sink = tmp_path / "sink"
    cmd = [
        sys.executable,
        "-c",
        f"import sys; open({str(sink)!r}, 'wb').write(sys.stdin.buffer.read())",
    ]
    fed = stream_from_file(cmd, target, decompress_argv=compress.decompress_argv("zstd"))
    assert fed == len(data) and sink.read_bytes() == b"x" * 3_000_000


def test_a_corrupt_zstd_archive_fails_naming_the_restore(tmp_path: Path) -> None:
    from lakehouse_tasks import compress

    if shutil.which("zstd") is None:
        pytest.skip("no zstd program")
    bad = tmp_path / "bad.tar.zst"
    bad.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 100)
    with pytest.raises(EngineError, match="restore of volume v failed"):
        stream_from_file(
            [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"],
            bad,
            decompress_argv=compress.decompress_argv("zstd"),
            what="restore of volume v",
        )


def test_compression_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse_tasks import compress

    monkeypatch.setenv(compress.ENV_VAR, "gzip")
    assert compress.for_archives() is compress.GZIP
    monkeypatch.setenv(compress.ENV_VAR, "lz4")
    with pytest.raises(ConfigError, match="use zstd or gzip"):
        compress.for_archives()
    monkeypatch.setattr(compress.shutil, "which", lambda _name: None)
    monkeypatch.delenv(compress.ENV_VAR)
    assert compress.for_archives() is compress.GZIP
    with pytest.raises(ConfigError, match="apt-get install zstd"):
        compress.decompress_argv("zstd")


def test_a_backup_s_progress_is_a_line_per_artefact_when_stderr_is_not_a_terminal() -> None:
    import io

    from lakehouse_tasks.notices import PlainNotices, RecordedNotices
    from lakehouse_tasks.ui import Output

    err = io.StringIO()
    with Output(stderr=err).transfers() as progress:
        progress.start("volumes/minio-data", 1024)(512)
    assert err.getvalue() == "volumes/minio-data ...\n"
    plain = io.StringIO()
    PlainNotices(plain).warn("kept the set-aside volume")
    assert plain.getvalue() == "warning: kept the set-aside volume\n"
    recorded = RecordedNotices()
    recorded.transfers().start("postgres/airflow-db.dump", None)
    assert recorded.texts("info") == ["postgres/airflow-db.dump ..."]


@pytest.mark.parametrize("running", [["minio"], ["minio", "metastore-db"]])
def test_a_restarting_database_is_archived_once_stopped_never_dumped(running: list[str]) -> None:
    """Between two attempts (not running) and during one (running for a moment) alike: a
    crash-looping server is not up, so it is not dumped; it is stopped with the volumes'
    users (``resting``), which makes its data volume rest, and archived."""
    project = _at_rest_project()
    notices = RecordedNotices()
    backend = FakeBackend(running=running, restarting=["metastore-db"])
    cold = at_rest(project, plan(project), backend, notices)
    assert cold.databases == ()
    assert cold.resting == ("metastore-db",)
    assert cold.volumes["metastore-db-data"] == "p_metastore-db-data"
    assert notices.lines == [
        (
            "info",
            "metastore-db is restarting (a crash loop): stopping and archiving its data volume "
            "(metastore-db-data) as it rests instead of dumping",
        )
    ]
