"""What a swarm deploy needs before its first step: a manager to talk to, a storage node, the images on the node, and (``check_ready``) all of these as one list of problems."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ...engine import client
from ...engine import containers as engine_containers
from ...engine import swarm as engine_swarm
from ...errors import ExitCode, LakehouseError
from ...stack import parse_services, with_dependencies
from .policies import STORAGE_NODE_LABEL
from .translate import stack_name
from .views import read_stack

if TYPE_CHECKING:
    from ...project import Project


def require_swarm_manager(docker_cmd: Sequence[str]) -> None:
    state, manager = engine_swarm.swarm_state(docker_cmd)
    if state != "active" or not manager:
        raise LakehouseError(
            "This Docker engine is not a swarm manager (swarm state "
            f"{state!r}); run `docker swarm init` here, or point DOCKER_HOST at a manager.",
            ExitCode.ENGINE_UNREACHABLE,
        )


def ensure_storage_node(docker_cmd: Sequence[str], *, label_node: bool) -> str:
    """Make sure some node may hold the stateful services; label this one when asked."""
    nodes = engine_swarm.swarm_nodes(docker_cmd)
    labelled = [
        n
        for n in nodes
        if str(((n.get("Spec") or {}).get("Labels") or {}).get(STORAGE_NODE_LABEL)) == "true"
    ]
    if labelled:
        return f"storage nodes: {', '.join(str((n.get('Description') or {}).get('Hostname', n.get('ID'))) for n in labelled)}"
    if not label_node:
        raise LakehouseError(
            f"No swarm node carries the label {STORAGE_NODE_LABEL}=true, so the stateful "
            "services (databases, MinIO, Hive) cannot be placed; run `docker node update "
            f"--label-add {STORAGE_NODE_LABEL}=true NODE` on the node that holds their volumes, "
            "or pass --label-node to label this one.",
            ExitCode.DEPLOY_FAILED,
        )
    engine_swarm.label_node(docker_cmd, f"{STORAGE_NODE_LABEL}=true")
    return f"labelled this node {STORAGE_NODE_LABEL}=true"


def missing_images(docker_cmd: Sequence[str], images: Iterable[str]) -> list[str]:
    """Images not on this node (``--resolve-image never``: nothing is pulled)."""
    present = client.Engine().image_ids(images) if docker_cmd else {}
    return sorted(ref for ref, ident in present.items() if ident is None)


def check_ready(project: Project, services: Sequence[str]) -> list[str]:
    """What must hold before anything is checked or changed: a swarm manager, no compose
    project of the environment on this host, and every image on this node. Returns the
    services the deploy changes (:func:`deploy_targets`)."""
    env = project.env
    docker_cmd = project.compose.docker_cmd
    require_swarm_manager(docker_cmd)
    if engine_containers.project_containers(docker_cmd, project.compose.project_name):
        raise LakehouseError(
            f"{env.name} is running under compose on this host (project "
            f"{project.compose.project_name}); tear it down first (`invoke teardown --env "
            f"{env.name}`) or deploy the stack under another COMPOSE_PROJECT_NAME.",
            ExitCode.DEPLOY_FAILED,
        )
    stack = project.stack
    targets, _update_only = deploy_targets(project, services)
    missing = missing_images(docker_cmd, {stack.services[n].image for n in targets})
    if missing:
        raise LakehouseError(
            f"These images are not on this node: {', '.join(missing)}; build or load them "
            "(docker stack deploy runs with --resolve-image never), then deploy again.",
            ExitCode.DEPLOY_FAILED,
        )
    return targets


def deploy_targets(project: Project, services: Sequence[str]) -> tuple[list[str], bool]:
    """(the services a deploy changes, whether it is an update of a live stack).

    Without ``services``: every active service. With ``services`` on a stack that exists: a
    rolling update of just those (swarm leaves the others alone); on a new stack, those
    services and what they depend on."""
    requested = list(parse_services(services))
    existing = read_stack(project.compose.docker_cmd, stack_name(project))
    update_only = bool(requested) and bool(existing)
    return (requested if update_only else with_dependencies(project.stack, requested)), update_only
