"""The health table, rendered at the edge (``tasks/health.py``, the deploy view): rows as plain data (``health_rows``) and the rich/plain/JSON table (``render_health_table``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .snapshots import HealthSnapshot, ServiceHealth
from .ui import Table, human_bytes, human_duration

if TYPE_CHECKING:
    pass


def _usage(used: int | None, limit: int | None) -> str:
    if used is None:
        return "-"
    return f"{human_bytes(used)} / {human_bytes(limit)}" if limit else human_bytes(used)


def health_rows(snapshot: HealthSnapshot, *, detailed: bool = False) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
    for r in snapshot.rows:
        row: dict[str, Any] = {
            "service": r.service + (" (one-shot)" if r.oneshot else ""),
            "status": r.status,
            "state": r.state,
            "restarts": r.restart_count if r.state != "missing" else None,
            "uptime": human_duration(r.uptime_s),
            "cpu": "-" if r.cpu_percent is None else f"{r.cpu_percent:.1f}%",
            "memory": _usage(r.mem_used, r.mem_limit),
            "url": r.url or None,
        }
        if detailed:
            row.update(
                {
                    "image": r.image or None,
                    "container_id": r.container_id[:12] or None,
                    "limits": _limits_vs_usage(r),
                    "volumes": list(r.volumes),
                    "restart_policy": r.restart_policy or None,
                    "probes": " | ".join(
                        f"[{p.exit_code}] {p.output.splitlines()[-1] if p.output else ''}".strip()
                        for p in r.probes
                    )
                    or None,
                }
            )
        rows.append(row)
    return rows


def _limits_vs_usage(r: ServiceHealth) -> str:
    cpu = f"cpu {r.cpu_percent or 0:.1f}% of {r.cpu_limit:g}" if r.cpu_limit else "cpu unlimited"
    if r.memory_limit:
        pct = (r.mem_used or 0) * 100 / r.memory_limit
        mem = f"mem {pct:.0f}% of {human_bytes(r.memory_limit)}"
    else:
        mem = "mem unlimited"
    return f"{cpu}, {mem}"


def render_health_table(snapshot: HealthSnapshot, *, detailed: bool = False) -> Table:
    columns = [
        ("service", "Service"),
        ("status", "Status"),
        ("restarts", "Restarts"),
        ("uptime", "Uptime"),
        ("cpu", "CPU"),
        ("memory", "Memory used / limit"),
        ("url", "URL"),
    ]
    if detailed:
        columns += [
            ("image", "Image"),
            ("container_id", "Container"),
            ("limits", "Limits vs usage"),
            ("volumes", "Volumes"),
            ("restart_policy", "Restart"),
            ("probes", "Last healthchecks"),
        ]
    stamp = snapshot.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return Table(
        columns=columns,
        rows=health_rows(snapshot, detailed=detailed),
        title=f"Health of {snapshot.environment} ({snapshot.project}) at {stamp}",
        caption=f"{snapshot.summary}" + ("" if snapshot.ok else " - DEGRADED"),
        status_column="status",
    )
