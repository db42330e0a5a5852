"""Swarm nouns: node, stack, service, task, secret (the second deploy backend's engine calls).

A stack's services, tasks, networks and containers are found by the label ``docker stack
deploy`` puts on everything it creates. Each query below is a constant number of docker calls
whatever the number of services.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import EngineError
from . import executor
from .client import Engine

STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"
#: Label the tool puts on the swarm secrets it creates (external to the stack file).
SECRET_STACK_LABEL = "io.lakehouse.stack"


def swarm_state(docker_cmd: Sequence[str]) -> tuple[str, bool]:
    """``(LocalNodeState, ControlAvailable)`` of the engine: ``("active", True)`` on a manager."""
    out = executor.run([*docker_cmd, "info", "--format", "{{json .Swarm}}"])
    data = json.loads(out or "{}") or {}
    return str(data.get("LocalNodeState", "inactive")), bool(data.get("ControlAvailable"))


def swarm_init(docker_cmd: Sequence[str], *, advertise_addr: str = "127.0.0.1") -> None:
    """Make this engine a single-node swarm manager (``docker swarm init``)."""
    Engine(docker_cmd=docker_cmd).whales(
        ["swarm", "init", "--advertise-addr", advertise_addr],
        lambda c: c.swarm.init(advertise_address=advertise_addr),
        what="swarm init",
    )


def swarm_leave(docker_cmd: Sequence[str]) -> None:
    """Leave the swarm (``--force``: also the last manager); a no-op outside a swarm."""
    try:
        Engine(docker_cmd=docker_cmd).whales(
            ["swarm", "leave", "--force"], lambda c: c.swarm.leave(force=True), what="swarm leave"
        )
    except EngineError as exc:
        if "not part of a swarm" not in exc.stderr:
            raise


def swarm_nodes(docker_cmd: Sequence[str]) -> list[dict[str, Any]]:
    """``docker node inspect`` of every node: two calls (ls, inspect)."""
    ids = executor.run([*docker_cmd, "node", "ls", "-q"], what="docker node ls").split()
    if not ids:
        return []
    data = json.loads(
        executor.run([*docker_cmd, "node", "inspect", *ids], what="docker node inspect")
    )
    return list(data) if isinstance(data, list) else []


def label_node(docker_cmd: Sequence[str], label: str, *, node: str = "") -> None:
    """Add ``label`` (``key=value``) to a node's labels (default: the node we talk to;
    ``docker node update`` does not accept ``self``, so its id is asked first)."""
    if not node:
        node = executor.run([*docker_cmd, "info", "--format", "{{.Swarm.NodeID}}"]).strip()
    key, _sep, value = label.partition("=")
    Engine(docker_cmd=docker_cmd).whales(
        ["node", "update", "--label-add", label, node],
        lambda c: c.node.update(node, labels_add={key: value}),
        what="docker node update",
    )


def stack_deploy(
    docker_cmd: Sequence[str], stack: str, compose_file: Path, *, prune: bool, scrub: Any = None
) -> str:
    """``docker stack deploy`` of a generated stack file; images are never resolved remotely
    (no registry: the images must already be on the nodes)."""
    args = [*docker_cmd, "stack", "deploy", "--compose-file", str(compose_file)]
    args += ["--resolve-image", "never"]
    if prune:
        args.append("--prune")
    return executor.run([*args, stack], scrub=scrub, what="docker stack deploy")


def stack_rm(
    docker_cmd: Sequence[str],
    stack: str,
    *,
    attempts: int = 30,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """``docker stack rm`` (returns at once; the engine removes tasks in the background).

    The CLI removes the services, then the networks, and fails when a network is still
    attached to a task that is shutting down ("is in use by task"); the command is repeated
    (it removes what is left) until the networks go, at most ``attempts`` times a second apart.
    """
    for attempt in range(attempts):
        try:
            Engine(docker_cmd=docker_cmd).whales(
                ["stack", "rm", stack], lambda c: c.stack.remove(stack), what="docker stack rm"
            )
            return
        except EngineError as exc:
            if "in use by task" not in exc.stderr or attempt == attempts - 1:
                raise
        sleep(1.0)


def stack_services(docker_cmd: Sequence[str], stack: str) -> list[dict[str, Any]]:
    """``docker service inspect`` of every service of a stack: two calls (ls, inspect)."""
    ids = executor.run(
        [
            *docker_cmd,
            "service",
            "ls",
            "-q",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
        ],
        what="docker service ls",
    ).split()
    if not ids:
        return []
    try:
        out = executor.run([*docker_cmd, "service", "inspect", *ids], what="docker service inspect")
    except EngineError as exc:
        if "no such service" not in exc.stderr.lower():
            raise
        return []  # removed between ls and inspect: the caller polls again
    return executor.json_list(out)


def service_tasks(docker_cmd: Sequence[str], service_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every task (with its history) of these services, inspected: two calls (ps, inspect)."""
    if not service_ids:
        return []
    try:
        ids = executor.run(
            [*docker_cmd, "service", "ps", "-q", "--no-trunc", *service_ids],
            what="docker service ps",
        ).split()
    except EngineError as exc:
        if "no such service" not in exc.stderr.lower():
            raise
        return []
    ids = list(dict.fromkeys(ids))
    if not ids:
        return []
    try:
        out = executor.run([*docker_cmd, "inspect", "--type", "task", *ids], what="docker inspect")
    except EngineError as exc:
        # Swarm prunes old tasks between `service ps` and `inspect` while it updates or
        # scales: the caller polls again.
        low = exc.stderr.lower()
        if "no such" not in low and "not found" not in low:
            raise
        return []
    return executor.json_list(out)


