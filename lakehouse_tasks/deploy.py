"""Deploy and roll back an environment: lock, preflight, plugins, backup, up, wait, record.

``docker compose up -d`` starts the services in dependency order by itself (honouring the
``depends_on`` conditions, in parallel where independent). It is run *without* ``--wait``
(which trips on one-shot jobs, IMAGE_FACTS.md) and in the background, because it blocks while
it waits for those conditions: meanwhile this module watches health snapshots, so the live
view starts at once and a failure is seen as soon as it happens, not when compose gives up.

The deploy succeeds when compose has finished and every long-running service is healthy (or
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import history
from .checks import Status
from .docker import (
    BackgroundCommand,
    ComposeProject,
    ContainerEvents,
    Engine,
    compose_in_background,
    compose_logs,
    container_states,
)
from .errors import ConfigError, ExitCode, LakehouseError
from .events import EventKind
from .hooks.emit import emit
from .hooks.manager import get_plugin_manager
from .lock import environment_lock
from .project import Project
from .schema import parse_duration
from .stack import Stack

if TYPE_CHECKING:
    from .backends.base import Backend
    from .health import ServiceHealth

DEFAULT_TIMEOUT = 600.0
#: The longest wait between two snapshots of a deploy; an engine event (a container starts,
#: dies or changes health) wakes the wait sooner (``docker.ContainerEvents``).
POLL_SECONDS = 1.0
#: Restarts after which a restarting long-running container counts as crash-looping.
CRASH_LOOP_RESTARTS = 3
LOG_TAIL = 30
#: Seconds given to a still-running ``compose up`` to report on its own after a failure.
UP_GRACE_SECONDS = 5.0


# ---- options and plan ---------------------------------------------------------------------
@dataclass(frozen=True)
class DeployOptions:
    """What the user asked ``deploy`` to do."""

    services: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    skip_backup: bool = False
    skip_preflight: bool = False
    pull: bool = False
    command: str = "invoke deploy"


def resolve_timeout(project: Project, flag: str | float | None) -> float:
    """``--timeout`` in seconds, else the environment's ``DEPLOY_TIMEOUT``, else 600."""
    raw = flag if flag not in (None, "") else project.env.get("DEPLOY_TIMEOUT")
    if raw in (None, ""):
        return DEFAULT_TIMEOUT
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text)
        except ValueError:
            raise ConfigError(
                f"Deploy timeout {text!r} is not a number of seconds or a duration like 10m; "
                "fix --timeout or DEPLOY_TIMEOUT."
            ) from None
    if value <= 0:
        raise ConfigError("The deploy timeout must be positive; fix --timeout or DEPLOY_TIMEOUT.")
    return value


def parse_services(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``a,b`` (or repeated values) as a tuple of names."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        names.extend(n.strip() for n in str(item).split(",") if n.strip())
    return tuple(dict.fromkeys(names))


def with_dependencies(stack: Stack, names: Sequence[str]) -> list[str]:
    """The named services and everything they depend on (all active services when empty)."""
    if not names:
        return sorted(stack.active)
    unknown = [n for n in names if n not in stack.services]
    if unknown:
        raise ConfigError(
            f"Unknown service{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known services: {', '.join(sorted(stack.services))}."
        )
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(d for d in stack.services[name].depends_on if d in stack.services)
    return sorted(seen)


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


def _missing_images(stack: Stack, services: Sequence[str]) -> list[str]:
    refs = {stack.services[s].image for s in services if stack.services[s].build}
    if not refs:
        return []
    present = Engine().image_ids(refs)
    return sorted(ref for ref, image_id in present.items() if image_id is None)


def plan_deploy(project: Project, options: DeployOptions) -> DeployPlan:
    """The plan of a deploy: reads the merged config (and which built images exist) only."""
    stack = project.stack
    services = with_dependencies(stack, options.services)
    requested = list(options.services)
    args = up_arguments(
        stack, requested, pull=options.pull, missing_images=_missing_images(stack, services)
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


# ---- progress and result ------------------------------------------------------------------
@dataclass
class ServiceProgress:
    """One service during the wait: its status word and when it got there."""

    service: str
    layer: int
    oneshot: bool
    status: str = "waiting"  # waiting, starting, running, healthy, unhealthy, restarting, exited
    done: bool = False
    failure: str = ""
    elapsed: float = 0.0  # seconds from the start of the deploy to now, or to done/failure

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "layer": self.layer,
            "kind": "one-shot" if self.oneshot else "service",
            "status": self.status,
            "done": self.done,
            "failure": self.failure,
            "elapsed": round(self.elapsed, 1),
        }


@dataclass(frozen=True)
class ServiceFailure:
    """Why one service failed the deploy, with what a person needs to see next."""

    service: str
    reason: str
    health_log: tuple[str, ...] = ()
    logs: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "reason": self.reason,
            "health_log": list(self.health_log),
            "logs": self.logs,
        }


