"""``teardown``: a thin task over :func:`lakehouse_tasks.teardown.teardown`."""

from __future__ import annotations

from typing import Any

from ._base import audited, default_env, lakehouse_task, project_from_flags


@lakehouse_task(
    help={
        "remove_volumes": "also remove every volume of the environment (all its data)",
        "backup": "take a backup before removing volumes",
        "yes": "confirm destructive actions without asking (needed without a terminal)",
        "force_without_backup": "remove prod volumes without a backup younger than 24 h",
        "target": "compose (default, or $DEPLOY_TARGET) or swarm (docs/SCALING.md)",
    }
)
@audited("teardown")
def teardown(
    c: Any,
    env: str | None = None,
    remove_volumes: bool = False,
    backup: bool = False,
    yes: bool = False,
    force_without_backup: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    json_: bool = False,
    target: str | None = None,
) -> None:
    """Stop and remove an environment's containers and networks; volumes only when asked."""
    from ..backends import backend_for
    from ..errors import ExitCode, LakehouseError
    from ..teardown import teardown as run_teardown
    from ..ui import Output

    name = default_env(env)
    backend = backend_for(target)
    project = project_from_flags(env, rehearsal, env_file, strict=False)
    out = Output(json_mode=json_)
    result = run_teardown(
        project,
        backend=backend,
        remove_volumes=remove_volumes,
        backup=backup,
        yes=yes,
        force_without_backup=force_without_backup,
        notify=out.info,
    )
    if json_:
        out.json(result.to_dict())
    else:
        out.line(f"Teardown of {name} (project {result.project_name}):")
        out.line("  containers left: " + (", ".join(result.containers_left) or "none"))
        out.line("  volumes kept: " + (", ".join(result.volumes_kept) or "none"))
        out.line("  volumes removed: " + (", ".join(result.volumes_removed) or "none"))
    if not result.ok:
        raise LakehouseError(
            f"Teardown of {name} left containers ({', '.join(result.containers_left)}) or "
            "volumes behind; inspect them with `docker ps -a` and `docker volume ls`.",
            ExitCode.DEPLOY_FAILED,
        )
