"""The drill's copy of the stack: its name, lock and record, the copy's project (no published
ports), and removing what a drill left, by compose's project label."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine import commands as engine_commands
from ..engine import networks as engine_networks
from ..engine import volumes as engine_volumes
from ..engine.compose import ComposeProject
from ..errors import RefusedError
from ..notices import Notices
from ..paths import state_dir
from .store import pid_alive

if TYPE_CHECKING:
    from ..environment import Environment
    from ..project import Project

SUFFIX = "-drill"
PROJECT_LABEL = "com.docker.compose.project"


# ---- names and records ----------------------------------------------------------------------
def copy_name(env: Environment) -> str:
    return f"{env.project_name}{SUFFIX}"


def drill_dir(env: Environment) -> Path:
    return state_dir(Path(env.root)) / "drills"


def record_path(env: Environment) -> Path:
    return state_dir(Path(env.root)) / f"drill-{env.name}.json"


def last_path(env: Environment) -> Path:
    return drill_dir(env) / f"{env.name}-last.json"


@contextlib.contextmanager
def drill_lock(env: Environment) -> Iterator[None]:
    """One drill per environment at a time (the kernel drops the lock when a drill dies)."""
    path = state_dir(Path(env.root)) / f"drill-{env.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, ValueError, KeyError):
                holder = f" (pid {json.loads(record_path(env).read_text())['pid']})"
            raise RefusedError(
                f"Another restore drill of {env.name} is running{holder}; wait for it to "
                "finish, it removes its copy of the stack when done."
            ) from None
        yield


# ---- the copy's containers, volumes and networks --------------------------------------------
def leftovers_of(name: str) -> dict[str, list[str]]:
    """What exists of the compose project ``name``: containers, volumes, networks."""
    return {
        "container": engine_commands.labelled(PROJECT_LABEL, name),
        "volume": engine_volumes.labelled(PROJECT_LABEL, name),
        "network": engine_networks.labelled(PROJECT_LABEL, name),
    }


def remove_copy(name: str) -> None:
    """Remove every container, volume and network of the copy ``name`` (by compose's label,
    so it works without the compose files, after a kill)."""
    engine_commands.remove(engine_commands.labelled(PROJECT_LABEL, name))
    engine_volumes.remove(engine_volumes.labelled(PROJECT_LABEL, name), force=True)
    engine_networks.remove(engine_networks.labelled(PROJECT_LABEL, name))


def clean_interrupted(env: Environment, out: Notices | None = None) -> str | None:
    """Remove the copy (and work directory) a drill killed outright left; return its name."""
    path = record_path(env)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = int(data.get("pid", 0))
    if pid and pid != os.getpid() and pid_alive(pid):
        return None
    name = str(data.get("project") or "")
    if out is not None and name:
        out.warn(f"An interrupted restore drill left its copy {name}; removing it first.")
    if name:
        remove_copy(name)
    work = data.get("workdir")
    if work:
        shutil.rmtree(work, ignore_errors=True)
    path.unlink(missing_ok=True)
    return name or None


def _override(project: Project, path: Path) -> Path:
    """A compose file that removes every published port of the copy."""
    lines = ["services:"]
    for name, svc in sorted(project.stack.services.items()):
        raw = (project.stack.raw.get("services") or {}).get(name) or {}
        if raw.get("ports") or getattr(svc, "ports", None):
            lines += [f"  {name}:", "    ports: !reset []"]
    if len(lines) == 1:
        lines = ["services: {}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def copy_project(project: Project, work: Path) -> Project:
    """The live project's files plus the no-ports override, under the copy's own name."""
    from ..project import Project as ProjectType

    files = [*project.compose.files, _override(project, work / "drill-override.yaml")]
    compose = ComposeProject(
        env=project.env,
        files=files,
        profiles=list(project.compose.profiles),
        project_name=copy_name(project.env),
    )
    return ProjectType(env=project.env, compose=compose, rehearsal=project.rehearsal)
