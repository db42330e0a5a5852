"""``deploy``, ``history`` and ``rollback``: thin tasks over :mod:`lakehouse_tasks.deploy`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from invoke import Exit

from ._base import (
    audited,
    default_env,
    known_env,
    lakehouse_task,
    project_from_flags,
)

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..deploy import DeployResult
    from ..ui import Output


def render_preview(out: Output, preview: Any) -> None:
    """``--dry-run``: the backend's preview as text, or its JSON."""
    if out.json_mode:
        out.json(preview.to_dict())
        return
    if getattr(preview, "warning", ""):
        out.warn(preview.warning)
    lines = preview.lines() if hasattr(preview, "lines") else preview.text().splitlines()
    for line in lines:
        out.line(line)


def render_result(out: Output, result: DeployResult) -> None:
    """Access table on success; each failing service's healthchecks and logs on failure."""
    from ..deploy_view import progress_table
    from ..ui import Table

    if out.json_mode:
        out.json(result.to_dict())
        return
    if result.ok:
        out.success(result.summary)
        if result.access:
            out.table(
                Table(
                    columns=[("name", "Interface"), ("url", "URL")],
                    rows=list(result.access),
                    title=f"{result.environment} is up",
                )
            )
        if result.access:
            out.info(
                f"Sign-ins of the UIs: invoke env.logins --env {result.environment} "
                "(passwords shown on a terminal only)."
            )
        if result.record:
            out.line(f"Recorded as deployment {result.record.id}.")
        if result.containers:
            for what in ("recreated", "created", "removed"):
                names = result.containers.get(what) or []
                out.line(f"{what.capitalize()}: {', '.join(names) if names else 'none'}")
        return
    out.table(progress_table(result.services, f"{result.kind} of {result.environment}"))
    if result.compose_error:
        out.error(f"compose: {result.compose_error}")
    for failure in result.failures:
        out.error(f"{failure.service}: {failure.reason}")
        if failure.health_log:
            out.stderr.write(f"  last healthchecks of {failure.service}:\n")
            for entry in failure.health_log:
                out.stderr.write(f"    {entry}\n")
        if failure.logs.strip():
            out.stderr.write(f"  last log lines of {failure.service}:\n")
            for line in failure.logs.rstrip().splitlines():
                out.stderr.write(f"    {line}\n")
    out.stderr.flush()


def _finish(out: Output, result: DeployResult) -> None:
    from ..errors import ExitCode, LakehouseError

    render_result(out, result)
    if not result.ok:
        raise LakehouseError(result.summary, ExitCode.DEPLOY_FAILED)


@lakehouse_task(
    help={
        "skip_backup": "do not take the automatic pre-deploy backup",
        "skip_preflight": "do not run the preflight checks first",
        "services": "deploy only these services (comma-separated) and what they depend on",
        "timeout": "seconds to wait for every service (default: $DEPLOY_TIMEOUT of the "
        "environment, else 600)",
        "pull": "pull images first (docker compose up --pull always)",
        "target": "compose (default, or $DEPLOY_TARGET) or swarm (docs/SCALING.md)",
        "label_node": "swarm: label this node as the storage node of the stateful services",
        "dry_run": "print the plan, the exact docker compose commands and which services "
        "would be recreated, created or removed and why; change nothing",
        "smoke": "after a successful deploy, run the smoke check (invoke smoke); exit 8 when "
        "a hop fails",
    }
)
@audited("deploy")
def deploy(
    c: Any,
    env: str | None = None,
    skip_backup: bool = False,
    skip_preflight: bool = False,
    services: str | None = None,
    timeout: str | None = None,
    pull: bool = False,
    dry_run: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    json_: bool = False,
    target: str | None = None,
    label_node: bool = False,
    smoke: bool = False,
) -> None:
    """Deploy an environment: preflight, plugins, backup, compose up, wait until healthy.

    With --smoke, a successful deploy is followed by `invoke smoke` (exit 8 when a hop fails).
    """
    from ..backends import backend_for
    from ..backends.base import refuse_unsupported
    from ..deploy import DeployOptions, parse_services, resolve_timeout
    from ..deploy import deploy as run_deploy
    from ..deploy_view import TerminalReporter
    from ..ui import Output

    name = default_env(env)
    backend = backend_for(target)
    refuse_unsupported(backend, pull=pull, label_node=label_node)
    project = project_from_flags(env, rehearsal, env_file)
    options = DeployOptions(
        services=parse_services(services),
        timeout=resolve_timeout(project, timeout),
        skip_backup=skip_backup,
        skip_preflight=skip_preflight,
        pull=pull,
        command=" ".join(["invoke", "deploy", *sys.argv[2:]])[:200],
        label_node=label_node,
    )
    out = Output(json_mode=json_)
    if dry_run:
        render_preview(out, backend.preview(project, options))
        return
    if project.rehearsal:
        from .rehearsal import ensure_standins

        ensure_standins(log=out.info)
    reporter = TerminalReporter(out, f"Deploying {name} ({backend.name})")
    result = run_deploy(project, options, backend=backend, reporter=reporter)
    if not smoke or not result.ok:
        _finish(out, result)
        return
    _finish_with_smoke(out, project, result)


