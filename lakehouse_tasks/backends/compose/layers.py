"""Compose deploys started by the tool, dependency by dependency, on the services' own healthchecks.

``docker compose up`` starts a dependent only once the engine reports its dependencies
healthy, and the engine runs a container's first healthcheck one ``interval`` after the start
(15 s in dev; engine 20.10 has no ``start_interval``): on the dev stack's chain of six layers
that wait was most of a deploy, for ``compose up --wait`` and the old tool alike
(docs/PERFORMANCE.md, issue 18). Here ``docker compose create`` makes every container, network
and volume (the same configuration hashes as ``up``: every service in the project, not
``--no-deps``), and the tool starts each service itself with ``docker start`` as soon as each
of its dependencies meets its ``depends_on`` condition:

- ``service_started``: the dependency was started;
- ``service_healthy``: the dependency's *own* healthcheck (the exact ``healthcheck.test`` of
  the compose service, run with ``docker exec`` at once and then every
  :data:`PROBE_INTERVAL_S`) passed in every container, or the engine says healthy; a pass is
  recorded (:mod:`lakehouse_tasks.probes`) so that ``health`` reports it healthy at that
  moment too;
- ``service_completed_successfully``: the one-shot exited with code 0.

The verdicts are the snapshot deploy's (:func:`.deploy.judge`): a one-shot that exits non-zero,
a container that exits or crash-loops, an unhealthy healthcheck or a failed ``docker start``
fails the deploy: what was started is let to settle, what does not depend on the failed
service is still started (as ``compose up`` does), what does is never started.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ...engine.containers import ContainerEvents
from ...errors import EngineError
from ...events import utc_now
from ...outcomes import Reporter, ServiceProgress, WaitOutcome
from .deploy import (
    POLL_SECONDS,
    _last_error_line,
    _layer_of,
    compose_problems,
    judge,
    timed_out_problems,
)
from .services import _docker_start, probe_starting, service_containers

if TYPE_CHECKING:
    from ...project import Project

#: Seconds between two own-healthcheck probes of a started service that is not healthy yet.
PROBE_INTERVAL_S = 0.5

#: The status shown for a service the tool has not started (its dependencies are not ready).
NOT_STARTED = "waiting"


def create_arguments(up_args: Sequence[str]) -> list[str]:
    """``docker compose create`` with the options of the deploy's ``up -d`` (``--remove-orphans``,
    ``--no-build``, ``--pull``) and its services."""
    args = list(up_args)
    if args[:2] == ["up", "-d"]:
        args = args[2:]
    return ["create", *args]


def _service_of(project: Project, name: str) -> str:
    """The service of a snapshot row (a second replica's row is named ``service-N``)."""
    return name if name in project.stack.services else name.rsplit("-", 1)[0]


def start_in_order(
    project: Project,
    *,
    args: Sequence[str],
    services: Sequence[str],
    timeout: float,
    reporter: Reporter,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> WaitOutcome:
    """``compose create``, then start each service once its dependencies are ready, until all
    are ready, one fails, or ``timeout`` passes (the outcome :func:`.deploy.start_and_wait`
    gives)."""
    from ...health import take_snapshot

    stack = project.stack
    layer = _layer_of(stack)
    wanted = list(services)
    start = clock()
    rows = {
        name: ServiceProgress(name, layer(name), stack.services[name].oneshot) for name in wanted
    }
    reporter.step(f"creating: docker compose {' '.join(args)}")
    deploy_started = utc_now() - _dt.timedelta(seconds=1)
    events = ContainerEvents(project.compose.docker_cmd, project.compose.project_name)
    try:
        try:
            project.compose.compose(*args, what="compose create")
        except EngineError as exc:
            return _create_failed(project, rows, exc, clock() - start)
        by_service = service_containers(project, running=False)
        running = service_containers(project, running=True)
        # unchanged containers compose left running need no start (compose up leaves them too)
        launched = {
            s for s in wanted if by_service.get(s) and set(by_service[s]) == set(running.get(s, ()))
        }
        probed: set[str] = set()  # container ids whose own healthcheck passed
        failures: dict[str, str] = {}
        timed_out = False
        while True:
            snapshot = take_snapshot(project, resources=False, services=wanted)
            snap_rows = list(snapshot.rows)
            starting = [
                r
                for r in snap_rows
                if _service_of(project, r.service) in launched
                and r.state == "running"
                and r.health == "starting"
                and r.container_id not in probed
            ]
            if starting:
                passed = probe_starting(project, starting, set())
                probed |= {r.container_id for r in starting if r.service in passed}
            now = clock()
            changed: list[ServiceProgress] = []
            done_by: dict[str, list[bool]] = {}
            for row in snap_rows:
                name = row.service
                if name not in rows:  # a second replica: judged under its own key
                    rows[name] = ServiceProgress(
                        name, layer(_service_of(project, name)), row.oneshot
                    )
                progress = rows[name]
                service = _service_of(project, name)
                if service not in launched:
                    status, done, reason = NOT_STARTED, False, ""
                elif (
                    row.container_id in probed
                    and row.state == "running"
                    and row.health == "starting"
                ):
                    status, done, reason = "healthy", True, ""
                else:
                    status, done, reason = judge(
                        row, deploy_started=deploy_started, up_finished=True
                    )
                done_by.setdefault(service, []).append(done)
                if status != progress.status or done != progress.done:
                    changed.append(progress)
                progress.status, progress.done = status, done
                if not (done or progress.failure):
                    progress.elapsed = now - start
                if reason and not progress.failure:
                    progress.failure = reason
                    failures[name] = reason
            ready = {s for s, flags in done_by.items() if flags and all(flags)}
            # what depends on a failed service never becomes ready, so it is never started;
            # what does not is started still, as compose up would
            startable = [
                s
                for s in wanted
                if s not in launched
                and s not in failures
                and by_service.get(s)
                and _deps_met(project, s, launched, ready)
            ]
            for service in startable:
                rows[service].status = "starting"
                changed.append(rows[service])
            reporter.progress(list(rows.values()), changed)
            if startable:
                failed = _start(project, startable, by_service)
                for service, reason in failed.items():
                    rows[service].failure = failures[service] = reason
                launched.update(s for s in startable if s not in failed)
                continue  # probe the new ones at once
            if not failures and all(r.done for r in rows.values()):
                return WaitOutcome(True, list(rows.values()), [], elapsed=now - start)
            if failures:
                # Let what was started finish starting, so the report names every failure
                # and the healthy ones are left healthy.
                settling = [
                    r
                    for r in rows.values()
                    if not r.done
                    and not r.failure
                    and _service_of(project, r.service) in launched
                    and r.status in ("starting", "running")
                ]
                if not settling or now - start >= timeout:
                    break
            elif now - start >= timeout:
                timed_out = True
                break
            # a started service not healthy yet is probed again soon; else the engine's
            # events (a start, a death, a health change) wake the wait
            unprobed = any(r.container_id not in probed for r in starting)
            events.wait(PROBE_INTERVAL_S if unprobed else poll)
    finally:
        events.close()
        reporter.finish()
    problems: list[tuple[str, str]] = list(failures.items())
    if timed_out:
        problems.extend(timed_out_problems(rows, timeout))
    return WaitOutcome(
        False, list(rows.values()), problems, timed_out=timed_out, elapsed=clock() - start
    )


def _deps_met(project: Project, service: str, launched: set[str], ready: set[str]) -> bool:
    for dep, condition in project.stack.services[service].depends_on.items():
        if dep not in project.stack.services:
            continue
        if condition == "service_started":
            if dep not in launched and dep not in ready:
                return False
        elif dep not in ready:
            return False
    return True


def _start(
    project: Project, services: Sequence[str], by_service: dict[str, list[str]]
) -> dict[str, str]:
    """``docker start`` of every container of ``services``, side by side: service -> the
    reason of a failed start (a published port taken, a missing mount)."""
    from concurrent.futures import ThreadPoolExecutor

    items = [(s, cid) for s in services for cid in by_service.get(s, ())]

    def start_one(item: tuple[str, str]) -> str:
        try:
            _docker_start(project, [item[1]])
        except EngineError as exc:
            return f"could not start: {_start_error(exc.stderr or exc.message)}"
        return ""

    with ThreadPoolExecutor(max_workers=max(1, min(len(items), 8))) as pool:
        results = list(pool.map(start_one, items))
    failed: dict[str, str] = {}
    for (service, _cid), reason in zip(items, results, strict=True):
        if reason and service not in failed:
            failed[service] = reason
    return failed


def _start_error(stderr: str) -> str:
    """The daemon's reason in ``docker start``'s stderr (its last line only names the id)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    daemon = [line for line in lines if line.startswith("Error response from daemon")]
    return (daemon or lines or [""])[0]


def _create_failed(
    project: Project, rows: dict[str, ServiceProgress], exc: EngineError, elapsed: float
) -> WaitOutcome:
    stderr = exc.stderr or exc.message
    problems = [
        (service, reason)
        for service, reason in compose_problems(project, rows, stderr)
        if service in rows
    ]
    return WaitOutcome(
        False,
        list(rows.values()),
        problems,
        compose_error=_last_error_line(stderr),
        elapsed=elapsed,
    )
