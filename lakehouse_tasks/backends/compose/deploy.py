"""``docker compose up`` in the background, judged by health snapshots: the rolling update
of the Spark workers (:mod:`.upgrade`); and the verdict of one service at one snapshot
(:func:`judge`), the argument list and the failure details every compose deploy shares. The
deploy and the rollback themselves start each service with :mod:`.layers`.

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
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from ...engine.client import Engine
from ...engine.compose import compose_in_background, compose_logs
from ...engine.containers import ContainerEvents
from ...engine.executor import BackgroundCommand
from ...errors import LakehouseError
from ...events import utc_now
from ...outcomes import (
    CRASH_LOOP_RESTARTS,
    Reporter,
    ServiceFailure,
    ServiceProgress,
    WaitOutcome,
)
from ...stack import Stack
from .problems import classify_compose_error

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
        problems.extend(compose_problems(project, rows, compose_error, skip=failures))
    if timed_out:
        problems.extend(timed_out_problems(rows, timeout))
    elapsed = clock() - start
    return WaitOutcome(
        False,
        list(rows.values()),
        problems,
        compose_error=_last_error_line(compose_error),
        timed_out=timed_out,
        elapsed=elapsed,
    )


def compose_problems(
    project: Project,
    rows: dict[str, ServiceProgress],
    stderr: str,
    *,
    skip: Collection[str] = (),
) -> list[tuple[str, str]]:
    """The services a compose error names (not those in ``skip``, already failed), each with
    its reason, which also becomes its row's failure."""
    problems: list[tuple[str, str]] = []
    for problem in classify_compose_error(
        stderr, project.compose.project_name, project.stack.services
    ):
        if problem.service is not None and problem.service not in skip:
            problems.append((problem.service, problem.reason))
            if problem.service in rows:
                rows[problem.service].failure = problem.reason
    return problems


def timed_out_problems(rows: dict[str, ServiceProgress], timeout: float) -> list[tuple[str, str]]:
    """Every row neither done nor failed when the wait timed out, marked so and returned."""
    problems: list[tuple[str, str]] = []
    for name, progress in rows.items():
        if not progress.done and not progress.failure:
            reason = f"not ready after {timeout:g}s (still {progress.status})"
            progress.failure = reason
            problems.append((name, reason))
    return problems


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


def start_and_wait(
    project: Project,
    *,
    args: Sequence[str],
    services: Sequence[str],
    timeout: float,
    reporter: Reporter,
) -> WaitOutcome:
    started = utc_now()
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
