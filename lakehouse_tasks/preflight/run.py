"""The preflight runner: every check in order (engine, disk, resources, ports, configuration, images, files, plugins), with the backend's reservation rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..checks import Check, Status
from ..engine import containers
from ..engine import images as engine_images
from ..engine.client import (
    Engine,
    EngineInfo,
)
from ..errors import LakehouseError
from .config import config_checks, image_checks
from .files import secret_file_checks, tls_checks
from .host import disk_checks, engine_checks, port_checks, resource_checks

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..project import Project


def plugin_checks(project: Project) -> list[Check]:
    from ..hooks.manager import get_plugin_manager

    return list(get_plugin_manager().preflight_checks(project=project) or [])


def run_preflight(
    project: Project,
    *,
    backend: Backend | None = None,
    pull_check: bool = False,
    engine: Engine | None = None,
) -> list[Check]:
    """Every preflight check of ``project``, in a stable order; nothing is changed.

    ``backend`` is where the stack goes (default compose): its ``hard_reservations`` (swarm)
    turns reservations that do not fit into failures. A failed engine check skips what needs
    the engine (shown as ``skip``).
    """
    from concurrent.futures import ThreadPoolExecutor

    engine = engine or Engine(docker_cmd=project.compose.docker_cmd)
    cmd = project.compose.docker_cmd
    # The checks are independent until the images (they need the merged config): the engine
    # (one `docker info`, with `compose version` beside it), the merged config and the port
    # bindings (one `docker ps`) run at once, the file checks meanwhile in this thread. The
    # fixed cost a deploy pays is then about one `compose config` (docs/PERFORMANCE.md). When
    # the engine is down, the failed port listing is simply not read (the engine check says it).
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="preflight") as pool:
        info_job = pool.submit(engine.info)
        config_job = pool.submit(config_checks, project)
        bindings_job = pool.submit(containers.running_port_bindings, cmd)
        late = secret_file_checks(project.env) + tls_checks(project.env)
        info: EngineInfo | None = None
        error = ""
        try:
            info = info_job.result()
        except LakehouseError as exc:
            error = exc.message
        checks = engine_checks(info, error)
        checks += config_job.result()
        stack_ok = all(c.status != Status.FAIL for c in checks if c.name == "compose config")
        checks += disk_checks(project.env, info)
        if info is None or not stack_ok:
            why = "the engine is unreachable" if info is None else "the compose config is invalid"
            for name in ("host resources", "published ports", "images"):
                checks.append(Check(name, Status.SKIP, f"skipped: {why}"))
        else:
            stack = project.stack
            images_job = pool.submit(engine.image_ids, stack.images().values())
            checks += resource_checks(
                stack,
                info,
                hard_reservations=bool(backend and backend.hard_reservations),
                schema=project.env.schema,
            )
            checks += port_checks(stack, project.compose.project_name, bindings_job.result())
            present = images_job.result()

            def pullable(ref: str) -> tuple[bool, str]:
                return engine_images.manifest_available(cmd, ref)

            checks += image_checks(
                stack,
                present,
                pullable=pullable if pull_check else None,
                offer_rehearsal=not project.rehearsal,
            )
    checks += late
    checks += plugin_checks(project)
    return checks


def preflight_failed(checks: Iterable[Check]) -> bool:
    return any(c.status == Status.FAIL for c in checks)
