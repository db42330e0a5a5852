"""``backup.drill``: a restore into a throw-away copy, checked and torn down; part of the ``backup`` collection (tasks/backup.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._base import (
    audited,
    lakehouse_task,
    project_from_flags,
)

if TYPE_CHECKING:
    from ..ui import Table


def _drill_table(result: Any) -> Table:
    from ..ui import Table

    rows: list[dict[str, Any]] = []
    for db in result.databases:
        rows.append(
            {
                "what": f"database {db['service']}/{db['database']}",
                "expected": f"{db['rows']} rows in {db['tables']} tables",
                "result": "identical" if db["ok"] else "DIFFERENT",
            }
        )
    for vol in result.volumes:
        rows.append(
            {
                "what": f"volume {vol['volume']}",
                "expected": f"{vol['files']} files (sha256)",
                "result": "identical" if vol["ok"] else "DIFFERENT",
            }
        )
    rows.append({"what": "smoke test", "expected": "", "result": result.smoke})
    return Table(
        columns=[("what", "CHECK"), ("expected", "EXPECTED"), ("result", "RESULT")],
        rows=list[Mapping[str, Any]](rows),
        title=f"Restore drill of {result.backup} ({result.source})",
        caption=(
            f"restore {result.restore_seconds:.1f}s, healthy after {result.healthy_seconds:.1f}s, "
            f"total {result.total_seconds:.1f}s; evidence {result.evidence}"
        ),
    )


@lakehouse_task(
    name="drill",
    help={
        "backup": "id of the backup to drill (default: the newest, on the host or off-site)",
        "timeout": "seconds the copy gets to become healthy (default 600)",
    },
)
@audited("backup.drill")
def drill(
    c: Any,
    env: str | None = None,
    backup: str | None = None,
    timeout: float = 600.0,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Restore a backup into an isolated throw-away copy of the stack, check every row count
    and file checksum, record the evidence, tear the copy down."""
    from ..data.drill import run_drill
    from ..ui import Output

    project = project_from_flags(env, rehearsal, env_file)
    out = Output(json_mode=json_)
    result = run_drill(project, backup_id=backup or None, out=out, timeout=float(timeout))
    if json_:
        out.json(result.to_dict())
        return
    out.table(_drill_table(result))
    out.success(f"Restore drill of {result.backup} passed; nothing of the copy is left.")
