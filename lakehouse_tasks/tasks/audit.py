"""``audit``: who changed what, when, with which result (``state_dir/audit.jsonl``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._base import lakehouse_task

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..audit import AuditRecord
    from ..ui import Table

_RESULT_STYLES = {"ok": "ok", "failed": "fail", "refused": "warn", "interrupted": "warn"}


def render_audit_table(records: list[AuditRecord], title: str) -> Table:
    from ..ui import Table, human_duration

    rows: list[Mapping[str, Any]] = []
    for r in records:
        arguments = ", ".join(
            f"{k}={v}" for k, v in r.arguments.items() if v not in (None, "", False, [], ())
        )
        result = r.result if r.result == "ok" else f"{r.result} ({r.exit_code})"
        rows.append(
            {
                "time": r.time,
                "environment": r.environment,
                "task": r.task,
                "result": result,
                "duration": human_duration(r.duration_s),
                "who": f"{r.user}@{r.host}",
                "commit": r.commit[:12] + ("+dirty" if r.commit.endswith("+dirty") else ""),
                "arguments": arguments,
            }
        )
    return Table(
        columns=[
            ("time", "Time (UTC)"),
            ("environment", "Env"),
            ("task", "Task"),
            ("result", "Result"),
            ("duration", "Took"),
            ("who", "Who"),
            ("commit", "Commit"),
            ("arguments", "Arguments"),
        ],
        rows=rows,
        title=title,
        status_column="result",
        highlight=lambda row: "" if str(row["result"]) == "ok" else "yellow",
    )


@lakehouse_task(
    help={
        "env": "only this environment (default: every environment)",
        "task": "only this task (deploy, backup, secrets.generate, ...)",
        "since": "only records newer than a duration (30m, 24h, 7d) or a date (2026-11-01)",
        "limit": "only the newest N records (default 50; 0 = all)",
    }
)
def audit(
    c: Any,
    env: str | None = None,
    task: str = "",
    since: str = "",
    limit: int = 50,
    json_: bool = False,
) -> None:
    """Show the audit log: every state-changing task run (secrets masked)."""
    from ..audit import audit_path, parse_since, read_records
    from ..ui import Output

    path = audit_path()
    records = list(
        read_records(path, environment=env or None, task=task or None, since=parse_since(since))
    )
    if limit > 0:
        records = records[-limit:]
    out = Output(json_mode=json_)
    if json_:
        out.json(records)
        return
    if not records:
        out.info(f"No audit records match in {path}.")
        return
    scope = f" of {env}" if env else ""
    out.table(render_audit_table(records, f"Audit log{scope} ({len(records)} records)"))