def _finish_with_smoke(out: Output, project: Any, result: DeployResult) -> None:
    """The deploy's result, then the smoke check of what it deployed (``deploy --smoke``)."""
    from ..errors import ExitCode
    from .smoke import render_report, run_and_publish

    report = run_and_publish(project)
    if out.json_mode:
        out.json({**result.to_dict(), "smoke": report.to_dict()})
    else:
        render_result(out, result)
        render_report(out, report)
    if not report.ok:
        raise Exit(code=int(ExitCode.SMOKE_FAILED))


@lakehouse_task(
    help={
        "to": "id (or unique prefix) of the recorded deployment to return to "
        "(default: the previous one)",
        "timeout": "seconds to wait for every service (default as for deploy)",
    }
)
@audited("rollback")
def rollback(
    c: Any,
    env: str | None = None,
    to: str | None = None,
    timeout: str | None = None,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    json_: bool = False,
) -> None:
    """Redeploy a recorded deployment (default: the previous one) with its exact images."""
    from ..deploy import resolve_timeout
    from ..deploy import rollback as run_rollback
    from ..deploy_view import TerminalReporter
    from ..ui import Output

    name = default_env(env)
    project = project_from_flags(env, rehearsal, env_file, strict=False)
    out = Output(json_mode=json_)
    reporter = TerminalReporter(out, f"Rolling back {name}")
    result = run_rollback(
        project, to=to, timeout=resolve_timeout(project, timeout), reporter=reporter
    )
    _finish(out, result)


@lakehouse_task(name="history")
def history_(c: Any, env: str | None = None, json_: bool = False) -> None:
    """List the recorded deployments of an environment, newest first (the current one marked)."""
    from .. import history as history_mod
    from ..paths import project_root
    from ..ui import Output, Table

    name = known_env(env)
    rows = history_mod.listing(history_mod.load(project_root(), name))
    out = Output(json_mode=json_)
    if json_:
        out.json({"environment": name, "deployments": rows})
        return
    if not rows:
        out.line(f"No deployment of {name} is recorded yet.")
        return
    out.table(
        Table(
            columns=[
                ("mark", ""),
                ("id", "Id"),
                ("time", "Time"),
                ("kind", "Kind"),
                ("commit", "Commit"),
                ("config", "Config"),
                ("services", "Services"),
            ],
            rows=[
                {
                    "mark": "current" if r["current"] else "",
                    "id": r["id"],
                    "time": r["time"],
                    "kind": r["kind"]
                    + (f" to {r['rolled_back_to']}" if r.get("rolled_back_to") else ""),
                    "commit": (r["git_commit"] or "-")[:10],
                    "config": r["config_hash"][:12],
                    "services": len(r["services"]),
                }
                for r in rows
            ],
            title=f"Deployments of {name}",
        )
    )
