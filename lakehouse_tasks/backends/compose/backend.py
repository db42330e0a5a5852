"""The compose backend: a compose project on one engine (the default target).

Containers are found by the labels compose puts on them (one ``docker ps`` per read); stopping
and starting around a backup or restore is ``docker stop`` / ``docker start`` of those
containers, started again wave by wave in dependency order with a probe of each service's own
healthcheck between waves (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...engine import commands as engine_commands
from ...engine import containers as engine_containers
from ...engine import volumes as engine_volumes
from ...engine.containers import ContainerEvents, probe_passes
from ...errors import LakehouseError
from ...outcomes import DeployOptions, Reporter, ServiceFailure, TeardownResult, WaitOutcome
from ...probes import record as probe_record
from ...schema import parse_duration
from ...stack import with_dependencies
from ..base import no_running_container, not_healthy

if TYPE_CHECKING:
    from ...project import Project
    from .deploy import DeployPlan
    from .upgrade import UpgradePlan

#: How long a wave of restarted services gets to become healthy before the next.
START_TIMEOUT_S = 300.0
#: How long a wait for health gets unless the caller says otherwise.
HEALTH_TIMEOUT_S = 300.0


def service_containers(project: Project, *, running: bool = True) -> dict[str, list[str]]:
    """Service -> ids of its containers (only the running ones when ``running``; lowest
    replica number first), one-off ``compose run`` containers left out: what ``compose ps``
    lists, read with one ``docker ps`` (about 20 ms, where ``compose ps`` takes 120 ms and
    more)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for row in engine_containers.project_containers(
        project.compose.docker_cmd, project.compose.project_name
    ):
        if running and row.get("State") != "running":
            continue
        labels = engine_containers._ps_labels(str(row.get("Labels", "")))
        if labels.get("com.docker.compose.oneoff", "").lower() == "true":
            continue
        service = labels.get(engine_containers._SERVICE_LABEL, "")
        try:
            number = int(labels.get("com.docker.compose.container-number", "1"))
        except ValueError:
            number = 1
        if service:
            found.setdefault(service, []).append((number, str(row["ID"])))
    return {s: [cid for _n, cid in sorted(rows)] for s, rows in found.items()}


def running_containers(project: Project) -> dict[str, list[str]]:
    """Service -> ids of its running containers (:func:`service_containers`)."""
    return service_containers(project, running=True)


def stop_services(project: Project, services: Sequence[str]) -> None:
    """Stop the running containers of ``services`` with one ``docker stop``: the CLI stops
    them side by side, each with the grace period and stop signal compose gave it
    (``stop_grace_period``, ``stop_signal``). ``compose stop`` stops them layer by layer in
    reverse dependency order, which only matters while the rest of the stack keeps serving;
    here every user of the data stops for the same maintenance, and what they depend on (the
    databases, the object store) keeps running. Three layers of stand-ins stopped in 0.8 s
    with ``compose stop`` (the same with a ``docker stop`` per layer), in 0.35 s so."""
    by_service = running_containers(project)
    ids = [cid for s in services for cid in by_service.get(s, ())]
    if ids:
        engine_commands.stop(ids, docker_cmd=project.compose.docker_cmd)


def start_waves(project: Project, services: Sequence[str]) -> list[list[str]]:
    """``services`` in the stack's dependency order (``startup_layers`` restricted to them);
    a name the configuration does not know goes in the last wave."""
    wanted = set(services)
    try:
        layers = project.stack.startup_layers()
    except ValueError:  # a dependency cycle: compose would refuse it too; start all at once
        layers = []
    waves = [[s for s in layer if s in wanted] for layer in layers]
    waves = [w for w in waves if w]
    placed = {s for w in waves for s in w}
    rest = sorted(wanted - placed)
    if rest:
        waves.append(rest)
    return waves


