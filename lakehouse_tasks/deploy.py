"""Deploy and roll back an environment, the same rules on every target.

:func:`deploy` is the one orchestration (modelled on tutor's ``launch`` over its task runners
and kamal's ``cli/`` over ``commands/``), whatever the backend: the environment lock; the
backend's own readiness (swarm: a manager, no compose project of the environment here, every
image on the node); the preflight with the backend's rules; the plugins' veto; services an
interrupted backup or restore left stopped are started again; the ``deploy.started`` event;
the automatic pre-deploy backup when the stack holds data; then ``backend.apply`` (compose:
``compose create`` and each service started once its dependencies pass their own
healthchecks, :mod:`lakehouse_tasks.backends.compose.layers`; swarm: stepwise ``docker stack
deploy``); then the history record (when the backend keeps one), the
access URLs, the events (rollbacks the target did by itself included) with the resolved
environment, and ``post_deploy``. A flag the backend cannot honour is refused (exit 2) before
anything runs. On failure healthy services are left running and volumes are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import history
from .backends.base import refuse_unsupported
from .backends.compose import ComposeBackend
from .backends.compose.layers import start_in_order
from .backends.compose.plan import DeployPlan, plan_deploy
from .checks import Status
from .engine.client import Engine
from .engine.compose import ComposeProject
from .errors import ConfigError, ExitCode, LakehouseError
from .events import EventKind
from .hooks.emit import emit
from .hooks.manager import get_plugin_manager
from .lock import environment_lock
from .outcomes import (
    DEFAULT_TIMEOUT,
    DeployOptions,
    DeployResult,
    Reporter,
    WaitOutcome,
)
from .project import Project
from .schema import parse_duration
from .stack import Stack, parse_services, with_dependencies

if TYPE_CHECKING:
    from .backends.base import Backend


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


def backup_before_deploy(project: Project, backend: Backend | None = None) -> str:
    """Take the automatic pre-deploy backup when the stack holds data; say what happened."""
    from .data.backup import create_backup
    from .data.plan import has_data

    if not has_data(project):
        return "backup skipped: the stack holds no data yet"
    manifest = create_backup(project, backend=backend)
    return f"backup taken before deploy: {manifest.id}"


# ---- deploy -------------------------------------------------------------------------------


def _record(
    project: Project,
    backend: Backend,
    *,
    kind: str,
    config: Mapping[str, Any],
    rolled_back_to: str | None = None,
) -> history.DeployRecord:
    root = project.env.root
    stack = Stack.from_config(config)
    images = backend.running_images(project)
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
    backend: Backend,
    outcome: WaitOutcome,
    *,
    kind: str,
    notes: list[str],
    config: Mapping[str, Any] | None = None,
    rolled_back_to: str | None = None,
) -> DeployResult:
    """The result, the events (with the resolved environment), the history and the hooks."""
    result = DeployResult(
        environment=project.env.name,
        kind=kind,
        ok=outcome.ok,
        elapsed=outcome.elapsed,
        services=outcome.rows,
        compose_error=outcome.compose_error,
        timed_out=outcome.timed_out,
        notes=notes,
        containers=dict(outcome.containers),
    )
    for service, why in outcome.rolled_back:
        emit(
            project,
            EventKind.ROLLBACK,
            f"{backend.name} rolled back the update of {service}: {why}",
            service=service,
            target=backend.name,
        )
    if not outcome.ok:
        result.failures = backend.failure_details(project, outcome.failures)
        emit(project, EventKind.DEPLOY_FAILED, result.summary, operation=kind, target=backend.name)
        return result
    if backend.keeps_history:
        config = config if config is not None else project.compose.config()
        result.record = _record(
            project, backend, kind=kind, config=config, rolled_back_to=rolled_back_to
        )
    result.access = access_urls(project)
    if kind == "rollback":
        emit(project, EventKind.ROLLBACK, result.summary, to=rolled_back_to)
    emit(
        project,
        EventKind.DEPLOY_SUCCEEDED,
        result.summary,
        record=result.record.id if result.record else None,
        target=backend.name,
    )
    get_plugin_manager().post_deploy(project=project, result=result)
    return result


def prepare_host(project: Project, reporter: Reporter, backend: Backend | None = None) -> None:
    """What the stack needs on the host before it starts: services a killed backup or restore
    left stopped are started again (on the target their state file names), and the backup
    directory (bind-mounted by the staging and prod overrides) exists, private to its owner."""
    from .data.maintenance import recover_interrupted
    from .data.store import default_dest

    for service in recover_interrupted(project, backend=backend):
        reporter.warn(f"{service} had been left stopped by an interrupted backup; started again")
    dest = default_dest(project.env)
    if not dest.exists():
        dest.mkdir(parents=True, mode=0o700)
        reporter.step(f"created the backup directory {dest}")


def deploy(
    project: Project,
    options: DeployOptions,
    *,
    backend: Backend | None = None,
    reporter: Reporter | None = None,
) -> DeployResult:
    """Deploy ``project``'s environment on ``backend`` (default compose); see the module
    docstring for the order."""
    reporter = reporter or Reporter()
    backend = backend or ComposeBackend()
    refuse_unsupported(backend, pull=options.pull, label_node=options.label_node)
    env = project.env
    notes: list[str] = []
    with environment_lock(env.root, env.name, options.command, notify=reporter.warn):
        services = backend.ready(project, options.services)
        if options.skip_preflight:
            reporter.warn("preflight skipped (--skip-preflight)")
        else:
            run_preflight_or_fail(project, pull=options.pull, reporter=reporter, backend=backend)
        get_plugin_manager().pre_deploy(project=project, services=services)
        prepare_host(project, reporter, backend)
        emit(
            project,
            EventKind.DEPLOY_STARTED,
            f"deploy of {env.name} started",
            services=services,
            target=backend.name,
        )
        note = (
            "backup skipped (--skip-backup)"
            if options.skip_backup
            else backup_before_deploy(project, backend)
        )
        notes.append(note)
        reporter.step(note)
        outcome = backend.apply(project, services, options, reporter)
        return _conclude(project, backend, outcome, kind=outcome.kind, notes=notes + outcome.notes)


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
    backend: Backend | None = None,
) -> DeployResult:
    """:func:`deploy` with keyword options; raises :class:`DeployFailedError` on failure."""
    options = DeployOptions(
        services=tuple(services),
        timeout=timeout,
        skip_backup=skip_backup,
        skip_preflight=skip_preflight,
        pull=pull,
    )
    result = deploy(project, options, backend=backend, reporter=reporter)
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
            args = ["create", "--remove-orphans", "--no-build", "--pull", "never"]
            outcome = start_in_order(
                pinned, args=args, services=services, timeout=timeout, reporter=reporter
            )
            return _conclude(
                pinned,
                ComposeBackend(),
                outcome,
                kind="rollback",
                config=config,
                notes=[f"rolled back to {target.id}"],
                rolled_back_to=target.id,
            )


__all__ = [
    "DeployFailedError",
    "DeployOptions",
    "DeployPlan",
    "DeployResult",
    "Reporter",
    "deploy",
    "deploy_stack",
    "parse_services",
    "plan_deploy",
    "resolve_timeout",
    "rollback",
    "with_dependencies",
]
