"""What ``deploy --dry-run`` shows on compose: the services in start-up order, what each would do, the images to pull; nothing is changed."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...outcomes import (
    DeployOptions,
)
from ...stack import with_dependencies
from .deploy import missing_images, up_arguments
from .layers import create_arguments

if TYPE_CHECKING:
    from ...project import Project


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


def plan_deploy(project: Project, options: DeployOptions) -> DeployPlan:
    """The plan of a deploy: reads the merged config (and which built images exist) only."""
    stack = project.stack
    services = with_dependencies(stack, options.services)
    requested = list(options.services)
    args = create_arguments(
        up_arguments(
            stack, requested, pull=options.pull, missing_images=missing_images(stack, services)
        )
    )
    compose_cmd = shlex.join(str(a) for a in [*project.compose.compose_cmd, *args])
    layers = [tuple(n for n in layer if n in services) for layer in stack.startup_layers()]
    steps = [
        "skip preflight (--skip-preflight)" if options.skip_preflight else "preflight checks",
        "ask plugins (pre_deploy)",
        "skip backup (--skip-backup)"
        if options.skip_backup
        else "back up first when the stack already holds data",
        f"create: {compose_cmd}",
        "start each service with docker start once its dependencies pass their own"
        " healthchecks (run at once with docker exec) or, for one-shots, exited 0",
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
