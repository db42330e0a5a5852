"""The compose backend: a compose project on one engine (the default target).

Containers are found by the labels compose puts on them (one ``docker ps`` per read); stopping
and starting around a backup or restore is ``docker stop`` / ``docker start`` of those
containers, started again wave by wave in dependency order with a probe of each service's own
healthcheck between waves (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...engine import containers as engine_containers
from ...engine import volumes as engine_volumes
from ...engine.compose import compose_log_lines
from ...errors import LakehouseError
from ...outcomes import DeployOptions, Reporter, ServiceFailure, TeardownResult, WaitOutcome
from ...stack import with_dependencies
from ..base import no_running_container
from . import services as compose_services
from .deploy import failure_details, missing_images, up_arguments
from .layers import create_arguments, start_in_order
from .plan import plan_deploy
from .services import HEALTH_TIMEOUT_S
from .upgrade import plan_upgrade, report_containers, upgrade_step

if TYPE_CHECKING:
    from ...project import Project
    from .plan import DeployPlan
    from .upgrade import UpgradePlan


@dataclass(frozen=True)
class ComposePreview:
    """What ``deploy --dry-run`` shows on compose: the plan (files, layers, the exact
    ``docker compose`` command) and which containers would change and why."""

    plan: DeployPlan
    changes: UpgradePlan | None
    warning: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            **self.plan.to_dict(),
            "containers": self.changes.to_dict() if self.changes else None,
        }

    def lines(self) -> list[str]:
        plan, upgrade = self.plan, self.changes
        out = [
            f"Deploy plan for {plan.environment} (project {plan.project_name}); nothing changed.",
            "Compose files: " + ", ".join(plan.compose_files),
            "Profiles: " + (", ".join(plan.profiles) or "none"),
            "Services: " + (", ".join(plan.services) or "none"),
            "One-shots: " + (", ".join(plan.oneshots) or "none"),
            "Volumes: " + (", ".join(plan.volumes) or "none"),
            "Layers: " + "  ->  ".join(", ".join(layer) for layer in plan.layers),
            "Steps:",
            *(f"  {i}. {step}" for i, step in enumerate(plan.steps, 1)),
            "Commands:",
            *(f"  {command}" for command in plan.commands),
        ]
        if upgrade is None:
            out.append("Changes: unknown (the running containers could not be read)")
            return out
        if not upgrade.changed:
            out.append("Changes: none; every container matches the configuration")
        else:
            out.append("Changes:")
            out += [f"  {c.action} {c.service}: {'; '.join(c.reasons)}" for c in upgrade.changed]
        out += [f"Rolling update, one at a time: {' -> '.join(g)}" for g in upgrade.rolling]
        return out


class ComposeBackend:
    """The compose project of the environment (``docker compose`` on this engine)."""

    name: ClassVar[str] = "compose"
    keeps_history: ClassVar[bool] = True
    hard_reservations: ClassVar[bool] = False
    unsupported_flags: ClassVar[Mapping[str, str]] = {
        "label_node": "it labels a swarm node; compose places every service on this engine",
    }

    def snapshot(
        self, project: Project, *, resources: bool = True, services: Sequence[str] | None = None
    ) -> Any:
        from ...health import take_snapshot

        return take_snapshot(project, resources=resources, services=services)

    def watcher(self) -> Callable[..., Any]:
        from ...engine.inspect_cache import InspectCache
        from ...health import take_snapshot

        # inspect again only the containers whose list entry changed (engine/inspect_cache.py)
        return functools.partial(take_snapshot, inspect_cache=InspectCache())

    def running_services(self, project: Project) -> list[str]:
        return sorted(compose_services.running_containers(project))

    def restarting_services(self, project: Project) -> dict[str, str]:
        # Between two attempts a crash-looping container is `restarting`; during one it runs
        # for a moment with its healthcheck back at `starting` (the engine resets it on start).
        return {
            s.service: "restarting"
            for s in engine_containers.container_states(project.compose)
            if s.status == "restarting"
            or (s.status == "running" and s.restart_count > 0 and s.health == "starting")
        }

    def running_images(self, project: Project) -> dict[str, str]:
        images: dict[str, str] = {}
        for state in engine_containers.container_states(project.compose):
            if state.service and state.service not in images:
                images[state.service] = state.image_id
        return images

    def log_lines(self, project: Project, args: Sequence[str]) -> Iterable[str]:
        return compose_log_lines(project.compose, *args)

    def exec_target(self, project: Project, service: str) -> str:
        found = compose_services.running_containers(project).get(service, [])
        if not found:
            raise no_running_container(project, service)
        return found[0]

    def replicas(self, project: Project, services: Sequence[str]) -> dict[str, int]:
        return {}  # `docker start` brings back exactly the containers that were stopped

    def stop(self, project: Project, services: Sequence[str]) -> None:
        compose_services.stop_services(project, services)

    def start(
        self,
        project: Project,
        services: Sequence[str],
        replicas: Mapping[str, int],
        *,
        unsettled: Collection[str] = (),
    ) -> set[str]:
        return compose_services.start_services(project, services, unsettled=unsettled)

    def wait_healthy(
        self,
        project: Project,
        services: Sequence[str],
        *,
        timeout: float = HEALTH_TIMEOUT_S,
        what: str = "the restore",
        confirmed: Iterable[str] = (),
    ) -> set[str]:
        return compose_services.wait_healthy(
            project, services, timeout=timeout, what=what, confirmed=confirmed
        )

    # ---- lifecycle ----------------------------------------------------------------------
    def ready(self, project: Project, services: Sequence[str]) -> list[str]:
        """The named services and what they depend on (all active ones when none is named);
        compose creates everything else it needs itself."""
        return with_dependencies(project.stack, services)

    def preview(self, project: Project, options: DeployOptions) -> ComposePreview:

        try:
            changes: UpgradePlan | None = plan_upgrade(project, options.services)
            warning = ""
        except LakehouseError as exc:
            changes, warning = None, f"cannot compare with the running containers: {exc.message}"
        return ComposePreview(plan_deploy(project, options), changes, warning)

    def apply(
        self,
        project: Project,
        targets: Sequence[str],
        options: DeployOptions,
        reporter: Reporter,
    ) -> WaitOutcome:
        """One-at-a-time updates where several Spark workers changed, then ``compose create``
        and each service started once its dependencies are ready (:mod:`.layers`)."""
        from ...project import stamp_config_hashes

        # The tool's own config-hash label on every container (lakehouse_tasks.confighash).
        stamp_config_hashes(project)
        stack = project.stack
        before, failed_roll = upgrade_step(project, targets, options.timeout, reporter)
        if failed_roll is not None:
            return failed_roll
        args = up_arguments(
            stack,
            list(options.services),
            pull=options.pull,
            missing_images=missing_images(stack, targets),
        )
        # compose create, then each service started by the tool once its dependencies pass
        # their own healthchecks (.layers): not compose up, which waits for the engine's
        # first healthcheck interval at every layer
        outcome = start_in_order(
            project,
            args=create_arguments(args),
            services=targets,
            timeout=options.timeout,
            reporter=reporter,
        )
        report_containers(project, outcome, before, reporter)
        return outcome

    def failure_details(
        self, project: Project, failures: Sequence[tuple[str, str]]
    ) -> list[ServiceFailure]:

        return failure_details(project, failures)

    def remove(
        self, project: Project, *, volumes: bool, notify: Callable[[str], None]
    ) -> TeardownResult:
        """``docker compose down --remove-orphans`` (``--volumes`` when asked), then what the
        engine shows afterwards."""
        compose = project.compose
        result = TeardownResult(
            environment=project.env.name, project_name=compose.project_name, remove_volumes=volumes
        )
        result.volumes_before = engine_volumes.project_volumes(compose)
        args = ["down", "--remove-orphans"] + (["--volumes"] if volumes else [])
        notify(f"running: docker compose {' '.join(args)}")
        compose.down(remove_orphans=True, volumes=volumes)
        result.containers_left = [c.name for c in engine_containers.container_states(compose)]
        result.volumes_after = engine_volumes.project_volumes(compose)
        return result

    # ---- data protection ------------------------------------------------------------------
    def create_volume(self, project: Project, key: str, volume: str) -> None:
        # What `up` would do: compose creates a service's volumes with its containers.
        users = [n for n, s in project.stack.services.items() if key in s.volumes]
        project.compose.create(sorted(users))


__all__ = ["ComposeBackend"]
