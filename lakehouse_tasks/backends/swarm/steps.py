"""The swarm deploy steps behind ``SwarmBackend``: the stepwise ``docker stack deploy`` and its wait, ``docker stack rm``.

Swarm has no ``depends_on``. The stack is therefore deployed *step by step*: step N
is a stack file holding the services of the first N dependency depths (``Stack.startup_layers``)
and is deployed only when every service of the earlier steps is healthy (one-shots completed),
so a service never starts before what it depends on (docs/SCALING.md says why this was chosen
over deploying everything at once). The last step is the whole file with ``--prune``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...engine import swarm as engine_swarm
from ...engine import volumes as engine_volumes
from ...errors import LakehouseError
from ...outcomes import (
    CRASH_LOOP_RESTARTS,
    Reporter,
    ServiceFailure,
    ServiceProgress,
    TeardownResult,
    WaitOutcome,
)
from ...stack import Stack
from .cluster import ensure_storage_node
from .policies import SwarmOptions, is_stateful, options_for
from .secrets import ensure_secrets
from .translate import project_stack_file, stack_name
from .views import FAILED_TASK_STATES, ROLLBACK_STATES, ServiceView, read_stack

if TYPE_CHECKING:
    from ...project import Project


POLL_SECONDS = 1.0


@dataclass
class _Watch:
    """What the wait loop remembers between polls."""

    before: dict[str, tuple[str, str]]  # service -> (update state, started) before the deploy
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> last state seen
    #: service -> swarm's message, for each update swarm rolled back (the lifecycle emits the
    #: ROLLBACK events: a backend never calls hooks).
    rolled_back: dict[str, str] = field(default_factory=dict)


def judge_service(view: ServiceView | None, watch: _Watch) -> tuple[str, bool, str]:
    """(status word, done, failure) of one service after a deploy step."""
    if view is None:
        return "waiting", False, ""
    before = watch.before.get(view.name)
    fresh_update = (view.update_state, view.update_started) != before
    if view.update_state in ROLLBACK_STATES and fresh_update:
        message = view.update_message or "the new tasks did not become healthy"
        if view.update_state == "rollback_completed":
            return "rolled back", True, f"update failed and swarm rolled it back: {message}"
        return "rolling back", False, ""
    if view.update_state == "paused" and fresh_update:
        return "update paused", True, f"update paused by swarm: {view.update_message}"
    if view.oneshot:
        task = view.current_task(1)
        if task is None:
            return "waiting", False, ""
        if task.state == "complete":
            return "exited (0)", True, ""
        if task.state in FAILED_TASK_STATES:
            return "exited", True, f"one-shot failed: {task.error or f'exit {task.exit_code}'}"
        return "running" if task.state == "running" else "starting", False, ""
    failed = view.failed_current
    if failed and view.restart_condition == "none" and view.update_state != "updating":
        last = failed[-1]
        return "exited", True, f"task failed and is not restarted: {last.error or 'exited'}"
    gone = [
        t
        for slot in range(1, view.replicas + 1)
        if (t := view.current_task(slot)) is not None and t.current_spec and t.state == "complete"
    ]
    if gone and view.restart_condition == "none" and view.update_state != "updating":
        # A long-running task that ended (swarm stops a task whose healthcheck keeps failing
        # past its start period; the program exits 0 on that SIGTERM): with restart condition
        # none swarm never replaces it, so waiting longer cannot help.
        return (
            "exited (0)",
            True,
            (
                "its task ended and restart policy none never replaces it (swarm stops a task "
                "whose healthcheck fails after the start period); raise HEALTHCHECK_START_PERIOD "
                "or set RESTART_POLICY=unless-stopped"
            ),
        )
    if len(failed) >= CRASH_LOOP_RESTARTS and view.update_state != "updating":
        return "restarting", True, f"crash-looping ({len(failed)} failed tasks): {failed[-1].error}"
    if view.update_state in ("updating", "rollback_started"):
        return "updating", False, ""
    running = view.running_current
    if running >= view.replicas:
        return ("healthy" if view.has_healthcheck else "running"), True, ""
    return f"starting ({running}/{view.replicas})", False, ""


def _report_tasks(
    views: Mapping[str, ServiceView],
    watch: _Watch,
    names: Iterable[str],
    say: Callable[[str], None],
) -> None:
    """One line per task that appeared or changed state (rolling updates, replacements)."""
    for name in names:
        view = views.get(name)
        if view is None:
            continue
        for task in view.tasks:
            old = watch.tasks.get(task.id)
            if old == task.state:
                continue
            watch.tasks[task.id] = task.state
            if (
                old is None
                and task.state in ("shutdown", "complete", "failed")
                and not watch.before.get(name)
            ):
                continue
            what = "new task" if old is None else "task"
            meaning = {
                "running": "running" + (" and healthy" if view.has_healthcheck else ""),
                "shutdown": "shut down (replaced)",
            }.get(task.state, task.state)
            detail = f": {task.error}" if task.error and task.state in FAILED_TASK_STATES else ""
            say(f"{name}: {what} {task.id[:10]} (slot {task.slot}) {meaning}{detail}")


def wait_for_services(
    project: Project,
    names: Sequence[str],
    *,
    watch: _Watch,
    rows: dict[str, ServiceProgress],
    deadline: float,
    started: float,
    reporter: Reporter,
    notes: list[str],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[tuple[str, str]], bool]:
    """Poll until every named service is done; return (failures, timed out)."""
    docker_cmd = project.compose.docker_cmd
    stack = stack_name(project)

    def say(text: str) -> None:
        notes.append(text)
        reporter.step(text)

    while True:
        views = read_stack(docker_cmd, stack)
        _report_tasks(views, watch, names, say)
        failures: list[tuple[str, str]] = []
        changed: list[ServiceProgress] = []
        pending = False
        for name in names:
            status, done, failure = judge_service(views.get(name), watch)
            row = rows[name]
            if status == "rolled back" and name not in watch.rolled_back:
                watch.rolled_back[name] = views[name].update_message
                say(f"{name}: update failed, swarm rolled it back ({views[name].update_message})")
            if row.status != status or row.failure != failure:
                row.status, row.failure = status, failure
                row.elapsed = time.monotonic() - started
                changed.append(row)
            row.done = done and not failure
            if failure:
                failures.append((name, failure))
            elif not done:
                pending = True
        reporter.progress(list(rows.values()), changed)
        if failures and not any(rows[n].status in ("rolling back", "updating") for n in names):
            return failures, False
        if not pending and not failures:
            return [], False
        if time.monotonic() >= deadline:
            late = [
                (n, f"not healthy after the timeout ({rows[n].status})")
                for n in names
                if not rows[n].done and not any(n == f for f, _ in failures)
            ]
            return failures + late, True
        sleep(POLL_SECONDS)


def deploy_steps(stack: Stack, services: Sequence[str]) -> list[list[str]]:
    """The services grouped by dependency depth, each group only needing earlier ones."""
    chosen = set(services)
    return [g for g in ([n for n in layer if n in chosen] for layer in stack.startup_layers()) if g]


def _failure_details(
    project: Project, failures: Sequence[tuple[str, str]], views: Mapping[str, ServiceView]
) -> list[ServiceFailure]:
    docker_cmd = project.compose.docker_cmd
    out = []
    for name, reason in failures:
        view = views.get(name)
        errors = tuple(f"{t.state}: {t.error}" for t in (view.tasks if view else ()) if t.error)[
            -3:
        ]
        logs = (
            engine_swarm.service_logs(docker_cmd, view.full_name, tail=30, scrub=project.env.scrub)
            if view
            else ""
        )
        out.append(ServiceFailure(service=name, reason=reason, health_log=errors, logs=logs))
    return out


def apply_stack(
    project: Project,
    targets: Sequence[str],
    *,
    update_only: bool,
    prune: bool,
    timeout: float,
    options: SwarmOptions | None = None,
    reporter: Reporter | None = None,
    workdir: Path | None = None,
) -> WaitOutcome:
    """Deploy (or update) ``targets`` as a swarm stack and wait until they are healthy.

    A full deploy goes step by step in dependency order (see the module docstring), the last
    step with ``--prune`` when ``prune``. A service whose update never becomes healthy is
    rolled back by swarm (``failure_action: rollback``): the outcome then fails and names it
    in ``rolled_back``."""
    reporter = reporter or Reporter()
    options = options or options_for(project)
    env = project.env
    stack = project.stack
    name = stack_name(project)
    docker_cmd = project.compose.docker_cmd
    started = time.monotonic()
    notes: list[str] = []
    if any(is_stateful(stack.services[n]) for n in targets):
        note = ensure_storage_node(docker_cmd, label_node=options.label_node)
        notes.append(note)
        reporter.step(note)
    full = project_stack_file(project, options=options)
    for line in full.notes:
        reporter.warn(line)
    created = ensure_secrets(docker_cmd, name, [s for s in full.secrets if s.service in targets])
    if created:
        notes.append(f"created {len(created)} swarm secret(s)")
    existing = read_stack(docker_cmd, name)
    rows = {
        n: ServiceProgress(
            service=n, layer=stack.services[n].layer, oneshot=stack.services[n].oneshot
        )
        for n in targets
    }
    watch = _Watch(before={n: (v.update_state, v.update_started) for n, v in existing.items()})
    for view in existing.values():
        for task in view.tasks:
            watch.tasks[task.id] = task.state
    deadline = started + timeout
    steps = [sorted(targets)] if update_only else deploy_steps(stack, targets)
    failures: list[tuple[str, str]] = []
    timed_out = False
    with tempfile.TemporaryDirectory(prefix="lakehouse-swarm-", dir=workdir) as tmp:
        deployed: list[str] = []
        for index, step in enumerate(steps, 1):
            deployed += step
            last_prune = prune and index == len(steps)
            stack_file = project_stack_file(project, options=options, services=deployed)
            path = stack_file.write(Path(tmp), f"stack-{index}.yaml")
            verb = "updating" if update_only else f"step {index}/{len(steps)}"
            reporter.step(
                f"{verb}: docker stack deploy {', '.join(step)}"
                + (" --prune" if last_prune else "")
            )
            try:
                engine_swarm.stack_deploy(docker_cmd, name, path, prune=last_prune, scrub=env.scrub)
            except LakehouseError as exc:
                failures = [(step[0], exc.message)]
                break
            failures, timed_out = wait_for_services(
                project,
                deployed,
                watch=watch,
                rows=rows,
                deadline=deadline,
                started=started,
                reporter=reporter,
                notes=notes,
            )
            if failures:
                break
    reporter.finish()
    return WaitOutcome(
        ok=not failures,
        rows=list(rows.values()),
        failures=failures,
        timed_out=timed_out,
        elapsed=time.monotonic() - started,
        kind="update" if update_only else "deploy",
        notes=notes,
        rolled_back=sorted(watch.rolled_back.items()),
    )


def failure_details(project: Project, failures: Sequence[tuple[str, str]]) -> list[ServiceFailure]:
    """Each failing service with its tasks' last errors and its last log lines."""
    views = read_stack(project.compose.docker_cmd, stack_name(project))
    return _failure_details(project, failures, views)


