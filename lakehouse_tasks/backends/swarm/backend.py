"""The swarm backend: the same stack as a ``docker stack`` on a swarm (docs/SCALING.md).

A service's containers are its tasks, found by the labels swarm puts on them; ``docker exec``
reaches the tasks on the node we talk to. Stopping a service around a backup or restore is
scaling it to 0 (its replica count is recorded first, so a recovery can scale it back), and
starting it is scaling it back and waiting until every replica runs again (a task with a
healthcheck only runs once healthy). The stack keeps compose's volume names, so everything
that reads or writes volumes is the same as on compose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ...engine import swarm as engine_swarm
from ...engine import volumes as engine_volumes
from ...errors import EngineError, ExitCode, LakehouseError
from ...outcomes import DeployOptions, Reporter, ServiceFailure, TeardownResult, WaitOutcome
from ..base import no_running_container, not_healthy
from .cluster import check_ready, deploy_targets
from .policies import options_for
from .steps import apply_stack, failure_details, remove_stack
from .translate import project_stack_file
from .views import read_stack, take_snapshot

if TYPE_CHECKING:
    from ...project import Project

#: How long a service scaled to 0 gets for its tasks to stop, and a service scaled back for
#: all its replicas to run again (healthy, when it has a healthcheck).
STOP_TIMEOUT_S = 120.0
START_TIMEOUT_S = 300.0
POLL_S = 0.5
HEALTH_POLL_S = 2.0


def stack_views(project: Project) -> dict[str, Any]:
    """The stack's services and their tasks on every node (read from a manager).

    Scaling down and up prunes old tasks from the history between ``service ps`` and
    ``inspect`` ("task ... not found"): such a read is retried, never taken as "no tasks"."""

    for attempt in range(5):
        try:
            return read_stack(project.compose.docker_cmd, project.compose.project_name)
        except EngineError as exc:
            if "not found" not in f"{exc.message} {exc.stderr}".lower() or attempt == 4:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


#: Task states after which a task never runs again.
_ENDED = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
#: Desired states of a task swarm is going to run (``ready``: during the restart delay).
_MEANT_TO_RUN = frozenset({"running", "ready"})


def live_tasks(view: Any) -> int:
    """Tasks of a service that run, or are meant to run and are on their way."""
    return sum(
        1
        for t in view.tasks
        if t.state == "running"
        or (t.desired == "running" and t.state in ("assigned", "accepted", "preparing", "starting"))
    )


def service_name(project: Project, service: str) -> str:
    return f"{project.compose.project_name}_{service}"


class SwarmBackend:
    """The environment as a swarm stack named after its compose project."""

    name: ClassVar[str] = "swarm"
    keeps_history: ClassVar[bool] = False
    hard_reservations: ClassVar[bool] = True
    unsupported_flags: ClassVar[Mapping[str, str]] = {
        "pull": "docker stack deploy runs with --resolve-image never, so images must already "
        "be on the nodes (build or load them first)",
    }

    def snapshot(
        self, project: Project, *, resources: bool = True, services: Sequence[str] | None = None
    ) -> Any:

        return take_snapshot(project, resources=resources, services=services)

    def watcher(self) -> Callable[..., Any]:
        return self.snapshot  # four docker calls at any size: nothing worth keeping

    def running_services(self, project: Project) -> list[str]:
        views = stack_views(project)
        return sorted(n for n, v in views.items() if any(t.state == "running" for t in v.tasks))

    def restarting_services(self, project: Project) -> dict[str, str]:
        # A task with a healthcheck reaches `running` only once healthy; before that a task
        # meant to run is on its way (after failed ones: the service is crash-looping). The
        # replacement of a failed task waits out the restart delay with desired state `ready`.
        coming: dict[str, str] = {}
        for name, view in stack_views(project).items():
            if any(t.state == "running" for t in view.tasks):
                continue
            if any(t.desired in _MEANT_TO_RUN and t.state not in _ENDED for t in view.tasks):
                ended = any(t.state in ("complete", "failed", "rejected") for t in view.tasks)
                coming[name] = "restarting" if ended else "starting"
        return coming

    def running_images(self, project: Project) -> dict[str, str]:
        return {}  # never asked: swarm keeps its own previous spec (keeps_history is False)

    def log_lines(self, project: Project, args: Sequence[str]) -> Iterable[str]:
        raise LakehouseError(
            "logs reads a compose project; on swarm use `docker service logs "
            f"{project.compose.project_name}_<service>`",
            ExitCode.BAD_INPUT,
        )

    def exec_target(self, project: Project, service: str) -> str:
        running = engine_swarm.stack_running_containers(
            project.compose.docker_cmd, project.compose.project_name
        )
        found = [cid for name, cid in running if name == service]
        if not found:
            raise no_running_container(project, service)
        return found[0]

    def replicas(self, project: Project, services: Sequence[str]) -> dict[str, int]:
        views = stack_views(project)
        return {s: views[s].replicas if s in views else 1 for s in services}

    def stop(self, project: Project, services: Sequence[str]) -> None:
        """Scale each service to 0 and wait until none of its tasks runs any more."""
        engine_swarm.service_scale(
            project.compose.docker_cmd, {service_name(project, s): 0 for s in services}
        )
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while True:
            views = stack_views(project)
            left = sorted(s for s in services if s in views and live_tasks(views[s]))
            if not left:
                return
            if time.monotonic() > deadline:
                raise LakehouseError(
                    f"{', '.join(left)} still running {int(STOP_TIMEOUT_S)}s after being "
                    "scaled to 0; check `docker service ps` on the stack."
                )
            time.sleep(POLL_S)

    def start(
        self,
        project: Project,
        services: Sequence[str],
        replicas: Mapping[str, int],
        *,
        unsettled: Collection[str] = (),
    ) -> set[str]:
        """Scale each service back to its recorded replica count (1 when none was recorded)
        and wait until that many tasks run. Unlike ``docker start`` the scale returns at once,
        and the next step (a restore after its safety backup, another backup) must see the
        service running again, or it would not stop it. ``unsettled`` services (restarting
        before they were stopped) are scaled back and not waited for."""
        wanted = {s: max(1, replicas.get(s, 1)) for s in services}
        engine_swarm.service_scale(
            project.compose.docker_cmd, {service_name(project, s): n for s, n in wanted.items()}
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            views = stack_views(project)
            late = sorted(
                s
                for s, n in wanted.items()
                if s not in unsettled
                and s in views
                and sum(1 for t in views[s].tasks if t.state == "running") < n
            )
            if not late:
                return set()
            if time.monotonic() > deadline:
                raise LakehouseError(
                    f"{', '.join(late)} did not run again {int(START_TIMEOUT_S)}s after "
                    "being scaled back; check `docker service ps` on the stack."
                )
            time.sleep(POLL_S)

    def wait_healthy(
        self,
        project: Project,
        services: Sequence[str],
        *,
        timeout: float = START_TIMEOUT_S,
        what: str = "the restore",
        confirmed: Iterable[str] = (),
    ) -> set[str]:
        """Return once every replica of each service runs the current spec and is healthy
        (the tasks are polled: swarm's events come from the managers, not this engine)."""
        if not services:
            return set(confirmed)
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.snapshot(project, resources=False, services=list(services))
            if snapshot.ok:
                return set(confirmed)
            if time.monotonic() > deadline:
                raise not_healthy(snapshot, what, timeout)
            time.sleep(HEALTH_POLL_S)

    # ---- lifecycle ----------------------------------------------------------------------
    def ready(self, project: Project, services: Sequence[str]) -> list[str]:
        """A swarm manager, no compose project of the environment on this host, every image
        on this node; then the services the deploy changes."""

        return check_ready(project, services)

    def preview(self, project: Project, options: DeployOptions) -> Any:
        """The generated stack file (``deploy --dry-run --target swarm``)."""

        return project_stack_file(
            project, options=options_for(project, label_node=options.label_node)
        )

    def apply(
        self,
        project: Project,
        targets: Sequence[str],
        options: DeployOptions,
        reporter: Reporter,
    ) -> WaitOutcome:
        """Step by step ``docker stack deploy`` in dependency order, or a rolling update of
        the named services of a live stack, each step waited for (docs/SCALING.md)."""

        _targets, update_only = deploy_targets(project, options.services)
        return apply_stack(
            project,
            targets,
            update_only=update_only,
            prune=not options.services,
            timeout=options.timeout,
            options=options_for(project, label_node=options.label_node),
            reporter=reporter,
        )

    def failure_details(
        self, project: Project, failures: Sequence[tuple[str, str]]
    ) -> list[ServiceFailure]:

        return failure_details(project, failures)

    def remove(
        self, project: Project, *, volumes: bool, notify: Callable[[str], None]
    ) -> TeardownResult:

        return remove_stack(project, remove_volumes=volumes, notify=notify)

    # ---- data protection ------------------------------------------------------------------
    def create_volume(self, project: Project, key: str, volume: str) -> None:
        # What a task of the stack would create: a local volume with the stack's label.
        engine_volumes.create(
            volume, labels={engine_swarm.STACK_NAMESPACE_LABEL: project.compose.project_name}
        )


__all__ = ["SwarmBackend", "stack_views"]
