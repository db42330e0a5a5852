"""``config`` and ``plan``: the merged compose configuration and what it asks of the host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import default_env, lakehouse_task, project_from_flags

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..stack import Stack


@lakehouse_task(name="config")
def config_(
    c: Any,
    env: str | None = None,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Print the fully merged compose configuration of an environment (secrets masked)."""
    import yaml

    from ..engine.compose import mask_secrets
    from ..ui import Output

    project = project_from_flags(env, rehearsal, env_file, strict=False)
    masked = mask_secrets(project.compose.config(), project.env)
    out = Output(json_mode=json_)
    if json_:
        out.json(masked)
    else:
        out.stdout.write(yaml.safe_dump(masked, sort_keys=False, width=100))
    for warning in project.env.warnings:
        out.warn(warning)


def plan_data(stack: Stack) -> dict[str, Any]:
    """Per-service and total resources, ports, volumes and the startup layers."""
    from ..stack import LAYER_NAMES

    services = []
    for name, svc in sorted(stack.services.items(), key=lambda kv: (kv[1].layer, kv[0])):
        services.append(
            {
                "service": name,
                "layer": svc.layer,
                "layer_name": svc.layer_name,
                "kind": "one-shot" if svc.oneshot else "service",
                "replicas": svc.replicas,
                "image": svc.image,
                "cpu_limit": svc.limits.cpus,
                "memory_limit": svc.limits.memory,
                "cpu_reservation": svc.reservations.cpus,
                "memory_reservation": svc.reservations.memory,
                "ports": [str(p) for p in svc.ports],
                "volumes": list(svc.volumes),
                "restart": svc.restart,
            }
        )
    totals = stack.totals()
    return {
        "services": services,
        "totals": {
            "cpu_limit": totals["limits"].cpus,
            "memory_limit": totals["limits"].memory,
            "cpu_reservation": totals["reservations"].cpus,
            "memory_reservation": totals["reservations"].memory,
            "services": len(stack.active),
        },
        "layers": {
            f"{n} {LAYER_NAMES.get(n, '')}".strip(): names
            for n, names in stack.labelled_layers().items()
        },
        "start_waves": stack.startup_layers(),
        "volumes": dict(stack.volumes),
        "config_hash": stack.config_hash,
    }


@lakehouse_task
def plan(
    c: Any,
    env: str | None = None,
    json_: bool = False,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Print per-service and total CPU/memory, ports, volumes and startup layers."""
    from ..ui import Output, Table, human_bytes

    name = default_env(env)
    project = project_from_flags(env, rehearsal, env_file, strict=False)
    data = plan_data(project.stack)
    out = Output(json_mode=json_)
    if json_:
        out.json({"environment": name, **data})
        return
    rows = []
    for s in data["services"]:
        rows.append(
            {
                **s,
                "service": s["service"] + ("" if s["replicas"] else " (off)"),
                "layer": f"{s['layer']} {s['layer_name']}",
                "cpu": f"{s['cpu_reservation']:g} / {s['cpu_limit']:g}",
                "memory": f"{human_bytes(s['memory_reservation'])} / {human_bytes(s['memory_limit'])}",
                "ports": ", ".join(s["ports"]) or "-",
            }
        )
    t = data["totals"]
    out.table(
        Table(
            columns=[
                ("layer", "Layer"),
                ("service", "Service"),
                ("kind", "Kind"),
                ("cpu", "CPU res / limit"),
                ("memory", "Memory res / limit"),
                ("ports", "Published"),
                ("volumes", "Volumes"),
            ],
            rows=rows,
            title=f"Plan for {name} ({t['services']} services)",
            caption=(
                f"Total: CPU {t['cpu_reservation']:g} reserved / {t['cpu_limit']:g} limit, "
                f"memory {human_bytes(t['memory_reservation'])} reserved / "
                f"{human_bytes(t['memory_limit'])} limit"
            ),
        )
    )
    out.line("Startup layers:")
    for layer, names in data["layers"].items():
        out.line(f"  {layer}: {', '.join(names)}")
