"""The status report the page, the JSON API and ``/metrics`` share, built from the data the
terminal tasks already own.

Each section is read through the module that writes it: the health snapshot
(:mod:`lakehouse_tasks.health`), the deploy history and the audit log (who deployed, how long it
took), the lock, the local backups with their verify records, the backup schedule, the
plugins and the event log. Sections whose producer has not run yet (no smoke check, no off-site
copy, no restore drill) say so in words instead of being left out, so a reader can tell "never
ran" from "broken". A section that cannot be read carries its one-line error and the others
still show.

No secret reaches a report: healthcheck outputs and container environments are never copied,
and every free-text string of the finished report (messages, errors, commands, URLs) goes
through the environment's ``scrub`` as a last line of defence (tests check the page and the API against the environment's secret values).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import utc_now
from .sections import (
    NO_SMOKE,
    backups_section,
    deploys_section,
    events_section,
    lock_section,
    parse_time,
    plugins_section,
    smoke_section,
)

if TYPE_CHECKING:
    from ..environment import Environment
    from ..project import Project
    from ..snapshots import HealthSnapshot


@dataclass
class StatusReport:
    """Every section of one environment's status at one moment (JSON-able dicts)."""

    environment: str
    project: str
    time: _dt.datetime
    health: dict[str, Any]
    slow: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Any] = field(default_factory=dict)
    refresh_s: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "project": self.project,
            "time": self.time.isoformat(),
            "refresh_s": self.refresh_s,
            "health": self.health,
            **self.slow,
            "plots": self.plots,
        }


# ---- health ----------------------------------------------------------------------------------
def urls_by_service(project: Project) -> dict[str, str]:
    """Service -> access URL: the plugins' ``access_urls`` name interfaces ("MinIO console"),
    not services, so each URL goes to the service that publishes its port."""
    from urllib.parse import urlsplit

    from ..hooks.manager import get_plugin_manager

    try:
        found = get_plugin_manager().access_urls(env=project.env) or []
        stack = project.stack_for_reading()
    except Exception:  # a broken plugin or config must not hide the health table
        return {}
    by_port = {p.published: name for name, svc in stack.active.items() for p in svc.ports}
    urls: dict[str, str] = {}
    for item in found:
        url = str(getattr(item, "url", ""))
        try:
            port = urlsplit(url).port
        except ValueError:
            continue
        service = by_port.get(port or 0) or str(getattr(item, "service", "") or "")
        if service and url:
            urls.setdefault(service, url)
    return urls