@dataclass
class DeployResult:
    """The outcome of a deploy or rollback."""

    environment: str
    kind: str  # deploy | rollback
    ok: bool
    elapsed: float
    services: list[ServiceProgress] = field(default_factory=list)
    failures: list[ServiceFailure] = field(default_factory=list)
    compose_error: str = ""
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)
    record: history.DeployRecord | None = None
    access: list[dict[str, str]] = field(default_factory=list)
    #: ``recreated`` / ``created`` / ``removed`` services (container ids before vs after).
    containers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if self.ok:
            return f"{self.kind} of {self.environment} succeeded in {self.elapsed:.0f}s"
        named = ", ".join(f"{f.service} ({f.reason})" for f in self.failures)
        if self.timed_out:
            head = f"{self.kind} of {self.environment} timed out after {self.elapsed:.0f}s"
        else:
            head = f"{self.kind} of {self.environment} failed"
        detail = named or self.compose_error or "compose reported an error"
        return (
            f"{head}: {detail}; healthy services were left running and no volume was touched "
            f"(see the logs above, then fix and run `invoke deploy --env {self.environment}` "
            "again)."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "kind": self.kind,
            "ok": self.ok,
            "elapsed": round(self.elapsed, 1),
            "timed_out": self.timed_out,
            "services": [s.to_dict() for s in self.services],
            "failures": [f.to_dict() for f in self.failures],
            "compose_error": self.compose_error,
            "notes": list(self.notes),
            "record": self.record.to_dict() if self.record else None,
            "access": list(self.access),
            "containers": dict(self.containers),
        }


class Reporter:
    """Where a deploy tells the person what is happening; the task supplies the real one.

    The default does nothing, which is what tests and ``--json`` consumers of the plain
    functions want.
    """

    def step(self, text: str) -> None:
        """One line of progress (a phase starts or ends)."""

    def warn(self, text: str) -> None:
        """Something the person should know that does not stop the deploy."""

    def progress(self, rows: Sequence[ServiceProgress], changed: Sequence[ServiceProgress]) -> None:
        """The per-service view after each poll; ``changed`` are the rows whose status moved."""

    def finish(self) -> None:
        """The wait is over (stop any live display)."""


# ---- compose errors -----------------------------------------------------------------------
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


# ---- judging one service ------------------------------------------------------------------
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
    from .health import parse_engine_time

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


# ---- the wait loop ------------------------------------------------------------------------
@dataclass
class WaitOutcome:
    ok: bool
    rows: list[ServiceProgress]
    failures: list[tuple[str, str]]  # (service, reason)
    compose_error: str = ""
    timed_out: bool = False
    elapsed: float = 0.0


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
    from .health import take_snapshot

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
    from .health import take_snapshot

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


# ---- plugins, preflight and backup --------------------------------------------------------
def access_urls(project: Project) -> list[dict[str, str]]:
    """The web interfaces to print after a successful deploy (from the plugins)."""
    return [
        {"name": u.name, "url": u.url} for u in get_plugin_manager().access_urls(env=project.env)
    ]


def run_preflight_or_fail(
    project: Project, *, pull: bool, reporter: Reporter, backend: Backend | None = None
) -> None:
    """Raise exit 3 listing every failed check, each with its fix; warnings are reported and
    do not stop. ``backend`` sets the target's rules (swarm fails reservations that do not
    fit)."""
    from .preflight import run_preflight

    checks = run_preflight(project, backend=backend, pull_check=pull)
    for check in checks:
        if check.status == Status.WARN:
            reporter.warn(f"preflight: {check.name}: {check.detail}")
    failed = [c for c in checks if c.status == Status.FAIL]
    if failed:
        listed = "".join(
            f"\n  - {c.name}: {c.detail}" + (f"\n    fix: {c.hint}" if c.hint else "")
            for c in failed
        )
        raise LakehouseError(
            f"Preflight failed for {project.env.name} ({len(failed)} of {len(checks)} checks), "
            f"nothing was started; fix these, or pass --skip-preflight if you know better:"
            f"{listed}",
            ExitCode.PREFLIGHT_FAILED,
        )
    reporter.step(f"preflight passed ({len(checks)} checks)")


def backup_before_deploy(project: Project) -> str:
    """Take the automatic pre-deploy backup when the stack holds data; say what happened."""
    try:
        from .backup import create_backup, has_data
    except ImportError:
        return "backup skipped: backup module unavailable"
    if not has_data(project):
        return "backup skipped: the stack holds no data yet"
    manifest = create_backup(project)
    ident = getattr(manifest, "id", None) or getattr(manifest, "name", None) or "done"
    return f"backup taken before deploy: {ident}"


