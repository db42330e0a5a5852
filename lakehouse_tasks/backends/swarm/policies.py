"""How swarm replaces and restarts a service: restart, update and rollback policies, stateful services pinned to storage nodes, and the options a deploy gives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...stack import Service

if TYPE_CHECKING:
    from ...project import Project


#: The node label that marks nodes allowed to hold the stateful services' local volumes.
STORAGE_NODE_LABEL = "lakehouse.storage"

STORAGE_CONSTRAINT = f"node.labels.{STORAGE_NODE_LABEL} == true"

#: Services owning data in local volumes: stop-first updates (two writers on one data directory
#: would corrupt it) and placement on storage nodes. A service can join with the label
#: ``io.lakehouse.stateful: "true"``.
STATEFUL_SERVICES = frozenset(
    {"minio", "metastore-db", "superset-db", "airflow-db", "hive-metastore"}
)

STATEFUL_LABEL = "io.lakehouse.stateful"

#: update_config.monitor: how long swarm watches a new task before calling the update good.
MONITOR = "30s"

REHEARSAL_MONITOR = "10s"


@dataclass(frozen=True)
class SwarmOptions:
    """How the stack file is generated and deployed."""

    monitor: str = MONITOR
    #: Label the node we talk to as a storage node (single-node swarms, rehearsal).
    label_node: bool = False
    #: Deliver credentials as swarm secrets (prod).
    secrets: bool = False
    #: Keep resource reservations; a rehearsal on a 2-core machine cannot hold the real ones
    #: (swarm refuses to schedule a task whose reservation no node can satisfy).
    reservations: bool = True


def options_for(project: Project, *, label_node: bool = False) -> SwarmOptions:
    """The options of an environment: secrets in prod; a shorter monitor window, a labelled
    node and no reservations in rehearsal."""
    return SwarmOptions(
        monitor=REHEARSAL_MONITOR if project.rehearsal else MONITOR,
        label_node=label_node or project.rehearsal,
        secrets=project.env.name == "prod",
        reservations=not project.rehearsal,
    )


def is_stateful(service: Service) -> bool:
    return (
        service.name in STATEFUL_SERVICES
        or str(service.labels.get(STATEFUL_LABEL, "")).lower() == "true"
    )


def restart_policy(restart: str, *, oneshot: bool) -> dict[str, Any]:
    """compose ``restart:`` as swarm's ``deploy.restart_policy``.

    ``no`` -> none, ``always``/``unless-stopped`` -> any, ``on-failure[:N]`` -> on-failure
    (max_attempts N). A one-shot is never restarted once it completed: condition none
    whatever the environment says (it would otherwise run again and again).
    """
    if oneshot:
        return {"condition": "none"}
    name, _sep, attempts = (restart or "no").partition(":")
    name = name.strip().lower()
    if name in ("no", "", "none"):
        return {"condition": "none"}
    if name in ("always", "unless-stopped", "any"):
        return {"condition": "any", "delay": "5s"}
    if name == "on-failure":
        policy: dict[str, Any] = {"condition": "on-failure", "delay": "5s"}
        if attempts.strip().isdigit():
            policy["max_attempts"] = int(attempts)
        return policy
    raise ConfigError(
        f"Restart policy {restart!r} has no swarm equivalent; use no, always, unless-stopped "
        "or on-failure (RESTART_POLICY)."
    )


def update_order(service: Service) -> str:
    """start-first for stateless services (no gap), stop-first for stateful ones and
    one-shots (two containers must not share one data directory)."""
    return "stop-first" if is_stateful(service) or service.oneshot else "start-first"


def update_config(service: Service, options: SwarmOptions) -> dict[str, Any]:
    return {
        "parallelism": 1,
        "delay": "0s",
        "order": update_order(service),
        "failure_action": "rollback",
        "monitor": options.monitor,
        "max_failure_ratio": 0,
    }


def rollback_config(service: Service, options: SwarmOptions) -> dict[str, Any]:
    return {
        "parallelism": 1,
        "delay": "0s",
        "order": update_order(service),
        "failure_action": "pause",
        "monitor": options.monitor,
        "max_failure_ratio": 0,
    }
