"""The healthcheck passes the tool ran itself, remembered so that ``health`` agrees with them.

A restore (and any wait that probes a ``starting`` container at once with ``docker exec``
running the service's *own* configured healthcheck) can call a service healthy a whole
healthcheck interval before the engine runs its first check. Until then the engine still says
``starting``; without this record ``restore && health`` failed in a script. Each pass is kept
per project in the state directory, keyed by container id and start time; a snapshot counts it
only while that same container (not restarted since) still runs and the engine has not judged
it yet (``starting``). Once the engine says healthy or unhealthy, the engine's word wins.
Reading it costs no docker call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .paths import write_atomic

if TYPE_CHECKING:
    from .project import Project

#: A recorded pass older than this is dropped from the file (the engine judged long since).
KEEP_S = 24 * 3600.0


def _path(project: Project) -> Path | None:
    try:
        from .paths import state_dir

        return state_dir(project.env.root) / "probes" / f"{project.compose.project_name}.json"
    except (OSError, AttributeError):
        return None


def passed(project: Project) -> dict[str, str]:
    """Container id -> the ``StartedAt`` of the run whose own healthcheck passed."""
    path = _path(project)
    if path is None:
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    entries = doc.get("passed") if isinstance(doc, Mapping) else None
    if not isinstance(entries, Mapping):
        return {}
    return {
        str(cid): str(v.get("started_at", ""))
        for cid, v in entries.items()
        if isinstance(v, Mapping)
    }


def record(project: Project, containers: Iterable[tuple[str, str]]) -> None:
    """Remember that the own healthcheck of each ``(container id, StartedAt)`` passed now."""
    items = [(cid, started) for cid, started in containers if cid]
    path = _path(project)
    if not items or path is None:
        return
    now = time.time()
    try:
        doc = json.loads(path.read_text())
        entries = dict(doc.get("passed") or {})
    except (OSError, ValueError, AttributeError):
        entries = {}
    entries = {
        cid: v
        for cid, v in entries.items()
        if isinstance(v, Mapping) and now - float(v.get("at", 0)) < KEEP_S
    }
    for cid, started in items:
        entries[cid] = {"started_at": started, "at": now}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"passed": entries}))
    except OSError:
        pass  # health then waits for the engine's own check, as before
