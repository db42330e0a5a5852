"""Restore drills without an engine: what the archive holds, the COPY blocks of a dump, the
lock, the health line of the last drill."""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import tarfile
import types
from pathlib import Path

import pytest

from lakehouse_tasks import drill
from lakehouse_tasks.errors import LakehouseError


def test_archive_checksums_are_the_files_sha256_by_relative_path(tmp_path: Path) -> None:
    archive = tmp_path / "v.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {"./a.txt": b"hello\n", "./sub/b.bin": bytes(range(256)) * 5000}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("./sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    sums = drill.archive_checksums(archive)
    assert sums == {
        "a.txt": hashlib.sha256(b"hello\n").hexdigest(),
        "sub/b.bin": hashlib.sha256(bytes(range(256)) * 5000).hexdigest(),
    }


@pytest.mark.parametrize(
    ("line", "table"),
    [
        ("COPY public.items (id, body) FROM stdin;", "public.items"),
        ('COPY "Sales"."Orders 2026" FROM stdin;', "Sales.Orders 2026"),
        ('COPY public."MixedCase" (id) FROM stdin;', "public.MixedCase"),
    ],
)
def test_copy_lines_of_a_dump_name_their_table(line: str, table: str | None) -> None:
    match = drill._COPY.match(line)
    assert (drill._unquote(match.group(1)) if match else None) == table


def env_at(root: Path) -> types.SimpleNamespace:
    return types.SimpleNamespace(name="prod", root=root, project_name="lakehouse-prod")


def test_two_drills_of_one_environment_cannot_hold_the_lock(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    env = env_at(tmp_path)
    with drill.drill_lock(env):
        with (
            pytest.raises(LakehouseError, match="Another restore drill of prod") as err,
            drill.drill_lock(env),
        ):
            pass
        assert err.value.exit_code == 7
    with drill.drill_lock(env):  # released afterwards
        pass
    assert drill.copy_name(env) == "lakehouse-prod-drill"


def test_health_line_of_the_last_drill(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    env = env_at(tmp_path)
    assert drill.last_drill_check(env) is None
    drill.last_path(env).parent.mkdir(parents=True)
    started = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=2)).isoformat()
    record = {"started": started, "backup": "prod-1", "ok": True, "restore_seconds": 12.5}
    drill.last_path(env).write_text(json.dumps(record))
    check = drill.last_drill_check(env)
    assert check is not None and check.status.value == "pass"
    assert "prod-1" in check.detail and "2.0 days ago" in check.detail
    drill.last_path(env).write_text(json.dumps({**record, "ok": False, "problem": "rows differ"}))
    check = drill.last_drill_check(env)
    assert check is not None and check.status.value == "warn" and "rows differ" in check.detail
