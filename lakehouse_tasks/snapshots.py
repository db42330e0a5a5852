"""What a health snapshot is, as data: one ``ServiceHealth`` row per container (or swarm task slot), the ``HealthSnapshot`` of an environment, and the events between two snapshots (``diff_snapshots``). Backend-agnostic: compose and swarm both build these rows; nothing here runs docker."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .events import Event, EventKind, utc_now

if TYPE_CHECKING:
    pass


#: Statuses that count as fine in :attr:`HealthSnapshot.ok`. ``running`` is a long-running
#: container without a healthcheck: up is all the engine can tell about it.
OK_STATUSES = frozenset({"healthy", "running", "exited (0)"})

#: How many healthcheck outputs ``--detailed`` keeps per container.
HEALTH_LOG_KEEP = 3


@dataclass(frozen=True)
class HealthProbe:
    """One healthcheck run the engine remembers (``State.Health.Log``)."""

    exit_code: int
    output: str
    end: str = ""


@dataclass(frozen=True)
class ServiceHealth:
    """One container of the stack (or a service of the merged config with none)."""

    service: str
    container: str = ""  # container name
    container_id: str = ""
    state: str = "missing"  # running | exited | restarting | created | paused | dead | missing
    health: str = "none"  # healthy | unhealthy | starting | none
    exit_code: int | None = None
    restart_count: int = 0
    started_at: str = ""
    uptime_s: float | None = None
    cpu_percent: float | None = None
    mem_used: int | None = None
    mem_limit: int | None = None
    url: str = ""
    image: str = ""
    oneshot: bool = False
    probes: tuple[HealthProbe, ...] = ()
    cpu_limit: float = 0.0
    memory_limit: int = 0
    volumes: tuple[str, ...] = ()
    restart_policy: str = ""
    in_config: bool = True
    #: healthy by the service's own healthcheck, run by the tool (a restore's probe) before the
    #: engine's first check (lakehouse_tasks.probes); the engine still says "starting"
    own_probe: bool = False

    @property
    def status(self) -> str:
        """healthy, running, starting, unhealthy, restarting, exited (0), exited or missing."""
        return derive_status(self.state, self.health, self.exit_code, oneshot=self.oneshot)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": self.status,
            "ok": self.ok,
            "container": self.container,
            "container_id": self.container_id,
            "state": self.state,
            "health": self.health,
            "exit_code": self.exit_code,
            "restart_count": self.restart_count,
            "started_at": self.started_at,
            "uptime_s": self.uptime_s,
            "cpu_percent": self.cpu_percent,
            "mem_used": self.mem_used,
            "mem_limit": self.mem_limit,
            "url": self.url,
            "image": self.image,
            "oneshot": self.oneshot,
            "probes": [
                {"exit_code": p.exit_code, "output": p.output, "end": p.end} for p in self.probes
            ],
            "cpu_limit": self.cpu_limit,
            "memory_limit": self.memory_limit,
            "volumes": list(self.volumes),
            "restart_policy": self.restart_policy,
            "in_config": self.in_config,
            "own_probe": self.own_probe,
        }


def derive_status(state: str, health: str, exit_code: int | None, *, oneshot: bool) -> str:
    """The one word a user reads for a container (see docs/HEALTH.md)."""
    if state == "missing":
        return "missing"
    if state == "exited" or state == "dead":
        if oneshot and exit_code == 0:
            return "exited (0)"
        return "exited"
    if state == "restarting":
        return "restarting"
    if state == "created":
        return "starting"
    if state == "paused":
        return "unhealthy"
    # running
    if health in ("healthy", "unhealthy", "starting"):
        return health
    return "starting" if oneshot else "running"


@dataclass(frozen=True)
class HealthSnapshot:
    """Every service of one environment at one moment."""

    environment: str
    project: str
    rows: tuple[ServiceHealth, ...]
    time: _dt.datetime = field(default_factory=utc_now)
    resources: bool = True

    @property
    def healthy(self) -> int:
        return sum(1 for r in self.rows if r.ok)

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def summary(self) -> str:
        return f"{self.healthy}/{self.total} healthy"

    @property
    def ok(self) -> bool:
        """Every long-running service healthy (or running without a healthcheck) and every
        one-shot exited 0."""
        return all(r.ok for r in self.rows)

    @property
    def problems(self) -> list[ServiceHealth]:
        return [r for r in self.rows if not r.ok]

    def by_key(self) -> dict[str, ServiceHealth]:
        return {r.service: r for r in self.rows}

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "project": self.project,
            "time": self.time.isoformat(),
            "ok": self.ok,
            "summary": {"healthy": self.healthy, "total": self.total},
            "services": [r.to_dict() for r in self.rows],
        }


def diff_snapshots(prev: HealthSnapshot, cur: HealthSnapshot) -> list[Event]:
    """Every transition between two snapshots, one event per service and kind.

    healthy -> unhealthy: SERVICE_UNHEALTHY; unhealthy -> healthy: SERVICE_RECOVERED; restart
    count up or a new container: SERVICE_RESTARTED; present -> missing: SERVICE_DISAPPEARED;
    running -> exited (a one-shot exiting 0 is expected): SERVICE_EXITED.
    """
    events: list[Event] = []
    before = prev.by_key()
    env = cur.environment

    def add(kind: EventKind, service: str, message: str, **details: Any) -> None:
        events.append(Event(kind, env, message, service=service, time=cur.time, details=details))

    for name, now in cur.by_key().items():
        old = before.get(name)
        if old is None:
            continue
        if old.state != "missing" and now.state == "missing":
            add(EventKind.SERVICE_DISAPPEARED, name, "container is gone", container=old.container)
            continue
        if old.state == "missing":
            continue
        if old.container_id and now.container_id and old.container_id != now.container_id:
            add(
                EventKind.SERVICE_RESTARTED,
                name,
                "container was re-created",
                old=old.container_id[:12],
                new=now.container_id[:12],
            )
        elif now.restart_count > old.restart_count:
            add(
                EventKind.SERVICE_RESTARTED,
                name,
                f"restarted (restart count {old.restart_count} -> {now.restart_count})",
                restart_count=now.restart_count,
            )
        if old.state == "running" and now.state in ("exited", "dead"):
            if not (now.oneshot and now.exit_code == 0):
                add(
                    EventKind.SERVICE_EXITED,
                    name,
                    f"exited with code {now.exit_code}",
                    exit_code=now.exit_code,
                )
            continue
        if old.health != "unhealthy" and now.health == "unhealthy":
            last = now.probes[-1].output if now.probes else ""
            add(
                EventKind.SERVICE_UNHEALTHY,
                name,
                "became unhealthy" + (f": {last}" if last else ""),
                previous=old.health,
            )
        elif old.health == "unhealthy" and now.health == "healthy":
            add(EventKind.SERVICE_RECOVERED, name, "is healthy again")
    return events
