"""Services stopped and started around a backup or restore on compose: the running containers, ``docker stop``, ``docker start`` in dependency waves, and the wait until they are healthy again (events-driven, with the services' own probes)."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ...engine import commands as engine_commands
from ...engine import containers as engine_containers
from ...engine.containers import ContainerEvents, probe_passes
from ...errors import LakehouseError
from ...probes import record as probe_record
from ...schema import parse_duration
from ..base import not_healthy

if TYPE_CHECKING:
    from ...project import Project


#: How long a wave of restarted services gets to become healthy before the next.
START_TIMEOUT_S = 300.0

#: How long a wait for health gets unless the caller says otherwise.
HEALTH_TIMEOUT_S = 300.0


def service_containers(
    project: Project, *, running: bool = True, restarting: bool = False
) -> dict[str, list[str]]:
    """Service -> ids of its containers (only the running ones when ``running``, and the
    ``restarting`` ones too when asked; lowest replica number first), one-off ``compose
    run`` containers left out: what ``compose ps`` lists, read with one ``docker ps`` (about
    20 ms, where ``compose ps`` takes 120 ms and more)."""
    wanted = {"running", "restarting"} if restarting else {"running"}
    found: dict[str, list[tuple[int, str]]] = {}
    for row in engine_containers.project_containers(
        project.compose.docker_cmd, project.compose.project_name
    ):
        if running and row.get("State") not in wanted:
            continue
        labels = engine_containers._ps_labels(str(row.get("Labels", "")))
        if labels.get("com.docker.compose.oneoff", "").lower() == "true":
            continue
        service = labels.get(engine_containers.SERVICE_LABEL, "")
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
    with ``compose stop`` (the same with a ``docker stop`` per layer), in 0.35 s so. A
    container the engine is restarting (a crash loop) is stopped too: until it is, it may
    start and write at any moment."""
    by_service = service_containers(project, running=True, restarting=True)
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
    project: Project,
    services: Sequence[str],
    timeout: float = START_TIMEOUT_S,
    unsettled: Collection[str] = (),
) -> set[str]:
    """Start the stopped containers of ``services`` again: ``docker start`` wave by wave in
    dependency order, and between waves a wait until the wave is healthy in which a service
    still ``starting`` is probed at once with its own healthcheck (``docker exec``).

    ``compose start`` honours the same ``depends_on`` chain but waits, layer by layer, for
    the engine's first healthcheck, one ``interval`` after each start (15 s in dev); that
    wait was most of a database restore (docs/PERFORMANCE.md). The last wave is not waited
    for (neither did ``compose start``). A wave that does not become healthy by ``timeout``
    does not leave the later waves stopped: they are started, then the error is raised.
    ``unsettled`` services (restarting before they were stopped) are started in their wave
    and not waited for: they were not healthy before either. Returns the services found
    healthy by a probe between waves."""
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
        waited = [s for s in wave if s in active and by_service.get(s) and s not in unsettled]
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
