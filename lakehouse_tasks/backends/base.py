"""The ``Backend`` protocol: what the rest of the package may ask of a deployment target.

Orchestration (lock, preflight, plugin veto, recovery, the pre-deploy backup, the prod rules,
events and history) is written once above the backends, in the lifecycle and data modules;
a backend only does the target-specific steps and reports outcomes. It never calls hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import ConfigError, ExitCode, LakehouseError

if TYPE_CHECKING:
    from ..outcomes import DeployOptions, Reporter, ServiceFailure, TeardownResult, WaitOutcome
    from ..project import Project


class Backend(Protocol):
    """One deployment target (compose, swarm). Instances hold no state; tests substitute
    :class:`lakehouse_tasks.testing.FakeBackend`."""

    #: The target's name, as ``--target`` and ``$DEPLOY_TARGET`` spell it.
    name: ClassVar[str]
    #: Whether a successful deploy is recorded in the history (compose: history + rollback;
    #: swarm keeps its own previous spec and rolls back by itself).
    keeps_history: ClassVar[bool]
    #: Whether resource reservations must fit the host (swarm refuses to schedule a task whose
    #: reservation no node satisfies; compose only warns).
    hard_reservations: ClassVar[bool]
    #: Flags this target cannot honour -> why; a task refuses them with exit 2.
    unsupported_flags: ClassVar[Mapping[str, str]]

    # ---- lifecycle (the orchestration around these is lakehouse_tasks.deploy/teardown) ----
    def ready(self, project: Project, services: Sequence[str]) -> list[str]:
        """Check what the target needs before anything runs (exit 4/5 naming the fix) and
        return the services a deploy of ``services`` changes (all when empty)."""
        ...

    def preview(self, project: Project, options: DeployOptions) -> Any:
        """What ``deploy --dry-run`` shows: an object with ``lines()`` or ``text()`` and
        ``to_dict()``; nothing is changed."""
        ...

    def apply(
        self,
        project: Project,
        services: Sequence[str],
        options: DeployOptions,
        reporter: Reporter,
    ) -> WaitOutcome:
        """Start or update ``services`` and wait until they are healthy (or fail)."""
        ...

    def failure_details(
        self, project: Project, failures: Sequence[tuple[str, str]]
    ) -> list[ServiceFailure]:
        """Each failing service with what a person needs next (health log, last log lines)."""
        ...

    def remove(
        self, project: Project, *, volumes: bool, notify: Callable[[str], None]
    ) -> TeardownResult:
        """Remove the environment's containers and networks (volumes only with ``volumes``;
        the lifecycle has confirmed and checked the prod rules) and report what is left."""
        ...

    # ---- inspection ---------------------------------------------------------------------
    def snapshot(
        self, project: Project, *, resources: bool = True, services: Sequence[str] | None = None
    ) -> Any:
        """The stack's :class:`~lakehouse_tasks.health.HealthSnapshot`."""
        ...

    def watcher(self) -> Callable[..., Any]:
        """A :meth:`snapshot` for one run of repeated refreshes (``health --watch``): it may
        keep, from one call to the next, what the engine says has not changed."""
        ...

    # ---- data protection ----------------------------------------------------------------
    def running_services(self, project: Project) -> list[str]:
        """The services with a running container (swarm: a running task), sorted."""
        ...

    def restarting_services(self, project: Project) -> dict[str, str]:
        """Service -> what the engine is doing to it, for each service on its way back after
        its container ended (compose: ``restarting``, or running again after a restart whose
        healthcheck has not passed yet; swarm: a task meant to run that is not running yet).
        Such a service is neither up nor at rest: it may start and write at any moment."""
        ...

    def exec_target(self, project: Project, service: str) -> str:
        """The id of a running container of ``service`` that ``docker exec`` can reach."""
        ...

    def replicas(self, project: Project, services: Sequence[str]) -> dict[str, int]:
        """What :meth:`start` needs to bring ``services`` back as they were (recorded in the
        state file before they are stopped; empty when nothing needs recording)."""
        ...

    def stop(self, project: Project, services: Sequence[str]) -> None:
        """Stop ``services`` and return once none of them runs (their volumes are quiet),
        those the engine is restarting included."""
        ...

    def start(
        self,
        project: Project,
        services: Sequence[str],
        replicas: Mapping[str, int],
        *,
        unsettled: Collection[str] = (),
    ) -> set[str]:
        """Start ``services`` again; return those a probe found healthy on the way. The
        ``unsettled`` ones were restarting before they were stopped: they are started again
        and not waited for."""
        ...

    def wait_healthy(
        self,
        project: Project,
        services: Sequence[str],
        *,
        timeout: float,
        what: str,
        confirmed: Iterable[str] = (),
    ) -> set[str]:
        """Return once every service is healthy (exit 4 naming the others after ``timeout``)."""
        ...

    def create_volume(self, project: Project, key: str, volume: str) -> None:
        """Create the missing volume ``volume`` (compose key ``key``) as a deploy would."""
        ...

    # ---- records and logs ---------------------------------------------------------------
    def running_images(self, project: Project) -> dict[str, str]:
        """The image id each service with a container runs (the first container of a
        service), which the deployment history records (only asked when
        :attr:`keeps_history`)."""
        ...

    def log_lines(self, project: Project, args: Sequence[str]) -> Iterable[str]:
        """The stack's log lines as they come, ``service-1 | text`` (compose's logs format),
        secrets scrubbed; ``args`` are ``docker compose logs`` options and services."""
        ...


def refuse_unsupported(backend: Backend, **flags: Any) -> None:
    """Exit 2 for a flag the backend cannot honour: never drop it silently."""
    for flag, value in flags.items():
        why = backend.unsupported_flags.get(flag)
        if value and why:
            option = "--" + flag.replace("_", "-")
            raise ConfigError(
                f"{option} is not supported with --target {backend.name}: {why}; "
                f"drop {option} or deploy with another target."
            )


def not_healthy(snapshot: Any, what: str, timeout: float) -> LakehouseError:
    """The error of a wait for health that ran out of time (exit 4)."""
    bad = ", ".join(f"{r.service} ({r.status})" for r in snapshot.problems)
    return LakehouseError(
        f"After {what} {bad} did not become healthy in {int(timeout)}s; "
        "check `invoke health` and the service logs.",
        ExitCode.DEPLOY_FAILED,
    )


def no_running_container(project: Project, service: str) -> LakehouseError:
    """The error of a data step that needs a running container of ``service``."""
    return LakehouseError(
        f"Service {service!r} of {project.env.name!r} has no running container; deploy "
        f"the stack (or start {service}) first, or leave its data out with --only."
    )


__all__ = ["Backend", "no_running_container", "not_healthy", "refuse_unsupported"]


#: How :meth:`Backend.restarting_services`' words read in a sentence.
_UNSETTLED_WORDS = {"restarting": "restarting (a crash loop)", "starting": "starting (not up yet)"}


def unsettled_phrase(states: Iterable[str]) -> str:
    """``restarting (a crash loop)``, ``starting (not up yet)``, or both joined by "or"."""
    return " or ".join(_UNSETTLED_WORDS.get(s, s) for s in sorted(set(states)))
