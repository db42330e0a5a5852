"""Restore drills without an engine: what the archive holds, the COPY blocks of a dump, the
lock, the health line of the last drill."""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import types
from pathlib import Path

import pytest

from lakehouse_tasks.data import drill
from lakehouse_tasks.data import drill_checks as data_drill_checks
from lakehouse_tasks.data import drill_copy as data_drill_copy
from lakehouse_tasks.errors import LakehouseError
from lakehouse_tasks.smoke.model import FAILED, PASSED, SKIPPED, HopResult, SmokeReport

FILES = {"./a.txt": b"hello\n", "./sub/b.bin": bytes(range(256)) * 5000}


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("./sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    return buf.getvalue()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_archive_checksums_are_the_files_sha256_by_relative_path(
    tmp_path: Path, compression: str
) -> None:
    """Whatever the backup compressed its archive with (zstd is the default where the program
    exists; the first drill read every archive as gzip and failed on zstd ones)."""
    raw = _tar_bytes()
    archive = tmp_path / "v.tar"
    if compression == "gzip":
        archive.write_bytes(gzip.compress(raw))
    elif compression == "zstd":
        if shutil.which("zstd") is None:
            pytest.skip("no zstd program on this machine")
        archive.write_bytes(
            subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
        )
    else:
        archive.write_bytes(raw)
    sums = data_drill_checks.archive_checksums(archive, compression)
    assert sums == {
        "a.txt": hashlib.sha256(b"hello\n").hexdigest(),
        "sub/b.bin": hashlib.sha256(bytes(range(256)) * 5000).hexdigest(),
    }


def test_a_truncated_zstd_archive_is_an_error_not_a_short_list(tmp_path: Path) -> None:
    if shutil.which("zstd") is None:
        pytest.skip("no zstd program on this machine")
    packed = subprocess.run(
        ["zstd", "-q", "-c"], input=_tar_bytes(), capture_output=True, check=True
    ).stdout
    archive = tmp_path / "v.tar.zst"
    archive.write_bytes(packed[: len(packed) // 2])
    with pytest.raises((OSError, tarfile.TarError)):
        data_drill_checks.archive_checksums(archive, "zstd")


def _report(verdicts: dict[str, str]) -> SmokeReport:
    return SmokeReport(
        environment="dev",
        run_id="r1",
        rehearsal=True,
        hops=[
            HopResult(
                name=n,
                services=(n,),
                verdict=v,
                seconds=0.1,
                cause="it broke" if v == FAILED else "",
            )
            for n, v in verdicts.items()
        ],
    )


def test_the_drill_records_the_smoke_summary_and_fails_on_a_failed_hop() -> None:
    reports = {"ok": _report({"postgres": PASSED, "trino": SKIPPED})}
    reports["bad"] = _report({"postgres": PASSED, "trino": FAILED})

    def run(copy: str, within_stack: bool) -> SmokeReport:
        assert within_stack  # only the copy's own hops, at its containers' addresses
        return reports[copy]

    result = drill.DrillResult(environment="dev", backup="b", copy_project="c")
    assert drill._smoke("ok", result, run) == []  # type: ignore[arg-type]
    assert result.smoke == "smoke dev: 1 passed, 0 failed, 0 not rehearsed, 1 skipped"
    assert result.smoke_counts[SKIPPED] == 1

    assert drill._smoke("bad", result, run) == ["smoke hop trino failed: it broke"]  # type: ignore[arg-type]
    assert "1 failed" in result.smoke


@pytest.mark.parametrize(
    ("line", "table"),
    [
        ("COPY public.items (id, body) FROM stdin;", "public.items"),
        ('COPY "Sales"."Orders 2026" FROM stdin;', "Sales.Orders 2026"),
        ('COPY public."MixedCase" (id) FROM stdin;', "public.MixedCase"),
    ],
)
def test_copy_lines_of_a_dump_name_their_table(line: str, table: str | None) -> None:
    match = data_drill_checks._COPY.match(line)
    assert (data_drill_checks._unquote(match.group(1)) if match else None) == table


def env_at(root: Path) -> types.SimpleNamespace:
    return types.SimpleNamespace(name="prod", root=root, project_name="lakehouse-prod")


def test_two_drills_of_one_environment_cannot_hold_the_lock(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    env = env_at(tmp_path)
    with data_drill_copy.drill_lock(env):
        with (
            pytest.raises(LakehouseError, match="Another restore drill of prod") as err,
            data_drill_copy.drill_lock(env),
        ):
            pass
        assert err.value.exit_code == 7
    with data_drill_copy.drill_lock(env):  # released afterwards
        pass
    assert data_drill_copy.copy_name(env) == "lakehouse-prod-drill"


def test_health_line_of_the_last_drill(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    env = env_at(tmp_path)
    assert drill.last_drill_check(env) is None
    data_drill_copy.last_path(env).parent.mkdir(parents=True)
    started = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=2)).isoformat()
    record = {"started": started, "backup": "prod-1", "ok": True, "restore_seconds": 12.5}
    data_drill_copy.last_path(env).write_text(json.dumps(record))
    check = drill.last_drill_check(env)
    assert check is not None and check.status.value == "pass"
    assert "prod-1" in check.detail and "2.0 days ago" in check.detail
    data_drill_copy.last_path(env).write_text(
        json.dumps({**record, "ok": False, "problem": "rows differ"})
    )
    check = drill.last_drill_check(env)
    assert check is not None and check.status.value == "warn" and "rows differ" in check.detail
