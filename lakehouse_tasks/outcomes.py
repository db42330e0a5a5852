"""What the lifecycle reports: per-service progress, failures, deploy and teardown results,
and the ``Reporter`` a task supplies to show progress.

Pure data (plus the do-nothing ``Reporter``), shared by the lifecycle, the backends and the
views; it imports nothing above the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .history import DeployRecord

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class DeployOptions:
    """What the user asked ``deploy`` to do."""

    services: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    skip_backup: bool = False
    skip_preflight: bool = False
    pull: bool = False
    command: str = "invoke deploy"
    #: swarm: label this node as the storage node of the stateful services.
    label_node: bool = False


#: Restarts after which a restarting long-running container counts as crash-looping.
CRASH_LOOP_RESTARTS = 3


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
    record: DeployRecord | None = None
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


@dataclass
class WaitOutcome:
    """What a backend's ``apply`` (or one wait) ended with; the lifecycle turns it into a
    :class:`DeployResult`, emits the events and records the history."""

    ok: bool
    rows: list[ServiceProgress]
    failures: list[tuple[str, str]]  # (service, reason)
    compose_error: str = ""
    timed_out: bool = False
    elapsed: float = 0.0
    #: ``deploy``, or ``update`` (swarm: a rolling update of named services of a live stack).
    kind: str = "deploy"
    #: What the backend did on the way (storage node labelled, secrets created, recreated).
    notes: list[str] = field(default_factory=list)
    #: (service, why) for each update the target rolled back by itself (swarm).
    rolled_back: list[tuple[str, str]] = field(default_factory=list)
    #: ``recreated`` / ``created`` / ``removed`` services (compose: container ids compared).
    containers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class TeardownResult:
    """What teardown did and what the engine shows afterwards."""

    environment: str
    project_name: str
    remove_volumes: bool
    volumes_before: list[str] = field(default_factory=list)
    volumes_after: list[str] = field(default_factory=list)
    containers_left: list[str] = field(default_factory=list)
    backup: str = ""

    @property
    def volumes_removed(self) -> list[str]:
        return [v for v in self.volumes_before if v not in self.volumes_after]

    @property
    def volumes_kept(self) -> list[str]:
        return [v for v in self.volumes_before if v in self.volumes_after]

    @property
    def ok(self) -> bool:
        """No container left; volumes gone when asked, all kept otherwise."""
        if self.containers_left:
            return False
        if self.remove_volumes:
            return not self.volumes_after
        return self.volumes_kept == self.volumes_before

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "project_name": self.project_name,
            "remove_volumes": self.remove_volumes,
            "ok": self.ok,
            "containers_left": list(self.containers_left),
            "volumes_kept": self.volumes_kept,
            "volumes_removed": self.volumes_removed,
            "backup": self.backup,
        }


__all__ = [
    "CRASH_LOOP_RESTARTS",
    "DEFAULT_TIMEOUT",
    "DeployOptions",
    "DeployResult",
    "Reporter",
    "ServiceFailure",
    "ServiceProgress",
    "TeardownResult",
    "WaitOutcome",
]
