"""What a swarm stack looks like now: its services and their tasks (``ServiceView``, ``TaskView``) read in a fixed number of docker calls, and the health snapshot built from them.

Health maps swarm tasks onto the same :class:`~lakehouse_tasks.health.ServiceHealth` rows as compose: one row per service replica
(slot), from the newest task of that slot. A swarm task with a healthcheck only reaches
``running`` once its container is healthy, so ``running`` reads as ``healthy`` there."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...engine import swarm as engine_swarm
from ...health import access_urls
from ...snapshots import HealthProbe, HealthSnapshot, ServiceHealth
from ...stack import ONESHOT_LABEL, Stack, parse_services, require_known
from .translate import stack_name

if TYPE_CHECKING:
    from ...project import Project


def _short_name(full: str, stack: str) -> str:
    prefix = f"{stack}_"
    return full[len(prefix) :] if full.startswith(prefix) else full


def _task_time(task: Mapping[str, Any]) -> str:
    return str(task.get("CreatedAt") or (task.get("Meta") or {}).get("CreatedAt") or "")


@dataclass(frozen=True)
class TaskView:
    """One swarm task, as much as the tool needs."""

    id: str
    service: str
    slot: int
    state: str
    desired: str
    error: str
    exit_code: int | None
    container_id: str
    image: str
    timestamp: str
    created: str
    current_spec: bool  # runs the service's current container spec

    @classmethod
    def from_inspect(
        cls, task: Mapping[str, Any], service_name: str, current: Mapping[str, Any] | None
    ) -> TaskView:
        status = task.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
        exit_code = container.get("ExitCode")
        return cls(
            id=str(task.get("ID", "")),
            service=service_name,
            slot=int(task.get("Slot") or 0),
            state=str(status.get("State", "")),
            desired=str(task.get("DesiredState", "")),
            error=str(status.get("Err", "") or ""),
            exit_code=int(exit_code) if exit_code is not None else None,
            container_id=str(container.get("ContainerID", "") or ""),
            image=str(spec.get("Image", "")),
            timestamp=str(status.get("Timestamp", "")),
            created=_task_time(task),
            current_spec=current is not None and _same_spec(spec, current),
        )


#: The container-spec fields compared to tell whether a task runs the service's current spec.
#: The engine fills other fields differently in the service and the task copy (DNSConfig,
#: StopGracePeriod, Privileges), so a whole-spec comparison never matches.
SPEC_FIELDS = ("Image", "Env", "Command", "Args", "Labels", "Healthcheck", "Mounts", "User", "Dir")


def _spec_key(spec: Mapping[str, Any]) -> str:
    picked = {k: spec.get(k) for k in SPEC_FIELDS if spec.get(k)}
    if "Env" in picked:
        picked["Env"] = sorted(picked["Env"] or [])
    return json.dumps(picked, sort_keys=True)


def _same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _spec_key(a) == _spec_key(b)


@dataclass(frozen=True)
class ServiceView:
    """One swarm service of the stack: its spec summary, update status and tasks."""

    name: str
    full_name: str
    id: str
    replicas: int
    oneshot: bool
    has_healthcheck: bool
    restart_condition: str
    update_state: str
    update_message: str
    update_started: str
    cpu_limit: float
    memory_limit: int
    mounts: tuple[str, ...]
    tasks: tuple[TaskView, ...]

    @classmethod
    def from_inspect(
        cls, raw: Mapping[str, Any], stack: str, tasks: Sequence[Mapping[str, Any]]
    ) -> ServiceView:
        spec = raw.get("Spec") or {}
        template = spec.get("TaskTemplate") or {}
        container = template.get("ContainerSpec") or {}
        labels = spec.get("Labels") or {}
        update = raw.get("UpdateStatus") or {}
        limits = (template.get("Resources") or {}).get("Limits") or {}
        health = container.get("Healthcheck") or {}
        full = str(spec.get("Name", ""))
        name = _short_name(full, stack)
        own = [t for t in tasks if t.get("ServiceID") == raw.get("ID")]
        return cls(
            name=name,
            full_name=full,
            id=str(raw.get("ID", "")),
            replicas=int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)),
            oneshot=str(labels.get(ONESHOT_LABEL, "")).lower() == "true",
            has_healthcheck=bool(health.get("Test")) and health.get("Test") != ["NONE"],
            restart_condition=str((template.get("RestartPolicy") or {}).get("Condition", "any")),
            update_state=str(update.get("State", "")),
            update_message=str(update.get("Message", "")),
            update_started=str(update.get("StartedAt", "")),
            cpu_limit=int(limits.get("NanoCPUs") or 0) / 1e9,
            memory_limit=int(limits.get("MemoryBytes") or 0),
            mounts=tuple(
                f"{m.get('Source', '')}:{m.get('Target', '')}"
                for m in container.get("Mounts") or []
            ),
            tasks=tuple(
                sorted(
                    (TaskView.from_inspect(t, name, container) for t in own),
                    key=lambda t: (t.slot, t.created, t.id),
                )
            ),
        )

    def slot_tasks(self, slot: int) -> list[TaskView]:
        return [t for t in self.tasks if t.slot == slot]

    def current_task(self, slot: int) -> TaskView | None:
        """The task that speaks for a slot: the newest one meant to run, else the newest."""
        tasks = self.slot_tasks(slot)
        live = [t for t in tasks if t.desired in ("running", "ready", "accepted")]
        pick = live or tasks
        return pick[-1] if pick else None

    @property
    def slots(self) -> list[int]:
        found = sorted({t.slot for t in self.tasks if t.slot})
        return sorted(set(found) | set(range(1, self.replicas + 1)))

    @property
    def running_current(self) -> int:
        """Tasks running the current spec (running means healthy when there is a healthcheck)."""
        return sum(1 for t in self.tasks if t.current_spec and t.state == "running")

    @property
    def failed_current(self) -> list[TaskView]:
        return [t for t in self.tasks if t.current_spec and t.state in FAILED_TASK_STATES]


def read_stack(docker_cmd: Sequence[str], stack: str) -> dict[str, ServiceView]:
    """Every service of the stack with its tasks: four docker calls whatever the size."""
    services = engine_swarm.stack_services(docker_cmd, stack)
    tasks = engine_swarm.service_tasks(docker_cmd, [str(s.get("ID")) for s in services])
    views = (ServiceView.from_inspect(s, stack, tasks) for s in services)
    return {v.name: v for v in views}


def _row_state(task: TaskView | None, view: ServiceView) -> tuple[str, str, int | None]:
    """(state, health, exit code) of a slot in compose's words (see health.derive_status)."""
    if task is None:
        return "missing", "none", None
    if task.state == "running":
        return "running", "healthy" if view.has_healthcheck else "none", None
    if task.state in PENDING_TASK_STATES:
        return "created", "starting" if view.has_healthcheck else "none", None
    if task.state == "complete":
        return "exited", "none", 0
    if task.state in FAILED_TASK_STATES:
        return "exited", "none", task.exit_code if task.exit_code not in (None, 0) else 1
    # shutdown / remove: the slot is being replaced or the service scaled down
    return "exited", "none", task.exit_code


