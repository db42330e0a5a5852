"""``preflight``: can this host run this environment? (exit 3 when a check fails)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from invoke import Exit

from ._base import default_env, lakehouse_task, project_from_flags

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..checks import Check
    from ..ui import Table


def render_checks_table(checks: Sequence[Check], *, title: str) -> Table:
    from ..checks import Status
    from ..ui import Table

    counts = {s: sum(1 for c in checks if c.status == s) for s in Status}
    caption = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    return Table(
        columns=[
            ("status", "Status"),
            ("name", "Check"),
            ("detail", "Detail"),
            ("hint", "Fix"),
        ],
        rows=[c.to_dict() for c in checks],
        title=title,
        caption=caption,
        status_column="status",
    )


#: Failed checks that mean there is no engine or no compose v2 to run anything with (exit 5).
ENGINE_CHECKS = ("engine reachable", "compose version")


def exit_code_for(checks: Sequence[Check]) -> int:
    """0 when nothing fails (warnings allowed); 5 when the engine or compose v2 is missing or
    unreachable (every other task would exit 5 too); 3 when another check fails."""
    from ..checks import Status
    from ..errors import ExitCode
    from ..preflight import preflight_failed

    engine_missing = any(
        c.status == Status.FAIL
        and c.name in ENGINE_CHECKS
        and ("not installed" in c.detail or "not reachable" in c.detail or "did not" in c.detail)
        for c in checks
    )
    if engine_missing:
        return int(ExitCode.ENGINE_UNREACHABLE)
    return int(ExitCode.PREFLIGHT_FAILED if preflight_failed(checks) else ExitCode.OK)


@lakehouse_task(
    help={
        "pull_check": "also ask the registry whether every image can be pulled (needs network)",
        "target": "compose (default, or $DEPLOY_TARGET) or swarm: swarm enforces reservations, so they "
        "fail there",
    }
)
def preflight(
    c: Any,
    env: str | None = None,
    json_: bool = False,
    pull_check: bool = False,
    target: str | None = None,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Check the host before a deploy: engine, disk, CPU/memory, ports, config, images, secrets
    file permissions and certificates. Exits 0 when nothing fails, 3 when something does."""
    from ..backends import backend_for
    from ..checks import Check, Status
    from ..errors import ConfigError, ExitCode
    from ..preflight import preflight_failed, run_preflight
    from ..ui import Output

    name = default_env(env)
    out = Output(json_mode=json_)
    backend = backend_for(target)
    try:
        # Not strict: placeholders and weak secrets become a failed check, not an abort.
        project = project_from_flags(env, rehearsal, env_file, strict=False)
    except ConfigError as exc:
        checks = [Check("environment", Status.FAIL, exc.message, "fix the environment as it says")]
    else:
        checks = run_preflight(project, backend=backend, pull_check=pull_check)
    if json_:
        out.json(
            {
                "environment": name,
                "target": backend.name,
                "ok": not preflight_failed(checks),
                "checks": [ch.to_dict() for ch in checks],
            }
        )
    else:
        out.table(render_checks_table(checks, title=f"Preflight of {name} ({backend.name})"))
    code = exit_code_for(checks)
    if code:
        failing = [ch for ch in checks if ch.status == Status.FAIL]
        if code == int(ExitCode.ENGINE_UNREACHABLE):
            engine = next(ch for ch in failing if ch.name in ENGINE_CHECKS)
            out.error(f"preflight of {name}: {engine.detail.rstrip('.')}; {engine.hint}.")
        else:
            out.error(f"preflight of {name} failed: {', '.join(ch.name for ch in failing)}.")
        raise Exit(code=code)
