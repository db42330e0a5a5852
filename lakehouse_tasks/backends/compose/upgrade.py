"""Upgrades: which services a deploy would recreate and why, and rolling replicated workers.

``docker compose up -d`` already recreates only the services whose configuration changed: it
labels every container with ``com.docker.compose.config-hash``, a hash of the service's merged
configuration (image reference included), and recreates a container when that hash or the
image id behind its reference differs. Compose has shipped versions where that label and
``docker compose config --hash`` disagree (docker/compose#9211, #10907 with ``depends_on``),
so this module compares the tool's own hash, stamped on every container as
``io.lakehouse.config-hash`` (:mod:`lakehouse_tasks.confighash`), with the merged
configuration; compose's hash is only the fallback for containers without the tool's label.
``deploy --dry-run`` can so say what will be recreated, created or removed, and why.

Replicated stateless services (the Spark workers) are not left to compose: when more than one
member of a group changed, ``up`` would recreate them together and the cluster would lose every
worker at once. :func:`roll_group` updates them one at a time (``up -d <worker>``,
then wait until it is healthy) before the deploy's own ``up``, which then finds them current.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...confighash import LABEL as TOOL_HASH_LABEL
from ...confighash import service_hashes
from ...engine.client import Engine
from ...engine.containers import ContainerState, container_states
from ...errors import LakehouseError
from ...outcomes import WaitOutcome
from ...stack import with_dependencies
from .deploy import start_and_wait

if TYPE_CHECKING:
    from ...outcomes import Reporter
    from ...project import Project

CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
#: Groups of interchangeable services that must never all be down at once, in update order.
ROLLING_GROUPS: tuple[tuple[str, ...], ...] = (("spark-worker-1", "spark-worker-2"),)


@dataclass(frozen=True)
class ServiceChange:
    """What ``up`` does to one service: ``create``, ``recreate``, ``remove`` or ``keep``."""

    service: str
    action: str
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "action": self.action, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class UpgradePlan:
    """Every service's fate in the next deploy, and the groups that will be rolled."""

    changes: tuple[ServiceChange, ...]
    rolling: tuple[tuple[str, ...], ...] = ()

    def services(self, action: str) -> list[str]:
        return [c.service for c in self.changes if c.action == action]

    @property
    def changed(self) -> list[ServiceChange]:
        return [c for c in self.changes if c.action != "keep"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "recreate": self.services("recreate"),
            "create": self.services("create"),
            "remove": self.services("remove"),
            "rolling": [list(group) for group in self.rolling],
            "changes": [c.to_dict() for c in self.changed],
        }


def parse_config_hashes(text: str) -> dict[str, str]:
    """``{service: hash}`` from ``docker compose config --hash '*'`` (``name hash`` lines)."""
    hashes: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


def config_hashes(project: Project) -> dict[str, str]:
    """The hash compose will label each active service's container with."""
    return parse_config_hashes(project.compose.config_hashes())


def _short(value: str) -> str:
    return value.split(":", 1)[-1][:12]


def diff_services(
    *,
    wanted: Sequence[str],
    hashes: Mapping[str, str],
    images: Mapping[str, str],
    image_ids: Mapping[str, str | None],
    containers: Iterable[ContainerState],
    known: Iterable[str] = (),
    tool_hashes: Mapping[str, str] | None = None,
) -> tuple[ServiceChange, ...]:
    """Compare the wanted services' configuration with the containers that exist.

    ``hashes``: per-service config hash; ``images``: per-service configured image reference;
    ``image_ids``: the local image id of each reference; ``known``: every service of the
    configuration (a container of any other service is an orphan ``up`` removes);
    ``tool_hashes``: the tool's own hash of each service (:mod:`lakehouse_tasks.confighash`),
    compared with the container's ``io.lakehouse.config-hash`` label. Compose's hash is only
    the fallback for containers created before the tool stamped its own.
    """
    by_service: dict[str, list[ContainerState]] = {}
    for state in containers:
        if state.service:
            by_service.setdefault(state.service, []).append(state)
    changes: list[ServiceChange] = []
    for service in sorted(wanted):
        running = by_service.get(service, [])
        if not running:
            changes.append(ServiceChange(service, "create", ("no container yet",)))
            continue
        reasons: list[str] = []
        state = running[0]
        ref = images.get(service, "")
        if ref and state.image and state.image != ref:
            reasons.append(f"image {state.image} -> {ref}")
        elif ref and image_ids.get(ref) and state.image_id and image_ids[ref] != state.image_id:
            reasons.append(
                f"image {ref} now has id {_short(str(image_ids[ref]))} "
                f"(container runs {_short(state.image_id)})"
            )
        # The image reference is part of the hash, so a new reference explains a new hash.
        renamed = bool(ref and state.image and state.image != ref)
        stamped = state.labels.get(TOOL_HASH_LABEL, "")
        if stamped and tool_hashes is not None:
            old, new, what = stamped, tool_hashes.get(service, ""), "tool config hash"
        else:
            old, new, what = (
                state.labels.get(CONFIG_HASH_LABEL, ""),
                hashes.get(service, ""),
                "config hash",
            )
        if new and old != new and not renamed:
            reasons.append(f"configuration changed ({what} {old[:8] or '-'} -> {new[:8]})")
        changes.append(ServiceChange(service, "recreate" if reasons else "keep", tuple(reasons)))
    everything = set(known) | set(wanted)
    for service in sorted(by_service):
        if service not in everything:
            changes.append(
                ServiceChange(service, "remove", ("no longer in the configuration (orphan)",))
            )
    return tuple(changes)