def health_section(
    snapshot: HealthSnapshot, urls: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The health table's rows, without what may hold a secret (healthcheck outputs)."""
    from ..units import human_bytes, human_duration

    urls = urls or {}
    rows = []
    for r in snapshot.rows:
        rows.append(
            {
                "service": r.service,
                "oneshot": r.oneshot,
                "status": r.status,
                "ok": r.ok,
                "state": r.state,
                "health": r.health,
                "restarts": r.restart_count if r.state != "missing" else None,
                "uptime_s": r.uptime_s,
                "uptime": human_duration(r.uptime_s),
                "cpu_percent": r.cpu_percent,
                "mem_used": r.mem_used,
                "mem_limit": r.mem_limit,
                "memory": "-"
                if r.mem_used is None
                else (
                    f"{human_bytes(r.mem_used)} / {human_bytes(r.mem_limit)}"
                    if r.mem_limit
                    else human_bytes(r.mem_used)
                ),
                "url": r.url or urls.get(r.service, ""),
                "image": r.image,
            }
        )
    return {
        "time": snapshot.time.isoformat(),
        "ok": snapshot.ok,
        "healthy": snapshot.healthy,
        "total": snapshot.total,
        "summary": snapshot.summary,
        "services": rows,
    }


# ---- deploys ---------------------------------------------------------------------------------


# ---- lock ------------------------------------------------------------------------------------


# ---- backups ---------------------------------------------------------------------------------


# ---- smoke -----------------------------------------------------------------------------------


# ---- plugins and events ----------------------------------------------------------------------


# ---- the whole report --------------------------------------------------------------------------
def guarded(name: str, read: Callable[[], Any], fallback: Any) -> tuple[Any, str | None]:
    """``read()``, or ``fallback`` and a one-line error: one broken source never blanks the page."""
    try:
        return read(), None
    except Exception as exc:
        return fallback, f"{name}: {exc}"


def slow_sections(project: Project, now: _dt.datetime | None = None) -> dict[str, Any]:
    """The sections that change only when a task runs (read every few refreshes)."""
    env = project.env
    root = env.root
    now = now or utc_now()
    errors: list[str] = []
    sections: dict[str, Any] = {}
    for name, read, fallback in (
        ("deploys", lambda: deploys_section(root, env.name)["deploys"], []),
        ("lock", lambda: lock_section(root, env.name), {"state": "unknown", "held": False}),
        ("backups", lambda: backups_section(env, now), {}),
        ("smoke", lambda: smoke_section(env), {"last": None, "message": NO_SMOKE}),
        ("plugins", plugins_section, []),
        ("events", lambda: events_section(root, env.name, now), []),
    ):
        value, error = guarded(name, read, fallback)
        sections[name] = value
        if error:
            errors.append(error)
    sections["errors"] = errors
    return sections


def plot_series(samples: Sequence[Mapping[str, Any]], slow: Mapping[str, Any]) -> dict[str, Any]:
    """The plots' data: CPU and memory per service over the kept samples, backup size and
    duration over the last runs (oldest first), deploy durations."""
    cpu: dict[str, list[list[float]]] = {}
    memory: dict[str, list[list[float]]] = {}
    for sample in samples:
        t = float(sample.get("t", 0))
        for service, (cpu_percent, mem_used) in (sample.get("services") or {}).items():
            if cpu_percent is not None:
                cpu.setdefault(service, []).append([t, float(cpu_percent)])
            if mem_used is not None:
                memory.setdefault(service, []).append([t, float(mem_used) / 1024**2])
    local = list(reversed((slow.get("backups") or {}).get("local") or []))
    deploys = [d for d in reversed(slow.get("deploys") or []) if d.get("duration_s") is not None]

    def stamp(text: str) -> float:
        at = parse_time(text)
        return at.timestamp() if at else 0.0

    return {
        "cpu": cpu,
        "memory_mib": memory,
        "backup_size_mib": [[stamp(b["time"]), b["size"] / 1024**2] for b in local],
        "backup_duration_s": [[stamp(b["time"]), b["duration_s"]] for b in local],
        "deploy_duration_s": [[stamp(d["time"]), d["duration_s"]] for d in deploys],
    }


#: The keys whose values are free text (messages, errors, commands, URLs): the only places a
#: secret could ride along. Names, ids, images and statuses are kept as they are, because dev's
#: placeholder secrets are ordinary words ("minio", "airflow") that also name services.
FREE_TEXT_KEYS = frozenset({"message", "error", "errors", "detail", "command", "url"})


def scrub_strings(value: Any, scrub: Callable[[str], str], *, free_text: bool = False) -> Any:
    """``value`` with ``scrub`` applied to every string under a :data:`FREE_TEXT_KEYS` key."""
    if isinstance(value, str):
        return scrub(value) if free_text else value
    if isinstance(value, Mapping):
        return {
            k: scrub_strings(v, scrub, free_text=free_text or k in FREE_TEXT_KEYS)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_strings(v, scrub, free_text=free_text) for v in value]
    return value


def build_report(
    project: Project,
    snapshot: HealthSnapshot,
    slow: Mapping[str, Any],
    samples: Iterable[Mapping[str, Any]],
    *,
    refresh_s: float,
    urls: Mapping[str, str] | None = None,
) -> StatusReport:
    report = StatusReport(
        environment=project.env.name,
        project=project.compose.project_name,
        time=snapshot.time,
        health=health_section(snapshot, urls),
        slow=dict(slow),
        plots=plot_series(list(samples), slow),
        refresh_s=refresh_s,
    )
    return report


def report_document(report: StatusReport, env: Environment) -> dict[str, Any]:
    """The report as the API serves it: JSON-able and scrubbed of every secret value."""
    from ..masking import Scrubber
    from ..ui import to_jsonable

    scrub = Scrubber(env.secret_values)  # sorted once per report, not once per string
    doc = to_jsonable(report.to_dict())
    plots = doc.pop("plots", {})  # numbers and service names only
    scrubbed: dict[str, Any] = scrub_strings(doc, scrub)
    scrubbed["plots"] = plots
    return scrubbed