def stack_networks(docker_cmd: Sequence[str], stack: str) -> list[str]:
    """Names of the networks a stack created: one call."""
    out = executor.run(
        [
            *docker_cmd,
            "network",
            "ls",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
            "--format",
            "{{.Name}}",
        ]
    )
    return sorted(out.split())


def stack_containers(docker_cmd: Sequence[str], stack: str) -> list[str]:
    """Names of the stack's containers on the node we talk to (running or not): one call."""
    out = executor.run(
        [
            *docker_cmd,
            "ps",
            "-a",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
            "--format",
            "{{.Names}}",
        ]
    )
    return sorted(out.split())


def service_logs(
    docker_cmd: Sequence[str], service: str, *, tail: int = 30, scrub: Any = None
) -> str:
    """The last log lines of a swarm service (all its tasks), "" when unavailable."""
    try:
        out = executor.run(
            [*docker_cmd, "service", "logs", "--no-task-ids", "--tail", str(tail), service],
            scrub=scrub,
        )
    except EngineError as exc:
        return exc.stderr
    return scrub(out) if scrub is not None else out


def stack_secrets(docker_cmd: Sequence[str], stack: str) -> list[str]:
    """Names of the swarm secrets the tool created for a stack: one call."""
    out = executor.run(
        [
            *docker_cmd,
            "secret",
            "ls",
            "--filter",
            f"label={SECRET_STACK_LABEL}={stack}",
            "--format",
            "{{.Name}}",
        ]
    )
    return sorted(out.split())


def create_secret(docker_cmd: Sequence[str], stack: str, name: str, value: str) -> None:
    """Create one swarm secret holding ``value`` (never in argv, never on disk).

    Through python-on-whales' typed ``secret.create``, which takes the value as a file: the
    file is an in-memory one (``memfd_create``) that the docker CLI opens as
    ``/proc/<this process>/fd/<n>``. Where the system has no in-memory files (not Linux),
    the CLI reads the value on its stdin instead (``secret create ... -``)."""
    labels = {SECRET_STACK_LABEL: stack}

    def scrub(text: str) -> str:
        return text.replace(value, "********") if value else text

    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None:
        executor.run(
            [
                *docker_cmd,
                "secret",
                "create",
                "--label",
                f"{SECRET_STACK_LABEL}={stack}",
                name,
                "-",
            ],
            input=value.encode(),
            scrub=scrub,
            what="docker secret create",
        )
        return
    fd = memfd_create(f"secret-{name}", 0)  # no MFD_CLOEXEC needed: the CLI opens the path
    try:
        os.write(fd, value.encode())
        path = f"/proc/{os.getpid()}/fd/{fd}"
        Engine(docker_cmd=docker_cmd).whales(
            ["secret", "create", "--label", f"{SECRET_STACK_LABEL}={stack}", name, path],
            lambda c: c.secret.create(name, path, labels=labels),
            what="docker secret create",
            scrub=scrub,
        )
    finally:
        os.close(fd)


def remove_secrets(docker_cmd: Sequence[str], names: Sequence[str]) -> list[str]:
    """Remove secrets; those still used by a service are kept and returned."""
    kept: list[str] = []
    for name in names:
        try:
            _remove_secret(docker_cmd, name)
        except EngineError as exc:
            if "in use" not in exc.stderr:
                raise
            kept.append(name)
    return kept


def _remove_secret(docker_cmd: Sequence[str], name: str) -> None:
    Engine(docker_cmd=docker_cmd).whales(
        ["secret", "rm", name], lambda c: c.secret.remove(name), what="docker secret rm"
    )


#: Label swarm puts on a task's container: the full service name (``<stack>_<service>``).
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"


def stack_running_containers(docker_cmd: Sequence[str], stack: str) -> list[tuple[str, str]]:
    """``(service, container id)`` of every running task container of a stack on the node we
    talk to (``service`` without the ``<stack>_`` prefix), oldest first: one call."""
    out = executor.run(
        [
            *docker_cmd,
            "ps",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
            "--filter",
            "status=running",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{SWARM_SERVICE_LABEL}"}}}}',
        ]
    )
    prefix = f"{stack}_"
    found = []
    for line in reversed(out.splitlines()):  # docker ps lists newest first
        parts = line.split()
        if len(parts) == 2:
            name = parts[1][len(prefix) :] if parts[1].startswith(prefix) else parts[1]
            found.append((name, parts[0]))
    return found


def service_replicas(docker_cmd: Sequence[str], services: Sequence[str]) -> dict[str, int]:
    """Replica count in the spec of each (full-named) replicated service: one call."""
    if not services:
        return {}
    out = executor.run(
        [
            *docker_cmd,
            "service",
            "inspect",
            "--format",
            "{{.Spec.Name}} {{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}"
            "{{else}}-1{{end}}",
            *services,
        ],
        what="docker service inspect",
    )
    replicas: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            replicas[parts[0]] = int(parts[1])
    return replicas


def service_scale(docker_cmd: Sequence[str], replicas: Mapping[str, int]) -> None:
    """``docker service scale --detach NAME=N ...`` (returns at once; callers wait)."""
    if replicas:
        executor.run(
            [
                *docker_cmd,
                "service",
                "scale",
                "--detach",
                *(f"{name}={n}" for name, n in sorted(replicas.items())),
            ],
            what="docker service scale",
        )