def _docker_start(project: Project, ids: Sequence[str]) -> None:
    """``docker start`` of one wave's containers, one call per container run side by side
    (``docker start a b c`` starts them one after the other, about 0.25 s each)."""
    from concurrent.futures import ThreadPoolExecutor

    def start(cid: str) -> None:
        engine_commands.start(cid, docker_cmd=project.compose.docker_cmd)

    if len(ids) == 1:
        start(ids[0])
        return
    with ThreadPoolExecutor(max_workers=min(len(ids), 8)) as pool:
        for _ in pool.map(start, ids):  # re-raises the first failure, after all have run
            pass


def start_services(
    project: Project, services: Sequence[str], timeout: float = START_TIMEOUT_S
) -> set[str]:
    """Start the stopped containers of ``services`` again: ``docker start`` wave by wave in
    dependency order, and between waves a wait until the wave is healthy in which a service
    still ``starting`` is probed at once with its own healthcheck (``docker exec``).

    ``compose start`` honours the same ``depends_on`` chain but waits, layer by layer, for
    the engine's first healthcheck, one ``interval`` after each start (15 s in dev); that
    wait was most of a database restore (docs/PERFORMANCE.md). The last wave is not waited
    for (neither did ``compose start``). A wave that does not become healthy by ``timeout``
    does not leave the later waves stopped: they are started, then the error is raised.
    Returns the services found healthy by a probe between waves."""
    if not services:
        return set()
    by_service = service_containers(project, running=False)
    try:
        active = set(project.stack.active)
    except (LakehouseError, AttributeError):
        active = set()
    waves = start_waves(project, services)
    failure: LakehouseError | None = None
    confirmed: set[str] = set()
    for index, wave in enumerate(waves):
        ids = [cid for s in wave for cid in by_service.get(s, ())]
        if ids:
            _docker_start(project, ids)
        waited = [s for s in wave if s in active and by_service.get(s)]
        if failure is None and index < len(waves) - 1 and waited:
            try:
                confirmed |= wait_healthy(
                    project, waited, timeout=timeout, what="starting them again"
                )
            except LakehouseError as exc:
                failure = exc
    if failure is not None:
        raise failure
    return confirmed


def wait_healthy(
    project: Project,
    services: Sequence[str],
    timeout: float = HEALTH_TIMEOUT_S,
    what: str = "the restore",
    confirmed: Iterable[str] = (),
) -> set[str]:
    """Return once every service is healthy (or running without a healthcheck).

    A service still ``starting`` is probed with its own healthcheck
    (:func:`probe_starting`); ``confirmed`` names services such a probe passed already, and
    the services probed healthy (these included) are returned."""
    probed: set[str] = set(confirmed)
    if not services:
        return probed
    from ...health import take_snapshot

    deadline = time.monotonic() + timeout
    # The engine's events wake the wait the moment a container turns healthy (instead of up
    # to 2 s later).
    events = ContainerEvents(project.compose.docker_cmd, project.compose.project_name)
    try:
        while True:
            snapshot = take_snapshot(project, resources=False, services=list(services))
            if snapshot.ok:
                return probed
            probed |= probe_starting(project, snapshot.rows, probed)
            # a probe stands in for the engine's first check only while the container still
            # runs and the engine has not judged it: one that died or turned unhealthy since
            # is waited for like any other
            if all(
                r.ok or (r.service in probed and r.state == "running" and r.health == "starting")
                for r in snapshot.rows
            ):
                return probed
            if time.monotonic() > deadline:
                raise not_healthy(snapshot, what, timeout)
            events.wait(2)
    finally:
        events.close()