def rolling_groups(
    changes: Sequence[ServiceChange], active: Iterable[str]
) -> tuple[tuple[str, ...], ...]:
    """The groups of :data:`ROLLING_GROUPS` of which more than one active member is recreated."""
    recreate = {c.service for c in changes if c.action == "recreate"}
    present = set(active)
    groups = []
    for group in ROLLING_GROUPS:
        members = tuple(s for s in group if s in present and s in recreate)
        if len(members) > 1:
            groups.append(members)
    return tuple(groups)


def plan_upgrade(project: Project, services: Sequence[str] = ()) -> UpgradePlan:
    """What the next deploy of ``project`` recreates, creates and removes (reads only)."""
    stack = project.stack
    wanted = with_dependencies(stack, services)
    images = {name: stack.services[name].image for name in wanted}
    changes = diff_services(
        wanted=wanted,
        hashes=config_hashes(project),
        images=images,
        image_ids=Engine().image_ids(images.values()),
        containers=container_states(project.compose),
        known=stack.services,
        tool_hashes=service_hashes(project.compose.config()),
    )
    return UpgradePlan(changes, rolling_groups(changes, stack.active))


def container_ids(project: Project) -> dict[str, str]:
    """``{service: container id}`` of the project's containers now."""
    ids: dict[str, str] = {}
    for state in container_states(project.compose):
        if state.service:
            ids.setdefault(state.service, state.id)
    return ids


def compare_containers(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[str]]:
    """Which services got a new container (``recreated``), a first one (``created``), or lost
    theirs (``removed``) between two :func:`container_ids` readings."""
    return {
        "recreated": sorted(s for s, i in after.items() if s in before and before[s] != i),
        "created": sorted(s for s in after if s not in before),
        "removed": sorted(s for s in before if s not in after),
    }


def wait_for_new_container(
    project: Project,
    service: str,
    old_id: str | None,
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Wait until ``service`` runs in a container other than ``old_id`` that is healthy (or
    running, without a healthcheck); "" when it is, else the reason it is not."""
    has_check = project.stack.services[service].healthcheck is not None
    deadline = clock() + timeout
    while True:
        current = [
            s for s in container_states(project.compose) if s.service == service and s.id != old_id
        ]
        state = current[0] if current else None
        if state is not None:
            if state.status in ("exited", "dead"):
                return f"exited with code {state.exit_code} after its update"
            if state.health == "unhealthy":
                return "unhealthy after its update"
            if state.status == "running" and (state.health == "healthy" or not has_check):
                return ""
        if clock() >= deadline:
            return f"not healthy {timeout:g}s after its update"
        sleep(1.0)


def roll_group(
    project: Project, group: Sequence[str], *, timeout: float, reporter: Reporter
) -> WaitOutcome:
    """Recreate each service of ``group`` alone, waiting until its new container is healthy
    before the next one.

    Stops at the first member that does not become healthy (its outcome is returned), so at
    most one member of the group is ever down.
    """

    outcome: WaitOutcome | None = None
    for service in group:
        reporter.step(f"rolling update: {service} ({group.index(service) + 1}/{len(group)})")
        old_id = container_ids(project).get(service)
        outcome = start_and_wait(
            project,
            # Not --no-deps: a container created with it (compose 2.26) carries a hash the
            # deploy's full ``up`` does not match, so it would be recreated a second time.
            args=["up", "-d", "--no-build", service],
            services=[service],
            timeout=timeout,
            reporter=reporter,
        )
        if not outcome.ok:
            return outcome
        # The deploy wait may count the old, still healthy container as ready; the next
        # member may only go down once this one's *new* container is healthy.
        reason = wait_for_new_container(project, service, old_id, timeout=timeout)
        if reason:
            return WaitOutcome(False, outcome.rows, [(service, reason)], elapsed=outcome.elapsed)
    if outcome is None:
        raise ValueError("roll_group needs at least one service")
    return outcome


def upgrade_step(
    project: Project, services: Sequence[str], timeout: float, reporter: Reporter
) -> tuple[dict[str, str] | None, WaitOutcome | None]:
    """Before ``up``: the containers' ids (to report what was recreated) and, when several
    Spark workers changed, their one-at-a-time update (its outcome when it failed)."""
    try:
        before = container_ids(project)
        plan = plan_upgrade(project, services) if before else None
    except LakehouseError as exc:
        reporter.warn(f"could not compare the configuration with the containers: {exc.message}")
        return None, None
    for group in plan.rolling if plan else ():
        reporter.step(f"updating {', '.join(group)} one at a time (rolling)")
        outcome = roll_group(project, group, timeout=timeout, reporter=reporter)
        if not outcome.ok:
            return before, outcome
    return before, None


def report_containers(
    project: Project, outcome: WaitOutcome, before: Mapping[str, str] | None, reporter: Reporter
) -> None:
    """Which services were recreated, created or removed (container ids before vs after)."""
    if before is None:
        return
    try:
        outcome.containers = compare_containers(before, container_ids(project))
    except LakehouseError:
        return
    recreated = outcome.containers.get("recreated", [])
    note = "recreated: " + (", ".join(recreated) if recreated else "none")
    outcome.notes.append(note)
    reporter.step(note)
