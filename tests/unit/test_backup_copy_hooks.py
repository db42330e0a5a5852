"""The backup copy hooks through the facade: listing, fetching, checking, pruning, status."""

from __future__ import annotations

import datetime as _dt
import json
import types
from pathlib import Path

import pytest

from lakehouse_tasks import hookimpl
from lakehouse_tasks.backup_view import backups_table, where_label
from lakehouse_tasks.checks import Status, failed, passed, warned
from lakehouse_tasks.errors import ExitCode, LakehouseError
from lakehouse_tasks.plugin import BackupCopy
from lakehouse_tasks.retention import PruneResult
from lakehouse_tasks.testing import RecordingPlugin

ENV = types.SimpleNamespace(name="prod", root=Path("/nonexistent"))
WHEN = _dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dt.UTC)


class Offsite:
    def __init__(self, fetched: Path | None = None) -> None:
        self.fetched = fetched

    @hookimpl
    def lakehouse_backup_copies(self, env):
        return [BackupCopy("prod-20260102T030405Z", "off-site", "abcd1234", WHEN, 10)]

    @hookimpl
    def lakehouse_fetch_backup(self, env, backup_id, dest):
        return self.fetched

    @hookimpl
    def lakehouse_verify_copies(self, env, read_data_subset):
        if read_data_subset == "bad":
            return [failed("restic check", "pack 1234 is damaged", "copy again")]
        return [passed("restic check", f"subset {read_data_subset}")]

    @hookimpl
    def lakehouse_status_checks(self, env):
        return [warned("off-site copy", "the off-site copy is overdue", "run a backup")]


class Broken:
    @hookimpl
    def lakehouse_backup_copies(self, env):
        raise RuntimeError("repository down")

    @hookimpl
    def lakehouse_status_checks(self, env):
        raise RuntimeError("boom")

    @hookimpl
    def lakehouse_post_prune(self, env, result):
        raise RuntimeError("forget failed")


def test_backup_copies_are_listed_with_the_plugin_name(lakehouse_plugins):
    recorder = RecordingPlugin()
    pm = lakehouse_plugins(("offsite", Offsite()), recorder)
    copies = pm.backup_copies(env=ENV)
    assert [(c.backup_id, c.location, c.plugin) for c in copies] == [
        ("prod-20260102T030405Z", "off-site", "offsite")
    ]
    assert recorder.called("lakehouse_backup_copies")[0].kwargs["env"] is ENV


def test_a_failing_lakehouse_backup_copies_is_left_out_with_a_warning(lakehouse_plugins):
    warnings: list[str] = []
    pm = lakehouse_plugins(("broken", Broken()), ("offsite", Offsite()), warn=warnings.append)
    assert len(pm.backup_copies(env=ENV)) == 1
    assert "broken" in warnings[0] and "repository down" in warnings[0]


def test_fetch_backup_returns_the_directory_holding_a_manifest(lakehouse_plugins, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{}")
    pm = lakehouse_plugins(("offsite", Offsite(tmp_path / "b")))
    assert pm.fetch_backup(env=ENV, backup_id="x", dest=tmp_path) == tmp_path / "b"


def test_lakehouse_fetch_backup_without_a_copy_is_none_and_an_empty_dir_is_refused(
    lakehouse_plugins, tmp_path
):
    assert (
        lakehouse_plugins(Offsite(None)).fetch_backup(env=ENV, backup_id="x", dest=tmp_path) is None
    )
    pm = lakehouse_plugins(("offsite", Offsite(tmp_path)))
    with pytest.raises(LakehouseError, match=r"holds no manifest\.json") as info:
        pm.fetch_backup(env=ENV, backup_id="x", dest=tmp_path)
    assert info.value.exit_code == ExitCode.INTEGRITY_FAILED


def test_a_plugin_error_in_fetch_keeps_its_message_and_code(lakehouse_plugins, tmp_path):
    class Wrong:
        @hookimpl
        def lakehouse_fetch_backup(self, env, backup_id, dest):
            raise LakehouseError("The password does not open the repository.", ExitCode.BAD_INPUT)

    with pytest.raises(LakehouseError, match="password does not open") as info:
        lakehouse_plugins(("offsite", Wrong())).fetch_backup(env=ENV, backup_id="x", dest=tmp_path)
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_verify_copies_passes_the_subset_and_names_the_plugin(lakehouse_plugins):
    pm = lakehouse_plugins(("offsite", Offsite()))
    checks = pm.verify_copies(env=ENV, read_data_subset="1/5")
    assert [(c.status, c.detail, c.source) for c in checks] == [
        (Status.PASS, "subset 1/5", "offsite")
    ]
    assert pm.verify_copies(env=ENV, read_data_subset="bad")[0].status == Status.FAIL


def test_post_prune_is_an_observer(lakehouse_plugins):
    warnings: list[str] = []
    recorder = RecordingPlugin()
    pm = lakehouse_plugins(("broken", Broken()), recorder, warn=warnings.append)
    result = PruneResult([], [], [], False, 3, 0, protected="prod-1")
    pm.post_prune(env=ENV, result=result)
    assert recorder.called("lakehouse_post_prune")[0].kwargs["result"] is result
    assert "forget failed" in warnings[0]


def test_lakehouse_status_checks_reach_health_and_a_failing_plugin_is_skipped(lakehouse_plugins):
    warnings: list[str] = []
    pm = lakehouse_plugins(("broken", Broken()), ("offsite", Offsite()), warn=warnings.append)
    checks = pm.status_checks(env=ENV)
    assert [(c.status, c.source) for c in checks] == [(Status.WARN, "offsite")]
    assert "boom" in warnings[0]


def test_where_a_backup_lives():
    copy = BackupCopy("a", "off-site", "r", WHEN)
    assert where_label(True, []) == "local"
    assert where_label(True, [copy]) == "both"
    assert where_label(False, [copy]) == "off-site"


def test_backup_list_shows_off_site_only_backups(tmp_path):
    from lakehouse_tasks.data.manifest import BackupManifest
    from lakehouse_tasks.data.store import list_backups

    manifest = {
        "id": "prod-20260101T000000Z",
        "environment": "prod",
        "time": "2026-01-01T00:00:00+00:00",
        "artefacts": [],
    }
    (tmp_path / manifest["id"]).mkdir()
    (tmp_path / manifest["id"] / "manifest.json").write_text(json.dumps(manifest))
    backups, leftovers = list_backups(tmp_path, "prod")
    assert isinstance(backups[0].manifest, BackupManifest)
    copies = [
        BackupCopy("prod-20260102T030405Z", "off-site", "abcd", WHEN),
        BackupCopy("prod-20260101T000000Z", "off-site", "ef01", WHEN - _dt.timedelta(days=1)),
    ]
    table = backups_table(backups, leftovers, copies)
    assert [(r["id"], r["where"]) for r in table.rows] == [
        ("prod-20260102T030405Z", "off-site"),
        ("prod-20260101T000000Z", "both"),
    ]