def remove_stack(
    project: Project,
    *,
    remove_volumes: bool = False,
    timeout: float = 120.0,
    notify: Callable[[str], None] = lambda _text: None,
    sleep: Callable[[float], None] = time.sleep,
) -> TeardownResult:
    """``docker stack rm``, then wait until the stack's services, containers and networks are
    gone; the tool's secrets of the stack are removed; volumes only with ``remove_volumes``
    (the lifecycle has confirmed and checked the prod rules)."""
    docker_cmd = project.compose.docker_cmd
    name = stack_name(project)
    volume_names = sorted(
        {project.stack.volumes.get(v, v) for s in project.stack.active.values() for v in s.volumes}
    )
    before = engine_volumes.existing_volumes(docker_cmd, volume_names)
    notify(f"docker stack rm {name}")
    if engine_swarm.stack_services(docker_cmd, name):
        engine_swarm.stack_rm(docker_cmd, name)
    deadline = time.monotonic() + timeout
    containers: list[str] = []
    while True:
        services = engine_swarm.stack_services(docker_cmd, name)
        containers = engine_swarm.stack_containers(docker_cmd, name)
        networks = engine_swarm.stack_networks(docker_cmd, name)
        if not services and not containers and not networks:
            break
        if time.monotonic() >= deadline:
            containers = (
                containers
                + [f"service {s.get('Spec', {}).get('Name')}" for s in services]
                + [f"network {n}" for n in networks]
            )
            break
        sleep(POLL_SECONDS)
    kept = engine_swarm.remove_secrets(docker_cmd, engine_swarm.stack_secrets(docker_cmd, name))
    if kept:
        notify(f"secrets still in use, kept: {', '.join(kept)}")
    if remove_volumes and before:
        engine_volumes.remove_volumes(docker_cmd, before)
    return TeardownResult(
        environment=project.env.name,
        project_name=name,
        remove_volumes=remove_volumes,
        volumes_before=before,
        volumes_after=engine_volumes.existing_volumes(docker_cmd, volume_names),
        containers_left=containers,
    )
