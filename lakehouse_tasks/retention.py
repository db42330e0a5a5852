"""Which backups to keep: retention by count and by age, as a pure function.

Rules (the same as restic's ``--keep-last`` with ``--keep-within``): a backup is kept when
*any* rule keeps it, and deleted only when no rule does.

* ``keep_last`` (``BACKUP_KEEP_LAST``): the newest N backups are kept; 0 = no count rule.
* ``max_age_days`` (``BACKUP_RETENTION_DAYS``): backups younger than N days are kept;
  0 = no age rule ("keep by count only").
* With neither rule set, nothing is deleted.
* Two safety rules override both: the newest *verified* backup is never deleted, and the
  newest backup is never deleted, so pruning can never leave an environment without one.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .ui import Table


class Prunable(Protocol):
    @property
    def time(self) -> _dt.datetime: ...

    @property
    def is_verified(self) -> bool: ...


B = TypeVar("B", bound=Prunable)


def select_for_pruning(
    backups: Sequence[B], keep_last: int, max_age_days: int, now: _dt.datetime
) -> tuple[list[B], list[B]]:
    """Split ``backups`` into (keep, delete), each newest first. See the module docstring."""
    ordered = sorted(backups, key=lambda b: b.time, reverse=True)
    if not ordered:
        return [], []
    if keep_last <= 0 and max_age_days <= 0:
        return ordered, []
    cutoff = now - _dt.timedelta(days=max_age_days)
    newest_verified = next((b for b in ordered if b.is_verified), None)
    keep: list[B] = []
    delete: list[B] = []
    for rank, backup in enumerate(ordered):
        kept = (
            (keep_last > 0 and rank < keep_last)
            or (max_age_days > 0 and backup.time >= cutoff)
            or rank == 0
            or backup is newest_verified
        )
        (keep if kept else delete).append(backup)
    return keep, delete


# ---- applying it to a destination -----------------------------------------------------------
def _int_setting(raw: str | None, name: str, default: int) -> int:
    from .errors import ConfigError

    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to 0 or more.") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} is negative; set it to 0 or more.")
    return value


def retention_settings(values: Mapping[str, str]) -> tuple[int, int]:
    """(keep_last, max_age_days) from ``BACKUP_KEEP_LAST`` and ``BACKUP_RETENTION_DAYS``."""
    return (
        _int_setting(values.get("BACKUP_KEEP_LAST"), "BACKUP_KEEP_LAST", 0),
        _int_setting(values.get("BACKUP_RETENTION_DAYS"), "BACKUP_RETENTION_DAYS", 0),
    )


@dataclass
class PruneResult:
    kept: list[Any]
    deleted: list[Any]
    leftovers: list[Path]
    dry_run: bool
    keep_last: int
    max_age_days: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "keep_last": self.keep_last,
            "max_age_days": self.max_age_days,
            "kept": [b.id for b in self.kept],
            "deleted": [b.id for b in self.deleted],
            "incomplete_removed": [p.name for p in self.leftovers],
        }


def prune(
    dest: Path,
    env_name: str,
    *,
    keep_last: int,
    max_age_days: int,
    now: _dt.datetime | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Delete the backups of ``env_name`` under ``dest`` that no rule keeps, and incomplete
    ``.tmp-*`` leftovers of interrupted runs (unless ``dry_run``)."""
    from .backup import list_backups

    backups, leftovers = list_backups(dest, env_name)
    keep, delete = select_for_pruning(
        backups, keep_last, max_age_days, now or _dt.datetime.now(_dt.UTC)
    )
    if not dry_run:
        for backup in delete:
            shutil.rmtree(backup.path)
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True)
    return PruneResult(keep, delete, leftovers, dry_run, keep_last, max_age_days)


def prune_table(result: PruneResult) -> Table:
    verb = "would delete" if result.dry_run else "deleted"
    rows: list[Mapping[str, Any]] = [
        {"id": b.id, "time": b.time.isoformat(), "action": "keep"} for b in result.kept
    ]
    rows += [{"id": b.id, "time": b.time.isoformat(), "action": verb} for b in result.deleted]
    rows += [{"id": p.name, "time": "", "action": f"{verb} (incomplete)"} for p in result.leftovers]
    return Table(
        columns=[("id", "BACKUP"), ("time", "TIME"), ("action", "ACTION")],
        rows=rows,
        title="Backup retention",
        caption=f"keep last {result.keep_last or '-'}, keep {result.max_age_days or '-'} days",
    )
