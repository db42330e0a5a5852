"""Compose deploys: ``docker compose up`` in the background, judged by health snapshots.

``docker compose up -d`` starts the services in dependency order by itself (honouring the
``depends_on`` conditions, in parallel where independent). It is run *without* ``--wait``
(which trips on one-shot jobs, IMAGE_FACTS.md) and in the background, because it blocks while
it waits for those conditions: meanwhile the wait here watches health snapshots, so the live
view starts at once and a failure is seen as soon as it happens, not when compose gives up.

The wait succeeds when compose has finished and every long-running service is healthy (or
running, when it has no healthcheck) and every one-shot has exited 0. It fails as soon as a
one-shot exits non-zero, a long-running container exits or crash-loops, a healthcheck reports
unhealthy (the engine only says so after the configured retries), compose itself fails, or the
timeout passes. On failure healthy services are left running and volumes are never touched.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...engine.client import Engine
from ...engine.compose import compose_in_background, compose_logs
from ...engine.containers import ContainerEvents
from ...engine.executor import BackgroundCommand
from ...errors import LakehouseError
from ...outcomes import (
    CRASH_LOOP_RESTARTS,
    DeployOptions,
    Reporter,
    ServiceFailure,
    ServiceProgress,
    WaitOutcome,
)
from ...stack import Stack, with_dependencies

if TYPE_CHECKING:
    from ...project import Project
    from ...snapshots import ServiceHealth

#: The longest wait between two snapshots of a deploy; an engine event (a container starts,
#: dies or changes health) wakes the wait sooner (``docker.ContainerEvents``).
POLL_SECONDS = 1.0


LOG_TAIL = 30


#: Seconds given to a still-running ``compose up`` to report on its own after a failure.
UP_GRACE_SECONDS = 5.0


def up_arguments(
    stack: Stack, services: Sequence[str], *, pull: bool, missing_images: Iterable[str] = ()
) -> list[str]:
    """The arguments of ``docker compose up`` for a deploy (never ``--wait``).

    ``--no-build`` unless a service with a ``build`` section lacks its image (compose then
    builds only what is missing); ``--pull always`` with ``--pull``.
    """
    missing = set(missing_images)
    args = ["up", "-d", "--remove-orphans"]
    targets = services or sorted(stack.active)
    if not any(stack.services[s].build and stack.services[s].image in missing for s in targets):
        args.append("--no-build")
    if pull:
        args += ["--pull", "always"]
    return [*args, *services]


def missing_images(stack: Stack, services: Sequence[str]) -> list[str]:
    refs = {stack.services[s].image for s in services if stack.services[s].build}
    if not refs:
        return []
    present = Engine().image_ids(refs)
    return sorted(ref for ref, image_id in present.items() if image_id is None)


@dataclass(frozen=True)
class ComposeProblem:
    """A failure compose reported, and the service it names (``None`` when it names none)."""

    service: str | None
    reason: str


_DEPENDENCY = re.compile(r"dependency failed to start: container ([\w.-]+) (.+)$")


_COMPLETED = re.compile(r'service "([\w.-]+)" didn\'t complete successfully: (.+)$')


_CONTAINER = re.compile(r"(?:container|endpoint) (?:name )?\"?/?([\w.-]+)\"?")


def service_of_container(container: str, project_name: str) -> str:
    """``lakehouse-dev-minio-1`` -> ``minio`` (compose's ``<project>-<service>-<n>`` names)."""
    name = container.lstrip("/")
    for sep in ("-", "_"):
        prefix = f"{project_name}{sep}"
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            base, _sep, number = rest.rpartition(sep)
            if base and number.isdigit():
                return base
            return rest
    return name  # a fixed container_name: compose reports it as is


def classify_compose_error(
    stderr: str, project_name: str, services: Iterable[str] = ()
) -> list[ComposeProblem]:
    """The failures in ``docker compose up``'s stderr, each naming its service when it can.

    Recognised: ``dependency failed to start: container X is unhealthy`` (or ``exited (N)``),
    ``service "X" didn't complete successfully: exit N``; any other error line becomes one
    problem without a service (port already allocated, missing image, ...).
    """
    known = list(services)
    problems: list[ComposeProblem] = []
    other: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _DEPENDENCY.search(line)
        if m:
            problems.append(
                ComposeProblem(service_of_container(m.group(1), project_name), m.group(2).strip())
            )
            continue
        m = _COMPLETED.search(line)
        if m:
            problems.append(ComposeProblem(m.group(1), f"did not complete: {m.group(2).strip()}"))
            continue
        lowered = line.lower()
        if lowered.startswith(("error", "failed")) or " error " in lowered or "denied" in lowered:
            other.append(line)
    if not problems and other:
        last = other[-1]
        m = _CONTAINER.search(last)
        named = service_of_container(m.group(1), project_name) if m else None
        if named is not None and known and named not in known:
            named = None
        problems.append(ComposeProblem(named, last))
    # one problem per service, first reason wins
    seen: set[str | None] = set()
    unique = []
    for problem in problems:
        if problem.service not in seen:
            seen.add(problem.service)
            unique.append(problem)
    return unique


def judge(
    row: ServiceHealth,
    *,
    deploy_started: _dt.datetime,
    up_finished: bool,
) -> tuple[str, bool, str]:
    """(status word, done, failure reason or "") of one service at one poll.

    A container that has not been started since the deploy began may be about to be
    recreated or restarted by compose; until compose has finished, its old ``exited`` or
    ``unhealthy`` state is not held against it.
    """
    from ...health import parse_engine_time

    started = parse_engine_time(row.started_at) if row.started_at else None
    fresh = started is not None and started >= deploy_started
    stale = not fresh and not up_finished
    state = row.state
    if state == "missing":
        return "waiting", False, ""
    if state == "created":
        return "starting", False, ""
    if state in ("exited", "dead"):
        code = row.exit_code if row.exit_code is not None else -1
        if stale:
            return "waiting", False, ""
        if row.oneshot:
            if code == 0:
                return "exited (0)", True, ""
            return f"exited ({code})", False, f"one-shot exited with code {code}"
        return f"exited ({code})", False, f"exited with code {code}"
    if state == "restarting" or row.restart_count >= CRASH_LOOP_RESTARTS:
        if row.restart_count >= CRASH_LOOP_RESTARTS:
            return (
                "restarting",
                False,
                f"crash-looping (restarted {row.restart_count} times)",
            )
        return "restarting", False, ""
    if state == "paused":
        return "paused", False, "paused"
    # running
    if row.health == "healthy":
        return "healthy", True, ""
    if row.health == "unhealthy":
        if stale:
            return "waiting", False, ""
        return "unhealthy", False, "unhealthy: its healthcheck kept failing"
    if row.health == "starting":
        return "starting", False, ""
    if row.oneshot:
        return "running", False, ""
    return "running", True, ""


def _layer_of(stack: Stack) -> Callable[[str], int]:
    depth = {name: i + 1 for i, layer in enumerate(stack.startup_layers()) for name in layer}

    def layer(service: str) -> int:
        svc = stack.services.get(service)
        if svc is not None and svc.layer:
            return svc.layer
        return depth.get(service, 0)

    return layer


def wait_for_stack(
    project: Project,
    services: Sequence[str],
    *,
    up: BackgroundCommand | None,
    timeout: float,
    reporter: Reporter,
    deploy_started: _dt.datetime,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Poll health snapshots until every service is ready, one fails, or ``timeout`` passes."""
    from ...health import take_snapshot

    stack = project.stack
    layer = _layer_of(stack)
    start = clock()
    rows = {
        name: ServiceProgress(name, layer(name), stack.services[name].oneshot) for name in services
    }
    failures: dict[str, str] = {}
    compose_error = ""
    up_code: int | None = None if up is not None else 0
    up_failed_at: float | None = None
    first_failure_at: float | None = None
    timed_out = False
    while True:
        if up is not None and up_code is None:
            up_code = up.poll()
            if up_code is not None and up_code != 0:
                compose_error = up.stderr.strip()
                up_failed_at = clock()
        snapshot = take_snapshot(project, resources=False, services=list(services))
        now = clock()
        changed: list[ServiceProgress] = []
        for health_row in snapshot.rows:
            name = health_row.service
            if name not in rows:  # a second replica: judged under its own key
                base = name.rsplit("-", 1)[0]
                rows[name] = ServiceProgress(name, layer(base), health_row.oneshot)
            progress = rows[name]
            status, done, reason = judge(
                health_row, deploy_started=deploy_started, up_finished=up_code is not None
            )
            if status != progress.status or done != progress.done:
                changed.append(progress)
            progress.status, progress.done = status, done
            if not (done or progress.failure):
                progress.elapsed = now - start
            if reason and not progress.failure:
                progress.failure = reason
                failures[name] = reason
        reporter.progress(list(rows.values()), changed)
        if failures and first_failure_at is None:
            first_failure_at = now
        all_done = all(r.done for r in rows.values())
        if up_code == 0 and all_done and not failures:
            return WaitOutcome(True, list(rows.values()), [], elapsed=now - start)
        if up_failed_at is not None:
            break
        if first_failure_at is not None and (
            up_code is not None or now - first_failure_at >= UP_GRACE_SECONDS
        ):
            # Let services that are already running finish starting, so the report names
            # every failure and the healthy ones are left healthy, not half-started. What
            # compose never started (it depends on a failed service) is settled already.
            settling = [
                r
                for r in rows.values()
                if not r.done and not r.failure and r.status in ("starting", "running")
            ]
            if not settling or now - start >= timeout:
                break
        if now - start >= timeout:
            timed_out = True
            break
        sleep(poll)
    if up is not None and up.poll() is None:
        up.terminate()  # a timeout or a failed service: compose stops starting more
    problems: list[tuple[str, str]] = list(failures.items())
    if compose_error:
        for problem in classify_compose_error(
            compose_error, project.compose.project_name, stack.services
        ):
            if problem.service is not None and problem.service not in failures:
                problems.append((problem.service, problem.reason))
                if problem.service in rows:
                    rows[problem.service].failure = problem.reason
    if timed_out:
        for name, progress in rows.items():
            if not progress.done and not progress.failure:
                reason = f"not ready after {timeout:g}s (still {progress.status})"
                progress.failure = reason
                problems.append((name, reason))
    elapsed = clock() - start
    return WaitOutcome(
        False,
        list(rows.values()),
        problems,
        compose_error=_last_error_line(compose_error),
        timed_out=timed_out,
        elapsed=elapsed,
    )


def _last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "rror" in line or "failed" in line]
    return (errors or lines or [""])[-1]


def failure_details(project: Project, failures: Sequence[tuple[str, str]]) -> list[ServiceFailure]:
    """Each failing service with its last healthcheck outputs and its last log lines."""
    from ...health import take_snapshot

    names = [name for name, _ in failures if name in project.stack.services]
    probes: dict[str, tuple[str, ...]] = {}
    if names:
        try:
            snapshot = take_snapshot(project, resources=False, services=names)
        except LakehouseError:
            snapshot = None
        for row in snapshot.rows if snapshot else ():
            probes[row.service] = tuple(
                f"exit {p.exit_code}: {project.env.scrub(p.output)}" for p in row.probes
            )
    return [
        ServiceFailure(
            service=name,
            reason=reason,
            health_log=probes.get(name, ()),
            logs=compose_logs(project.compose, name, tail=LOG_TAIL)
            if name in project.stack.services
            else "",
        )
        for name, reason in failures
    ]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def start_and_wait(
    project: Project,
    *,
    args: Sequence[str],
    services: Sequence[str],
    timeout: float,
    reporter: Reporter,
) -> WaitOutcome:
    started = _now()
    reporter.step(f"starting: docker compose {' '.join(args)}")
    # Subscribed before `up` so no start or health change is missed: the wait wakes on the
    # engine's events and snapshots at once, instead of sleeping POLL_SECONDS between polls.
    events = ContainerEvents(project.compose.docker_cmd, project.compose.project_name)
    up = compose_in_background(project.compose, *args)
    try:
        return wait_for_stack(
            project,
            services,
            up=up,
            timeout=timeout,
            reporter=reporter,
            deploy_started=started - _dt.timedelta(seconds=1),
            sleep=events.wait,
        )
    finally:
        events.close()
        if up.poll() is None:
            up.terminate()
        reporter.finish()


# ---- the plan (--dry-run) -----------------------------------------------------------------
@dataclass(frozen=True)
class DeployPlan:
    """What a deploy would do; ``--dry-run`` prints it and changes nothing."""

    environment: str
    project_name: str
    compose_files: tuple[str, ...]
    profiles: tuple[str, ...]
    services: tuple[str, ...]
    oneshots: tuple[str, ...]
    volumes: tuple[str, ...]
    layers: tuple[tuple[str, ...], ...]
    steps: tuple[str, ...]
    commands: tuple[str, ...]
    timeout: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "project_name": self.project_name,
            "compose_files": list(self.compose_files),
            "profiles": list(self.profiles),
            "services": list(self.services),
            "oneshots": list(self.oneshots),
            "volumes": list(self.volumes),
            "layers": [list(layer) for layer in self.layers],
            "steps": list(self.steps),
            "commands": list(self.commands),
            "timeout": self.timeout,
        }


def plan_deploy(project: Project, options: DeployOptions) -> DeployPlan:
    """The plan of a deploy: reads the merged config (and which built images exist) only."""
    stack = project.stack
    services = with_dependencies(stack, options.services)
    requested = list(options.services)
    args = up_arguments(
        stack, requested, pull=options.pull, missing_images=missing_images(stack, services)
    )
    compose_cmd = shlex.join(str(a) for a in [*project.compose.compose_cmd, *args])
    layers = [tuple(n for n in layer if n in services) for layer in stack.startup_layers()]
    steps = [
        "skip preflight (--skip-preflight)" if options.skip_preflight else "preflight checks",
        "ask plugins (pre_deploy)",
        "skip backup (--skip-backup)"
        if options.skip_backup
        else "back up first when the stack already holds data",
        f"start: {compose_cmd}",
        f"wait up to {options.timeout:g}s: long-running services healthy, one-shots exited 0",
        "record the deployment in the history",
    ]
    volumes = sorted({stack.volumes.get(v, v) for s in services for v in stack.services[s].volumes})
    return DeployPlan(
        environment=project.env.name,
        project_name=project.compose.project_name,
        compose_files=tuple(str(f) for f in project.compose.files),
        profiles=tuple(project.compose.profiles),
        services=tuple(s for s in services if not stack.services[s].oneshot),
        oneshots=tuple(s for s in services if stack.services[s].oneshot),
        volumes=tuple(volumes),
        layers=tuple(layer for layer in layers if layer),
        steps=tuple(steps),
        commands=(compose_cmd,),
        timeout=options.timeout,
    )
