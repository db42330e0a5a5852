"""Which backups to keep: retention by count and by age, as a pure function.

Rules (the same as restic's ``--keep-last``, ``--keep-daily``, ``--keep-weekly``,
``--keep-monthly`` and ``--keep-within``): a backup is kept when *any* rule keeps it, and
deleted only when no rule does. The off-site plugin applies the very same function to its
copies, so both sides keep the same backups.

* ``keep_last`` (``BACKUP_KEEP_LAST``): the newest N backups are kept; 0 = no count rule.
* ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` (``BACKUP_KEEP_DAILY`` ...): for the
  newest N days (ISO weeks, months, UTC) that have a backup, the newest backup of each is
  kept; 0 = no such rule.
* ``max_age_days`` (``BACKUP_RETENTION_DAYS``): backups younger than N days are kept;
  0 = no age rule ("keep by count only").
* With no rule set, nothing is deleted.
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


class Prunable(Protocol):
    @property
    def time(self) -> _dt.datetime: ...

    @property
    def is_verified(self) -> bool: ...


B = TypeVar("B", bound=Prunable)


def _bucket_keepers(ordered: Sequence[B], count: int, bucket: Any) -> set[int]:
    """Indexes of the newest backup in each of the newest ``count`` buckets (days, weeks...)."""
    kept: set[int] = set()
    seen: set[Any] = set()
    if count <= 0:
        return kept
    for index, backup in enumerate(ordered):
        key = bucket(backup.time.astimezone(_dt.UTC))
        if key in seen:
            continue
        if len(seen) >= count:
            break
        seen.add(key)
        kept.add(index)
    return kept


def select_for_pruning(
    backups: Sequence[B],
    keep_last: int,
    max_age_days: int,
    now: _dt.datetime,
    *,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
    protected: Any = None,
) -> tuple[list[B], list[B]]:
    """Split ``backups`` into (keep, delete), each newest first. See the module docstring.

    ``protected``: a predicate naming backups that must be kept whatever the rules say (the
    off-site side passes "is the newest verified backup of the host")."""
    ordered = sorted(backups, key=lambda b: b.time, reverse=True)
    if not ordered:
        return [], []
    if max(keep_last, max_age_days, keep_daily, keep_weekly, keep_monthly) <= 0:
        return ordered, []
    cutoff = now - _dt.timedelta(days=max_age_days)
    newest_verified = next((b for b in ordered if b.is_verified), None)
    by_bucket = (
        _bucket_keepers(ordered, keep_daily, lambda t: t.date())
        | _bucket_keepers(ordered, keep_weekly, lambda t: t.isocalendar()[:2])
        | _bucket_keepers(ordered, keep_monthly, lambda t: (t.year, t.month))
    )
    keep: list[B] = []
    delete: list[B] = []
    for rank, backup in enumerate(ordered):
        kept = (
            (keep_last > 0 and rank < keep_last)
            or (max_age_days > 0 and backup.time >= cutoff)
            or rank in by_bucket
            or rank == 0
            or backup is newest_verified
            or (protected is not None and protected(backup))
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


@dataclass(frozen=True)
class RetentionPolicy:
    """Every retention rule of an environment (``BACKUP_KEEP_*``, ``BACKUP_RETENTION_DAYS``)."""

    keep_last: int = 0
    max_age_days: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "keep_last": self.keep_last,
            "keep_daily": self.keep_daily,
            "keep_weekly": self.keep_weekly,
            "keep_monthly": self.keep_monthly,
            "max_age_days": self.max_age_days,
        }


def retention_policy(values: Mapping[str, str]) -> RetentionPolicy:
    """The whole policy; ``BACKUP_KEEP_DAILY``/``WEEKLY``/``MONTHLY`` default to 0 (off)."""
    count, days = retention_settings(values)
    return RetentionPolicy(
        keep_last=count,
        max_age_days=days,
        keep_daily=_int_setting(values.get("BACKUP_KEEP_DAILY"), "BACKUP_KEEP_DAILY", 0),
        keep_weekly=_int_setting(values.get("BACKUP_KEEP_WEEKLY"), "BACKUP_KEEP_WEEKLY", 0),
        keep_monthly=_int_setting(values.get("BACKUP_KEEP_MONTHLY"), "BACKUP_KEEP_MONTHLY", 0),
    )


@dataclass
class PruneResult:
    kept: list[Any]
    deleted: list[Any]
    leftovers: list[Path]
    dry_run: bool
    keep_last: int
    max_age_days: int
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    #: The id of the newest verified backup: never deleted, on the host or off it.
    protected: str | None = None

    @property
    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            self.keep_last, self.max_age_days, self.keep_daily, self.keep_weekly, self.keep_monthly
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "keep_last": self.keep_last,
            "keep_daily": self.keep_daily,
            "keep_weekly": self.keep_weekly,
            "keep_monthly": self.keep_monthly,
            "max_age_days": self.max_age_days,
            "protected": self.protected,
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
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
) -> PruneResult:
    """Delete the backups of ``env_name`` under ``dest`` that no rule keeps, and incomplete
    ``.tmp-*`` leftovers of interrupted runs (unless ``dry_run``)."""
    from .data.store import list_backups

    backups, leftovers = list_backups(dest, env_name)
    keep, delete = select_for_pruning(
        backups,
        keep_last,
        max_age_days,
        now or _dt.datetime.now(_dt.UTC),
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
    )
    newest_verified = next((b.id for b in backups if b.is_verified), None)
    if not dry_run:
        for backup in delete:
            shutil.rmtree(backup.path)
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True)
    return PruneResult(
        keep,
        delete,
        leftovers,
        dry_run,
        keep_last,
        max_age_days,
        keep_daily,
        keep_weekly,
        keep_monthly,
        newest_verified,
    )


def prune_by_policy(
    dest: Path, env: Any, policy: RetentionPolicy, *, dry_run: bool = False
) -> PruneResult:
    """:func:`prune` with a whole policy, then the plugins' ``lakehouse_post_prune`` (the
    off-site copies get the same policy)."""
    result = prune(
        dest,
        env.name,
        keep_last=policy.keep_last,
        max_age_days=policy.max_age_days,
        keep_daily=policy.keep_daily,
        keep_weekly=policy.keep_weekly,
        keep_monthly=policy.keep_monthly,
        dry_run=dry_run,
    )
    from .hooks.manager import get_plugin_manager

    get_plugin_manager().post_prune(env=env, result=result)
    return result