def health_rows(
    views: Mapping[str, ServiceView],
    stack: Stack,
    *,
    wanted: Sequence[str] = (),
    urls: Mapping[str, str] | None = None,
    now: _dt.datetime | None = None,
) -> list[ServiceHealth]:
    """One :class:`ServiceHealth` per replica slot (``name``, ``name-2``, ...), plus a
    ``missing`` row for each active service swarm does not know."""
    from ...health import parse_engine_time

    urls = urls or {}
    now = now or _dt.datetime.now(_dt.UTC)
    names = list(wanted) or sorted(stack.active)
    rows: list[ServiceHealth] = []
    for name in names:
        svc = stack.services.get(name)
        view = views.get(name)
        if view is None:
            rows.append(
                ServiceHealth(
                    service=name,
                    image=svc.image if svc else "",
                    oneshot=bool(svc and svc.oneshot),
                    url=urls.get(name, ""),
                    cpu_limit=svc.limits.cpus if svc else 0.0,
                    memory_limit=svc.limits.memory if svc else 0,
                    restart_policy=svc.restart if svc else "",
                    in_config=svc is not None,
                )
            )
            continue
        for slot in view.slots:
            task = view.current_task(slot)
            state, health, exit_code = _row_state(task, view)
            history = view.slot_tasks(slot)
            failures = [t for t in history if t.state in FAILED_TASK_STATES]
            started = parse_engine_time(task.timestamp) if task and state == "running" else None
            rows.append(
                ServiceHealth(
                    service=name if slot <= 1 else f"{name}-{slot}",
                    container=f"{view.full_name}.{slot}.{task.id}" if task else "",
                    container_id=(task.container_id or task.id) if task else "",
                    state=state,
                    health=health,
                    exit_code=exit_code,
                    restart_count=len(failures),
                    started_at=task.timestamp if task and started else "",
                    uptime_s=(now - started).total_seconds() if started else None,
                    url=urls.get(name, ""),
                    image=task.image if task else "",
                    oneshot=view.oneshot,
                    probes=tuple(
                        HealthProbe(exit_code=t.exit_code or 1, output=t.error, end=t.timestamp)
                        for t in failures[-3:]
                    ),
                    cpu_limit=round(view.cpu_limit, 3),
                    memory_limit=view.memory_limit,
                    volumes=view.mounts,
                    restart_policy=view.restart_condition,
                    in_config=svc is not None,
                )
            )
    return rows


def take_snapshot(
    project: Project, *, resources: bool = False, services: Sequence[str] | None = None
) -> HealthSnapshot:
    """The stack's health as the same :class:`HealthSnapshot` compose health returns.

    Four docker calls whatever the number of services (service ls, service inspect,
    service ps, task inspect). CPU and memory usage are not sampled on swarm (the tasks run
    on many nodes): ``resources`` is accepted for signature compatibility and ignored.
    """
    stack = project.stack
    wanted = list(parse_services(services))
    require_known(wanted, stack.services)
    name = stack_name(project)
    views = read_stack(project.compose.docker_cmd, name)
    now = _dt.datetime.now(_dt.UTC)
    rows = health_rows(views, stack, wanted=wanted, urls=access_urls(project), now=now)

    def order(row: ServiceHealth) -> tuple[int, str]:
        base = row.service if row.service in stack.services else row.service.rsplit("-", 1)[0]
        svc = stack.services.get(base)
        return (svc.layer if svc else 99, row.service)

    return HealthSnapshot(
        environment=project.env.name,
        project=name,
        rows=tuple(sorted(rows, key=order)),
        time=now,
        resources=False,
    )


#: Task states before ``running`` (the container is being prepared or its healthcheck has not
#: passed yet).
PENDING_TASK_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)

FAILED_TASK_STATES = frozenset({"failed", "rejected", "orphaned"})

ROLLBACK_STATES = frozenset({"rollback_started", "rollback_completed", "rollback_paused"})
