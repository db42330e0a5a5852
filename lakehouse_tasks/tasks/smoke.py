"""``smoke``: does the deployed lakehouse work end to end, hop by hop (docs/SMOKE.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke import Exit

from ._base import lakehouse_task, project_from_flags

if TYPE_CHECKING:
    from ..project import Project
    from ..smoke.model import SmokeReport
    from ..ui import Output


def smoke_table(report: SmokeReport) -> Any:
    from ..ui import Table

    rows = [
        {
            "hop": h.name,
            "verdict": h.verdict,
            "seconds": f"{h.seconds:.1f}",
            "what": h.cause or h.detail,
        }
        for h in report.hops
    ]
    rows += [
        {"hop": f"clean-up {c.what}", "verdict": "failed", "seconds": "", "what": c.cause}
        for c in report.cleanup_failed
    ]
    return Table(
        columns=[
            ("hop", "Hop"),
            ("verdict", "Verdict"),
            ("seconds", "s"),
            ("what", "Cause / detail"),
        ],
        rows=rows,
        title=f"smoke {report.environment} ({report.run_id})",
        status_column="verdict",
    )


def run_and_publish(project: Project, only: list[str] | None = None) -> SmokeReport:
    """Run the smoke check and give its events to the plugins."""
    from ..hooks.emit import emit_event
    from ..smoke.runner import run_smoke, smoke_events

    report = run_smoke(project, only=only or ())
    for event in smoke_events(report):
        emit_event(event, project.env)
    return report


def render_report(out: Output, report: SmokeReport) -> None:
    out.table(smoke_table(report))
    if report.ok:
        out.success(report.summary())
    else:
        out.warn(report.summary())


@lakehouse_task(
    iterable=["hop"],
    help={
        "hop": "run only these hops (repeatable, or a comma list): object-storage, metastore, "
        "trino, spark, spark-table, superset, superset-trino, airflow, ingestor, dbt",
    },
)
def smoke(
    c: Any,
    env: str | None = None,
    hop: list[str] | None = None,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    json_: bool = False,
) -> None:
    """Check the data path of a deployed environment, hop by hop.

    Writes and removes a canary object, creates and drops a metastore schema, a Trino table,
    a Spark job reading it, Superset's login and its Trino connection, Airflow's API, the
    ingestor's and dbt's last results. Everything created is named lakehouse_smoke_<time>_<hex> and removed even when a
    hop fails. Exits 0 when no hop failed, 8 when one did (docs/EXIT_CODES.md). Hops whose
    service is a rehearsal stand-in are "not rehearsed", never "passed".
    """
    from ..errors import ConfigError, ExitCode
    from ..parsing import parse_names
    from ..smoke.hops import HOP_NAMES
    from ..ui import Output

    names = list(parse_names(hop))
    unknown = [n for n in names if n not in HOP_NAMES]
    if unknown:
        raise ConfigError(
            f"unknown smoke hop {', '.join(unknown)}; use one of {', '.join(HOP_NAMES)}."
        )
    project = project_from_flags(env, rehearsal, env_file, strict=False)
    out = Output(json_mode=json_)
    report = run_and_publish(project, names)
    if json_:
        out.json(report.to_dict())
    else:
        render_report(out, report)
    if not report.ok:
        raise Exit(code=int(ExitCode.SMOKE_FAILED))