def probe_starting(project: Project, rows: Sequence[Any], done: set[str]) -> set[str]:
    """The services still ``starting`` whose own healthcheck passes when run now.

    The engine runs a container's first probe one ``interval`` after the start (15 s in dev,
    30 s by default) and offers no way to ask for it sooner; a restore that waits for it
    spent most of its time idle (docs/PERFORMANCE.md). Running the same configured test in
    the container (``docker exec``, its timeout) is the probe the engine would run: one pass
    is what turns the engine's status to healthy too. The probes of all such containers run
    side by side; a service passes when the probe of each of its starting containers does.
    """
    probes: list[tuple[str, str, list[str], float]] = []
    for row in rows:
        if row.service in done or row.ok or row.health != "starting" or not row.container_id:
            continue
        svc = project.stack.services.get(row.service)
        check = svc.healthcheck if svc is not None else None
        if check is None or check.disabled or not check.test:
            continue
        kind, args = check.test[0], list(check.test[1:])
        if kind == "CMD-SHELL":
            argv = ["/bin/sh", "-c", " ".join(args)]
        elif kind == "CMD":
            argv = args
        else:
            continue
        try:
            seconds = parse_duration(check.timeout) if check.timeout else 30.0
        except (LakehouseError, ValueError):
            seconds = 30.0
        probes.append((row.service, row.container_id, argv, seconds))
    if not probes:
        return set()

    def probe(item: tuple[str, str, list[str], float]) -> bool:
        _service, cid, argv, seconds = item
        return probe_passes(project.compose.docker_cmd, cid, argv, timeout=seconds)

    if len(probes) == 1:
        results = [probe(probes[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(probes), 8)) as pool:
            results = list(pool.map(probe, probes))
    failed = {item[0] for item, ok in zip(probes, results, strict=True) if not ok}
    started = {row.container_id: row.started_at for row in rows}
    # health counts these passes too, until the engine runs its own first check
    probe_record(
        project,
        [
            (item[1], started.get(item[1], ""))
            for item, ok in zip(probes, results, strict=True)
            if ok
        ],
    )
    return {item[0] for item in probes} - failed


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

    def running_services(self, project: Project) -> list[str]:
        return sorted(running_containers(project))

    def exec_target(self, project: Project, service: str) -> str:
        found = running_containers(project).get(service, [])
        if not found:
            raise no_running_container(project, service)
        return found[0]

    def replicas(self, project: Project, services: Sequence[str]) -> dict[str, int]:
        return {}  # `docker start` brings back exactly the containers that were stopped

    def stop(self, project: Project, services: Sequence[str]) -> None:
        stop_services(project, services)

    def start(
        self, project: Project, services: Sequence[str], replicas: Mapping[str, int]
    ) -> set[str]:
        return start_services(project, services)

    def wait_healthy(
        self,
        project: Project,
        services: Sequence[str],
        *,
        timeout: float = HEALTH_TIMEOUT_S,
        what: str = "the restore",
        confirmed: Iterable[str] = (),
    ) -> set[str]:
        return wait_healthy(project, services, timeout=timeout, what=what, confirmed=confirmed)

    # ---- lifecycle ----------------------------------------------------------------------
    def ready(self, project: Project, services: Sequence[str]) -> list[str]:
        """The named services and what they depend on (all active ones when none is named);
        compose creates everything else it needs itself."""
        return with_dependencies(project.stack, services)

    def preview(self, project: Project, options: DeployOptions) -> ComposePreview:
        from .deploy import plan_deploy
        from .upgrade import plan_upgrade

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
        """One-at-a-time updates where several Spark workers changed, then ``compose up`` in
        the background and the wait (:mod:`.deploy`)."""
        from ...project import stamp_config_hashes
        from .deploy import missing_images, start_and_wait, up_arguments
        from .upgrade import report_containers, upgrade_step

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
        outcome = start_and_wait(
            project, args=args, services=targets, timeout=options.timeout, reporter=reporter
        )
        report_containers(project, outcome, before, reporter)
        return outcome

    def failure_details(
        self, project: Project, failures: Sequence[tuple[str, str]]
    ) -> list[ServiceFailure]:
        from .deploy import failure_details

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


__all__ = ["ComposeBackend", "running_containers", "service_containers"]
