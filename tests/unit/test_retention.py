"""Retention: which backups ``backup.prune`` keeps (pure function and real directories)."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path

from lakehouse_tasks.data.store import list_backups
from lakehouse_tasks.retention import prune, retention_settings, select_for_pruning

NOW = _dt.datetime(2026, 1, 31, 12, 0, tzinfo=_dt.UTC)


@dataclass(frozen=True)
class B:
    id: str
    time: _dt.datetime
    is_verified: bool = False


def days_ago(*ages: float, verified: set[float] | None = None) -> list[B]:
    verified = verified or set()
    return [B(f"b{a}", NOW - _dt.timedelta(days=a), a in verified) for a in ages]


def ids(items: list[B]) -> list[str]:
    return [b.id for b in items]


def test_count_only_keeps_the_newest_n() -> None:
    keep, delete = select_for_pruning(days_ago(0, 1, 2, 3, 4), 3, 0, NOW)
    assert ids(keep) == ["b0", "b1", "b2"]
    assert ids(delete) == ["b3", "b4"]


def test_age_only_keeps_younger_than_the_limit() -> None:
    keep, delete = select_for_pruning(days_ago(1, 6.9, 7.1, 30), 0, 7, NOW)
    assert ids(keep) == ["b1", "b6.9"]
    assert ids(delete) == ["b7.1", "b30"]


def test_a_backup_is_kept_when_any_rule_keeps_it() -> None:
    keep, delete = select_for_pruning(days_ago(1, 2, 10, 20, 40), 4, 7, NOW)
    assert ids(keep) == ["b1", "b2", "b10", "b20"]
    assert ids(delete) == ["b40"]


def test_no_rule_deletes_nothing() -> None:
    keep, delete = select_for_pruning(days_ago(1, 100), 0, 0, NOW)
    assert ids(keep) == ["b1", "b100"] and delete == []


def test_never_deletes_everything() -> None:
    keep, delete = select_for_pruning(days_ago(40, 50), 0, 30, NOW)
    assert ids(keep) == ["b40"]
    assert ids(delete) == ["b50"]


def test_never_deletes_the_newest_verified_backup() -> None:
    keep, delete = select_for_pruning(days_ago(0, 1, 2, 3, verified={2, 3}), 1, 0, NOW)
    assert ids(keep) == ["b0", "b2"]
    assert ids(delete) == ["b1", "b3"]


def test_input_order_does_not_matter() -> None:
    keep, _ = select_for_pruning(list(reversed(days_ago(0, 1, 2))), 2, 0, NOW)
    assert ids(keep) == ["b0", "b1"]


def test_settings_come_from_the_environment() -> None:
    assert retention_settings({"BACKUP_KEEP_LAST": "5", "BACKUP_RETENTION_DAYS": "30"}) == (5, 30)
    assert retention_settings({}) == (0, 0)


def _fake_backup(dest: Path, ident: str, when: _dt.datetime, *, verified: bool = False) -> Path:
    path = dest / ident
    path.mkdir(parents=True)
    manifest = {
        "id": ident,
        "environment": "staging",
        "time": when.isoformat(),
        "artefacts": [],
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    if verified:
        (path / "verified.json").write_text(
            json.dumps({"time": when.isoformat(), "deep": False, "ok": True})
        )
    return path


def test_prune_on_real_directories(tmp_path: Path) -> None:
    for age in (0, 3, 8, 9, 20):
        when = NOW - _dt.timedelta(days=age)
        _fake_backup(tmp_path, f"staging-{age:02d}", when, verified=(age == 20))
    _fake_backup(tmp_path, "prod-00", NOW)  # another environment: never touched
    (tmp_path / "prod-00" / "manifest.json").write_text(
        json.dumps({"id": "prod-00", "environment": "prod", "time": NOW.isoformat()})
    )
    leftover = tmp_path / ".tmp-staging-x"
    leftover.mkdir()

    dry = prune(tmp_path, "staging", keep_last=1, max_age_days=7, now=NOW, dry_run=True)
    assert sorted(b.id for b in dry.deleted) == ["staging-08", "staging-09"]
    assert (tmp_path / "staging-08").exists() and leftover.exists()

    result = prune(tmp_path, "staging", keep_last=1, max_age_days=7, now=NOW)
    assert sorted(b.id for b in result.kept) == ["staging-00", "staging-03", "staging-20"]
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == ["prod-00", "staging-00", "staging-03", "staging-20"]
    backups, leftovers = list_backups(tmp_path, "staging")
    assert [b.id for b in backups] == ["staging-00", "staging-03", "staging-20"]
    assert leftovers == []


# ---- daily / weekly / monthly (the rules the off-site copies share) -------------------------
NOW_FOR_BUCKETS = _dt.datetime(2026, 4, 1, 12, 0, tzinfo=_dt.UTC)


def every(hours: int, count: int, verified_at: int | None = None) -> list[B]:
    start = _dt.datetime(2026, 3, 31, 23, 0, tzinfo=_dt.UTC)
    return [
        B(f"b{i}", start - _dt.timedelta(hours=hours * i), i == verified_at) for i in range(count)
    ]


def test_keep_daily_keeps_the_newest_of_each_of_the_last_n_days() -> None:
    keep, delete = select_for_pruning(every(8, 12), 0, 0, NOW_FOR_BUCKETS, keep_daily=2)
    # three a day: the newest of March 31 (b0) and of March 30 (b3)
    assert ids(keep) == ["b0", "b3"]
    assert len(delete) == 10


def test_keep_weekly_and_monthly_add_the_newest_of_their_periods() -> None:
    keep, _ = select_for_pruning(
        every(24 * 10, 10), 0, 0, NOW_FOR_BUCKETS, keep_weekly=1, keep_monthly=3
    )
    # every ten days: March 31 (b0), the newest of February (b4, Feb 19), of January (b6)
    assert ids(keep) == ["b0", "b4", "b6"]


def test_the_newest_verified_and_a_protected_backup_survive_every_rule() -> None:
    keep, _ = select_for_pruning(
        every(24, 10, verified_at=7), 1, 0, NOW_FOR_BUCKETS, protected=lambda b: b.id == "b9"
    )
    assert ids(keep) == ["b0", "b7", "b9"]
