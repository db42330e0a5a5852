"""``security``: a CIS-style report on the merged configuration and the running containers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from invoke import Exit

from ._base import lakehouse_task, project_from_flags

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..security import SecurityReport
    from ..ui import Table


def render_security_table(report: SecurityReport) -> Table:
    """One row per finding, grouped by service (then credentials, files, tls)."""
    from ..checks import Status
    from ..ui import Table

    rows: list[Mapping[str, Any]] = []
    for group, findings in report.by_group().items():
        for i, finding in enumerate(findings):
            check = finding.check
            note = check.detail
            if check.hint and check.status in (Status.WARN, Status.FAIL, Status.SKIP):
                note = f"{note} -> {check.hint}" if note else check.hint
            rows.append(
                {
                    "group": group if i == 0 else "",
                    "origin": finding.origin,
                    "check": check.name,
                    "status": check.status.value,
                    "detail": note,
                }
            )
    counts = report.counts()
    return Table(
        columns=[
            ("group", "Service"),
            ("origin", "Seen in"),
            ("check", "Check"),
            ("status", "Status"),
            ("detail", "Detail / fix"),
        ],
        rows=rows,
        title=f"Security of {report.environment} ({report.containers_inspected} running "
        "containers inspected)",
        caption=f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail, "
        f"{counts['skip']} skipped (docs/SECURITY.md explains each check)",
        status_column="status",
    )


@lakehouse_task(
    help={
        "no_containers": "judge the configuration only; do not inspect running containers",
    }
)
def security(
    c: Any,
    env: str | None = None,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    no_containers: bool = False,
) -> None:
    """Report security findings (CIS Docker Benchmark style) of the configuration and the
    running containers; exit 3 when any check fails."""
    from ..checks import Status
    from ..errors import ExitCode
    from ..security import security_report
    from ..ui import Output

    project = project_from_flags(env, rehearsal, env_file, strict=False)
    report = security_report(project, inspect_running=not no_containers)
    out = Output(json_mode=json_)
    if json_:
        out.json(report)
    else:
        out.table(render_security_table(report))
    if report.status is Status.FAIL:
        if not json_:
            out.error(
                f"{len(report.failures)} security checks failed in {report.environment}; "
                "see the fixes above."
            )
        raise Exit(code=int(ExitCode.PREFLIGHT_FAILED))
