"""Backups rendered as tables (rich, plain or JSON through ``ui.Table``): a manifest, the
list of backups with where each one lives, a restore, a prune. The data modules return the
values; the tasks render them here (the data package imports no presentation)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data.manifest import BackupInfo, BackupManifest
from .ui import Table, human_bytes

if TYPE_CHECKING:
    from .data.restore import RestoreResult
    from .retention import PruneResult


# ---- rendering ------------------------------------------------------------------------------
def manifest_table(manifest: BackupManifest, path: Path | None = None) -> Table:
    rows: list[Mapping[str, Any]] = [
        {
            "artefact": a.name,
            "kind": a.kind,
            "source": a.source,
            "size": human_bytes(a.size),
            "raw": human_bytes(a.raw_size),
            "sha256": a.sha256[:12],
        }
        for a in manifest.artefacts
    ]
    return Table(
        columns=[
            ("artefact", "ARTEFACT"),
            ("kind", "KIND"),
            ("source", "SOURCE"),
            ("size", "SIZE"),
            ("raw", "UNCOMPRESSED"),
            ("sha256", "SHA256"),
        ],
        rows=rows,
        title=f"Backup {manifest.id}",
        caption=(
            f"{len(rows)} artefacts, {human_bytes(manifest.size)} in "
            f"{manifest.duration_seconds:.1f}s" + (f" at {path}" if path else "")
        ),
    )


def where_label(local: bool, copies: Sequence[Any]) -> str:
    """``local``, ``off-site`` or ``both`` (another location's name when a plugin says so)."""
    places = sorted({c.location for c in copies})
    if local and places:
        return "both" if places == ["off-site"] else "local, " + ", ".join(places)
    if places:
        return ", ".join(places)
    return "local"


def backups_table(
    backups: Sequence[BackupInfo], leftovers: Sequence[Path], copies: Sequence[Any] = ()
) -> Table:
    """Local backups and (``copies``: ``BackupCopy`` from plugins) where each one lives."""
    by_id: dict[str, list[Any]] = {}
    for copy in copies:
        by_id.setdefault(copy.backup_id, []).append(copy)
    rows: list[dict[str, Any]] = [
        {
            "id": b.id,
            "time": b.time.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "size": human_bytes(b.size),
            "tag": b.manifest.tag or "",
            "verified": b.verified.label if b.verified else "no",
            "where": where_label(True, by_id.get(b.id, ())),
            "_time": b.time,
        }
        for b in backups
    ]
    local = {b.id for b in backups}
    for ident, held in by_id.items():
        if ident in local:
            continue
        first = held[0]
        rows.append(
            {
                "id": ident,
                "time": first.time.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                "size": human_bytes(first.size) if first.size else "-",
                "tag": "",
                "verified": "-",
                "where": where_label(False, held),
                "_time": first.time,
            }
        )
    rows.sort(key=lambda r: r["_time"], reverse=True)
    for row in rows:
        del row["_time"]
    caption = ""
    if leftovers:
        caption = (
            f"{len(leftovers)} incomplete backup(s) left by an interrupted run: "
            + ", ".join(p.name for p in leftovers)
            + " (`invoke backup.prune` removes them)"
        )
    columns = [
        ("id", "ID"),
        ("time", "TIME"),
        ("size", "SIZE"),
        ("tag", "TAG"),
        ("verified", "VERIFIED"),
    ]
    if copies:
        columns.append(("where", "WHERE"))
    return Table(
        columns=columns,
        rows=list[Mapping[str, Any]](rows),
        title="Backups",
        caption=caption,
    )


def restore_table(result: RestoreResult) -> Table:
    return Table(
        columns=[("artefact", "ARTEFACT"), ("target", "RESTORED INTO"), ("status", "STATUS")],
        rows=list[Mapping[str, Any]](result.restored),
        title=f"Restore of {result.environment} from {result.backup}",
        caption=(
            f"safety backup: {result.safety_backup or 'none'}; services restarted: "
            f"{', '.join(result.services) or 'none'}; {result.duration_seconds:.1f}s"
        ),
        status_column="status",
    )


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
        caption=(
            f"keep last {result.keep_last or '-'}, daily {result.keep_daily or '-'}, weekly "
            f"{result.keep_weekly or '-'}, monthly {result.keep_monthly or '-'}, keep "
            f"{result.max_age_days or '-'} days"
        ),
    )