# ---- deploy -------------------------------------------------------------------------------
def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _start_and_wait(
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


def _record(
    project: Project, *, kind: str, config: Mapping[str, Any], rolled_back_to: str | None = None
) -> history.DeployRecord:
    root = project.env.root
    stack = Stack.from_config(config)
    images: dict[str, str] = {}
    for state in container_states(project.compose):
        if state.service and state.service not in images:
            images[state.service] = state.image_id
    records = history.load(root, project.env.name)
    when = history.now_iso()
    record = history.DeployRecord(
        id=history.new_id(records, stack.config_hash, when),
        environment=project.env.name,
        time=when,
        kind=kind,
        config_hash=stack.config_hash,
        project_name=project.compose.project_name,
        services=tuple(sorted(images)),
        images=images,
        image_refs={n: s.image for n, s in stack.active.items() if n in images},
        profiles=tuple(project.compose.profiles),
        git_commit=history.git_commit(root),
        rehearsal=project.rehearsal,
        rolled_back_to=rolled_back_to,
    )
    history.append(root, record, config)
    return record


def _conclude(
    project: Project,
    outcome: WaitOutcome,
    *,
    kind: str,
    config: Mapping[str, Any],
    notes: list[str],
    rolled_back_to: str | None = None,
) -> DeployResult:
    result = DeployResult(
        environment=project.env.name,
        kind=kind,
        ok=outcome.ok,
        elapsed=outcome.elapsed,
        services=outcome.rows,
        compose_error=outcome.compose_error,
        timed_out=outcome.timed_out,
        notes=notes,
    )
    if not outcome.ok:
        result.failures = failure_details(project, outcome.failures)
        emit(project, EventKind.DEPLOY_FAILED, result.summary, operation=kind)
        return result
    result.record = _record(project, kind=kind, config=config, rolled_back_to=rolled_back_to)
    result.access = access_urls(project)
    if kind == "rollback":
        emit(project, EventKind.ROLLBACK, result.summary, to=rolled_back_to)
    emit(project, EventKind.DEPLOY_SUCCEEDED, result.summary, record=result.record.id)
    get_plugin_manager().post_deploy(project=project, result=result)
    return result


def prepare_host(project: Project, reporter: Reporter) -> None:
    """What the stack needs on the host before ``up``: services a killed backup or restore
    left stopped are started again, and the backup directory (bind-mounted by the staging and
    prod overrides) exists, private to its owner."""
    from .backup import default_dest, recover_interrupted

    for service in recover_interrupted(project):
        reporter.warn(f"{service} had been left stopped by an interrupted backup; started again")
    dest = default_dest(project.env)
    if not dest.exists():
        dest.mkdir(parents=True, mode=0o700)
        reporter.step(f"created the backup directory {dest}")


def deploy(
    project: Project, options: DeployOptions, *, reporter: Reporter | None = None
) -> DeployResult:
    """Deploy ``project``'s environment (see the module docstring for the order)."""
    reporter = reporter or Reporter()
    env = project.env
    stack = project.stack
    services = with_dependencies(stack, options.services)
    notes: list[str] = []
    with environment_lock(env.root, env.name, options.command, notify=reporter.warn):
        if options.skip_preflight:
            reporter.warn("preflight skipped (--skip-preflight)")
        else:
            run_preflight_or_fail(project, pull=options.pull, reporter=reporter)
        get_plugin_manager().pre_deploy(project=project, services=services)
        prepare_host(project, reporter)
        emit(project, EventKind.DEPLOY_STARTED, f"deploy of {env.name} started", services=services)
        note = (
            "backup skipped (--skip-backup)"
            if options.skip_backup
            else backup_before_deploy(project)
        )
        notes.append(note)
        reporter.step(note)
        before, failed_roll = _upgrade_step(project, services, options.timeout, reporter)
        if failed_roll is not None:
            return _conclude(
                project, failed_roll, kind="deploy", config=project.compose.config(), notes=notes
            )
        args = up_arguments(
            stack,
            list(options.services),
            pull=options.pull,
            missing_images=_missing_images(stack, services),
        )
        outcome = _start_and_wait(
            project, args=args, services=services, timeout=options.timeout, reporter=reporter
        )
        result = _conclude(
            project, outcome, kind="deploy", config=project.compose.config(), notes=notes
        )
        _report_containers(project, result, before, reporter)
        return result


def _upgrade_step(
    project: Project, services: Sequence[str], timeout: float, reporter: Reporter
) -> tuple[dict[str, str] | None, WaitOutcome | None]:
    """Before ``up``: the containers' ids (to report what was recreated) and, when several
    Spark workers changed, their one-at-a-time update (its outcome when it failed)."""
    from .upgrade import container_ids, plan_upgrade, roll_group

    try:
        before = container_ids(project)
        plan = plan_upgrade(project, services) if before else None
    except LakehouseError as exc:
        reporter.warn(f"could not compare the configuration with the containers: {exc.message}")
        return None, None
    for group in plan.rolling if plan else ():
        reporter.step(f"updating {', '.join(group)} one at a time (rolling)")
        outcome = roll_group(project, group, timeout=timeout, reporter=reporter)
        if not outcome.ok:
            return before, outcome
    return before, None


def _report_containers(
    project: Project, result: DeployResult, before: Mapping[str, str] | None, reporter: Reporter
) -> None:
    from .upgrade import compare_containers, container_ids

    if before is None:
        return
    try:
        result.containers = compare_containers(before, container_ids(project))
    except LakehouseError:
        return
    recreated = result.containers.get("recreated", [])
    note = "recreated: " + (", ".join(recreated) if recreated else "none")
    result.notes.append(note)
    reporter.step(note)


class DeployFailedError(LakehouseError):
    """A deploy that did not reach a healthy stack (exit 4); ``result`` says why."""

    def __init__(self, result: DeployResult) -> None:
        super().__init__(result.summary, ExitCode.DEPLOY_FAILED)
        self.result = result


def deploy_stack(
    project: Project,
    *,
    services: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    skip_backup: bool = False,
    skip_preflight: bool = False,
    pull: bool = False,
    reporter: Reporter | None = None,
) -> DeployResult:
    """:func:`deploy` with keyword options; raises :class:`DeployFailedError` on failure."""
    options = DeployOptions(
        services=tuple(services),
        timeout=timeout,
        skip_backup=skip_backup,
        skip_preflight=skip_preflight,
        pull=pull,
    )
    result = deploy(project, options, reporter=reporter)
    if not result.ok:
        raise DeployFailedError(result)
    return result


# ---- rollback -----------------------------------------------------------------------------
def pin_images_override(images: Mapping[str, str]) -> str:
    """A compose override (YAML is a superset of JSON) setting each service's image to an id."""
    import json

    return json.dumps(
        {"services": {name: {"image": ident} for name, ident in sorted(images.items())}}
    )


def rollback(
    project: Project,
    *,
    to: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    command: str = "invoke rollback",
    reporter: Reporter | None = None,
    workdir: Path | None = None,
) -> DeployResult:
    """Redeploy a recorded deployment (default: the previous one) with its images pinned by id.

    Raises exit 4 naming every image that is no longer present locally (nothing is started).
    """
    import json
    import tempfile

    reporter = reporter or Reporter()
    env = project.env
    with environment_lock(env.root, env.name, command, notify=reporter.warn):
        records = history.load(env.root, env.name)
        target = history.select_previous(records, to)
        stored = history.config_file(env.root, target)
        if not stored.exists():
            raise LakehouseError(
                f"The configuration of deployment {target.id} is missing ({stored.name}); "
                "roll back to another one with --to.",
                ExitCode.DEPLOY_FAILED,
            )
        present = Engine().image_ids(target.images.values())
        missing = sorted(
            f"{service} ({target.image_refs.get(service, '?')}, {ident[:19]})"
            for service, ident in target.images.items()
            if present.get(ident) is None
        )
        if missing:
            raise LakehouseError(
                f"Cannot roll back {env.name} to {target.id}: these images are no longer on "
                f"this host: {', '.join(missing)}; rebuild or load them, or pick another "
                "deployment with --to.",
                ExitCode.DEPLOY_FAILED,
            )
        config = json.loads(stored.read_text())
        with tempfile.TemporaryDirectory(prefix="lakehouse-rollback-", dir=workdir) as tmp:
            pin = Path(tmp) / "pin-images.yaml"
            pin.write_text(pin_images_override(target.images))
            compose = ComposeProject(
                env=env,
                files=[stored, pin],
                profiles=list(target.profiles),
                project_name=target.project_name or project.compose.project_name,
            )
            pinned = Project(env=env, compose=compose, rehearsal=target.rehearsal)
            reporter.step(f"rolling back {env.name} to {target.id} ({target.time})")
            services = sorted(pinned.stack.active)
            args = ["up", "-d", "--remove-orphans", "--no-build", "--pull", "never"]
            outcome = _start_and_wait(
                pinned, args=args, services=services, timeout=timeout, reporter=reporter
            )
            return _conclude(
                pinned,
                outcome,
                kind="rollback",
                config=config,
                notes=[f"rolled back to {target.id}"],
                rolled_back_to=target.id,
            )
