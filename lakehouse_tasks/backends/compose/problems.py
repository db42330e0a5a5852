"""What compose's own error output means: which service a failed ``compose up`` names (a dependency that failed to start, a one-shot that did not complete, a container name), as a ``ComposeProblem``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ComposeProblem:
    """A failure compose reported, and the service it names (``None`` when it names none)."""

    service: str | None
    reason: str


_DEPENDENCY = re.compile(r"dependency failed to start: container ([\w.-]+) (.+)$")

_COMPLETED = re.compile(r'service "([\w.-]+)" didn\'t complete successfully: (.+)$')

_CONTAINER = re.compile(r"(?:container|endpoint) (?:name )?\"?/?([\w.-]+)\"?")


def service_of_container(container: str, project_name: str) -> str:
    """``lakehouse-dev-minio-1`` -> ``minio`` (compose's ``<project>-<service>-<n>`` names)."""
    name = container.lstrip("/")
    for sep in ("-", "_"):
        prefix = f"{project_name}{sep}"
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            base, _sep, number = rest.rpartition(sep)
            if base and number.isdigit():
                return base
            return rest
    return name  # a fixed container_name: compose reports it as is


def classify_compose_error(
    stderr: str, project_name: str, services: Iterable[str] = ()
) -> list[ComposeProblem]:
    """The failures in ``docker compose up``'s stderr, each naming its service when it can.

    Recognised: ``dependency failed to start: container X is unhealthy`` (or ``exited (N)``),
    ``service "X" didn't complete successfully: exit N``; any other error line becomes one
    problem without a service (port already allocated, missing image, ...).
    """
    known = list(services)
    problems: list[ComposeProblem] = []
    other: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _DEPENDENCY.search(line)
        if m:
            problems.append(
                ComposeProblem(service_of_container(m.group(1), project_name), m.group(2).strip())
            )
            continue
        m = _COMPLETED.search(line)
        if m:
            problems.append(ComposeProblem(m.group(1), f"did not complete: {m.group(2).strip()}"))
            continue
        lowered = line.lower()
        if lowered.startswith(("error", "failed")) or " error " in lowered or "denied" in lowered:
            other.append(line)
    if not problems and other:
        last = other[-1]
        m = _CONTAINER.search(last)
        named = service_of_container(m.group(1), project_name) if m else None
        if named is not None and known and named not in known:
            named = None
        problems.append(ComposeProblem(named, last))
    # one problem per service, first reason wins
    seen: set[str | None] = set()
    unique = []
    for problem in problems:
        if problem.service not in seen:
            seen.add(problem.service)
            unique.append(problem)
    return unique
