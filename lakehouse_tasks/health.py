"""Health of a running stack as data: one :class:`HealthSnapshot` per look, and the
:class:`~lakehouse_tasks.events.Event` transitions between two snapshots.

A snapshot costs a constant number of docker calls whatever the number of services (see
docs/HEALTH.md): one ``docker ps -a`` of the project, one ``docker inspect`` of every
container, and (with ``resources``) one ``docker stats --no-stream`` sample run in a thread
while the inspect runs. The merged compose config is read once per project object.
"""

from __future__ import annotations

import datetime as _dt
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import probes
from .engine import containers
from .engine import stats as engine_stats
from .engine.inspect_cache import InspectCache
from .events import Event, utc_now
from .hooks.manager import get_plugin_manager
from .parsing import parse_names
from .snapshots import HEALTH_LOG_KEEP, HealthProbe, HealthSnapshot, ServiceHealth
from .stack import ONESHOT_LABEL, require_known

if TYPE_CHECKING:
    from .project import Project

SERVICE_LABEL = containers.SERVICE_LABEL
NUMBER_LABEL = "com.docker.compose.container-number"


# ---- parsing docker output ------------------------------------------------------------------
_SIZE_RE = re.compile(r"^\s*([\d.]+)\s*([kmgtp]?i?b)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_stats_size(text: str) -> int | None:
    """Bytes from docker stats' ``1.5MiB`` / ``12kB`` / ``0B``."""
    m = _SIZE_RE.match(text or "")
    if not m:
        return None
    unit = _SIZE_UNITS.get(m.group(2).lower())
    return int(float(m.group(1)) * unit) if unit else None


def parse_percent(text: str) -> float | None:
    try:
        return float(str(text).strip().rstrip("%"))
    except ValueError:
        return None


def parse_engine_time(text: str) -> _dt.datetime | None:
    """An engine timestamp (RFC 3339 with nanoseconds); ``None`` for the zero time."""
    if not text or text.startswith("0001-"):
        return None
    m = re.match(r"^(.*?)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if m:
        frac = (m.group(2) or "")[:7]
        text = f"{m.group(1)}{frac}{'+00:00' if m.group(3) == 'Z' else m.group(3)}"
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def service_health_from_inspect(
    data: Mapping[str, Any],
    *,
    stats: Mapping[str, Any] | None = None,
    url: str = "",
    now: _dt.datetime | None = None,
    in_config: bool = True,
) -> ServiceHealth:
    """A row from one ``docker inspect`` object (and its ``docker stats`` row, if sampled)."""
    config = data.get("Config") or {}
    labels = config.get("Labels") or {}
    state = data.get("State") or {}
    host = data.get("HostConfig") or {}
    health = state.get("Health") or {}
    status = str(state.get("Status", "")) or "created"
    started = parse_engine_time(str(state.get("StartedAt", "")))
    now = now or utc_now()
    uptime = (now - started).total_seconds() if started and status == "running" else None
    probes = tuple(
        HealthProbe(
            exit_code=int(p.get("ExitCode", 0)),
            output=str(p.get("Output", "")).strip(),
            end=str(p.get("End", "")),
        )
        for p in (health.get("Log") or [])[-HEALTH_LOG_KEEP:]
    )
    memory_limit = int(host.get("Memory") or 0)
    nano = int(host.get("NanoCpus") or 0)
    cpu_limit = nano / 1e9 if nano else 0.0
    if not cpu_limit and host.get("CpuQuota") and host.get("CpuPeriod"):
        cpu_limit = int(host["CpuQuota"]) / int(host["CpuPeriod"])
    exit_code = state.get("ExitCode")
    row = ServiceHealth(
        service=_row_key(labels, str(data.get("Name", "")).lstrip("/")),
        container=str(data.get("Name", "")).lstrip("/"),
        container_id=str(data.get("Id", "")),
        state=status,
        health=str(health.get("Status", "none")) or "none",
        exit_code=int(exit_code) if exit_code is not None and status != "running" else None,
        restart_count=int(data.get("RestartCount") or 0),
        started_at=str(state.get("StartedAt", "")) if started else "",
        uptime_s=uptime,
        mem_limit=memory_limit or None,
        url=url,
        image=str(config.get("Image", "")),
        oneshot=str(labels.get(ONESHOT_LABEL, "")).lower() == "true",
        probes=probes,
        cpu_limit=round(cpu_limit, 3),
        memory_limit=memory_limit,
        volumes=tuple(
            str(m.get("Name") or m.get("Source") or "") + ":" + str(m.get("Destination", ""))
            for m in (data.get("Mounts") or [])
        ),
        restart_policy=str((host.get("RestartPolicy") or {}).get("Name", "")) or "no",
        in_config=in_config,
    )
    return with_stats(row, stats) if stats else row


def with_stats(row: ServiceHealth, stats: Mapping[str, Any]) -> ServiceHealth:
    """``row`` with the CPU and memory figures of its ``docker stats`` row or engine API
    sample (the memory limit the container was given, when it has one, wins over the one
    stats reports)."""
    if "cpu_percent" in stats or "mem_used" in stats:
        return replace(
            row,
            cpu_percent=stats.get("cpu_percent"),
            mem_used=stats.get("mem_used"),
            mem_limit=row.memory_limit or stats.get("mem_limit"),
        )
    used, _slash, limit = str(stats.get("MemUsage", "")).partition("/")
    return replace(
        row,
        cpu_percent=parse_percent(str(stats.get("CPUPerc", ""))),
        mem_used=parse_stats_size(used),
        mem_limit=row.memory_limit or parse_stats_size(limit),
    )


def _row_key(labels: Mapping[str, Any], fallback: str) -> str:
    """The service name; a scaled service's second and later replicas get ``-N``."""
    service = str(labels.get(SERVICE_LABEL, "")) or fallback
    number = str(labels.get(NUMBER_LABEL, "1") or "1")
    return service if number == "1" else f"{service}-{number}"


# ---- taking a snapshot ----------------------------------------------------------------------
def take_snapshot(
    project: Project,
    *,
    resources: bool = True,
    services: Sequence[str] | None = None,
    inspect_cache: InspectCache | None = None,
) -> HealthSnapshot:
    """Look at every service of ``project`` once.

    ``inspect_cache`` (``health --watch``) keeps the inspect objects of the previous
    refreshes and asks only for the containers whose state changed
    (:mod:`lakehouse_tasks.engine.inspect_cache`).

    Docker calls: one ``ps -a``, one ``inspect`` and (``resources``) one ``stats --no-stream``
    concurrent with the inspect, whatever the number of services; plus the merged config the
    first time a project object is asked for its stack, unless the copy saved by the last
    ``compose config`` of the same inputs serves (``Project.stack_for_reading``, then there is
    no such call at all). ``services`` limits the rows (an
    unknown name is a :class:`~lakehouse_tasks.errors.ConfigError`).
    """
    # The merged config (one ``compose config``, the slowest call) is read in a thread while
    # ps, stats and inspect run: only the rows need it, and a filter by name validates first.
    loaded: list[Any] = []

    def load_stack() -> None:
        try:
            loaded.append(project.stack_for_reading())
        except BaseException as exc:  # re-raised in the caller's thread
            loaded.append(exc)

    loader = None
    if services:
        wanted = _wanted_services(project.stack_for_reading().active.keys(), services)
    else:
        wanted = []
        loader = threading.Thread(target=load_stack, name="compose-config", daemon=True)
        loader.start()
    docker_cmd = project.compose.docker_cmd
    listed = containers.project_containers(docker_cmd, project.compose.project_name)
    ids = [str(row["ID"]) for row in listed if _row_service(row, wanted)]
    running = [str(row["ID"]) for row in listed if row.get("State") == "running"]
    running = [i for i in running if i in ids]
    # The stats sample (two to three seconds) runs in the background from here on, while the
    # inspect runs and every row is built; once it ends only its figures are added. Leaving
    # the block early (an error, Ctrl-C) stops it.
    with engine_stats.StatsSample(
        docker_cmd, running if resources else (), state_file=_stats_state(project)
    ) as sampler:
        if inspect_cache is None:
            inspected = containers.inspect_containers(docker_cmd, ids)
        else:
            inspected = inspect_cache.inspect(
                listed, ids, lambda ask: containers.inspect_containers(docker_cmd, ask)
            )
        if loader is not None:
            loader.join()
            if isinstance(loaded[0], BaseException):
                raise loaded[0]
        now = utc_now()
        ordered = _rows(project, inspected, wanted, now)
        stats_by_id: dict[str, dict[str, Any]] = {}
        for sample_row in sampler.rows():
            key = str(sample_row.get("ID") or sample_row.get("Container") or "")
            if key:
                stats_by_id[key] = sample_row
    for index, row in enumerate(ordered):
        cid = row.container_id
        sampled = stats_by_id.get(cid) or stats_by_id.get(cid[:12]) if cid else None
        if sampled:
            ordered[index] = with_stats(row, sampled)
    return HealthSnapshot(
        environment=project.env.name,
        project=project.compose.project_name,
        rows=tuple(ordered),
        time=now,
        resources=resources,
    )


def _stats_state(project: Project) -> Path | None:
    """Where the last stats sample of the project is kept (the next snapshot's CPU baseline)."""
    try:
        from .paths import state_dir

        return state_dir(project.env.root) / "stats" / f"{project.compose.project_name}.json"
    except (OSError, AttributeError):
        return None


def _rows(
    project: Project,
    inspected: Sequence[Mapping[str, Any]],
    wanted: Sequence[str],
    now: _dt.datetime,
) -> list[ServiceHealth]:
    """One row per inspected container of the wanted services (every service when none is
    named), one per configured service without a container, in layer order."""
    stack = project.stack_for_reading()
    urls = access_urls(project)
    own = probes.passed(project)
    rows: dict[str, ServiceHealth] = {}
    base: dict[str, str] = {}  # row key -> service name (replicas share one)
    for data in inspected:
        labels = (data.get("Config") or {}).get("Labels") or {}
        service = str(labels.get(SERVICE_LABEL, ""))
        if wanted and service not in wanted:
            continue
        row = service_health_from_inspect(
            data,
            url=urls.get(service, ""),
            now=now,
            in_config=service in stack.services,
        )
        if (
            row.state == "running"
            and row.health == "starting"
            and row.started_at
            and own.get(row.container_id) == row.started_at
        ):
            row = replace(row, health="healthy", own_probe=True)
        rows[row.service] = row
        base[row.service] = service
    present = set(base.values())
    for name in wanted or sorted(stack.active):
        if name not in present:
            svc = stack.active[name]
            rows[name] = ServiceHealth(
                service=name,
                image=svc.image,
                oneshot=svc.oneshot,
                url=urls.get(name, ""),
                cpu_limit=svc.limits.cpus,
                memory_limit=svc.limits.memory,
                restart_policy=svc.restart,
            )
            base[name] = name

    def order(row: ServiceHealth) -> tuple[int, str, str]:
        svc = stack.services.get(base[row.service])
        return (svc.layer if svc else 99, base[row.service], row.service)

    return sorted(rows.values(), key=order)


def _wanted_services(known: Any, services: Sequence[str] | None) -> list[str]:
    names = list(parse_names(services))
    require_known(names, known)
    return names


def _row_service(row: Mapping[str, Any], wanted: list[str]) -> bool:
    if not wanted:
        return True
    labels = containers._ps_labels(str(row.get("Labels", "")))
    return labels.get(SERVICE_LABEL, "") in wanted


def access_urls(project: Project) -> dict[str, str]:
    """Service name -> URL from the plugins' ``access_urls`` (empty without plugins)."""
    try:
        found = get_plugin_manager().access_urls(env=project.env)
    except Exception:  # a broken plugin must not hide the stack's health
        return {}
    urls: dict[str, str] = {}
    for item in found or []:
        name = str(getattr(item, "service", "") or getattr(item, "name", ""))
        url = str(getattr(item, "url", ""))
        if name and url:
            urls.setdefault(name, url)
    return urls


def publish(project: Project, snapshot: HealthSnapshot, events: Sequence[Event]) -> None:
    """Hand a snapshot and its events to the plugins (``health_snapshot`` and ``emit``)."""
    manager = get_plugin_manager()
    manager.health_snapshot(project=project, snapshot=snapshot)
    for event in events:
        manager.emit(event, env=project.env)


# ---- transitions ----------------------------------------------------------------------------


# ---- rendering ------------------------------------------------------------------------------
