"""Services stopped around a backup or restore: recorded in a state file first, restarted
afterwards (also on SIGTERM), and restarted by :func:`recover_interrupted` when the process
was killed before it could."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import backend_of_record
from ..backends.base import unsettled_phrase
from ..backends.compose import ComposeBackend
from ..errors import EngineError
from ..notices import Notices
from ..paths import state_dir
from .plan import running_services
from .store import pid_alive

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..project import Project


# ---- services stopped during a backup -------------------------------------------------------
def _stopped_glob(project: Project) -> str:
    return f"stopped-{project.compose.project_name}-*.json"


def _state_root(project: Project) -> Path:
    return state_dir(project.env.root)


def recover_interrupted(
    project: Project, out: Notices | None = None, backend: Backend | None = None
) -> list[str]:
    """Start again the services that a killed backup or restore left stopped.

    Reads the state files written before services are stopped; a file whose writer is still
    running belongs to a backup in progress and is left alone. Returns the services started.
    """
    restarted: list[str] = []
    for path in sorted(_state_root(project).glob(_stopped_glob(project))):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        pid = int(data.get("pid", 0))
        if pid and pid != os.getpid() and pid_alive(pid):
            continue
        services = [str(s) for s in data.get("services") or []]
        if services:
            if out is not None:
                out.warn(
                    f"An interrupted {data.get('reason', 'backup')} left {', '.join(services)} "
                    "stopped; starting them again."
                )
            try:
                # The record names the target it was written for, so a swarm backup killed
                # under a compose deploy is recovered on swarm (records from before the
                # backends have "compose" or "swarm" too).
                backend_of_record(data.get("target"), backend).start(
                    project,
                    services,
                    {str(k): int(v) for k, v in (data.get("replicas") or {}).items()},
                    unsettled=[str(s) for s in data.get("unsettled") or []],
                )
                restarted.extend(services)
            except EngineError as exc:
                if out is not None:
                    out.warn(f"Could not start {', '.join(services)}: {exc.message}")
        path.unlink(missing_ok=True)
    return restarted


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` restarts what it stopped."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


class Stopped(list[str]):
    """The services a :func:`services_stopped` block stopped. ``unsettled`` names those the
    engine was restarting (a crash loop) when they were stopped. Once the block has ended,
    ``confirmed`` names those a probe of their own healthcheck found healthy while they were
    started again (a later wait for them need not probe them once more)."""

    def __init__(self, services: Iterable[str] = (), unsettled: Iterable[str] = ()) -> None:
        super().__init__(services)
        self.unsettled: set[str] = set(unsettled)
        self.confirmed: set[str] = set()


@contextlib.contextmanager
def services_stopped(
    project: Project,
    services: Iterable[str],
    *,
    reason: str = "backup",
    backend: Backend | None = None,
    out: Notices | None = None,
) -> Iterator[Stopped]:
    """Stop the running ``services`` for the duration of the block and start them again
    afterwards: on success, on failure, on Ctrl-C and on SIGTERM. The set (with the target
    and, on swarm, each service's replica count) is recorded in a state file first so
    :func:`recover_interrupted` can finish the job after a SIGKILL.

    A service the engine is restarting (a crash loop) is stopped too: its volume is not
    quiet until it is. It is started again afterwards, as it was, and not waited for."""
    backend = backend or ComposeBackend()
    wanted = set(services)
    running = set(running_services(project, backend)) if wanted else set()
    restarting = backend.restarting_services(project) if wanted else {}
    chosen = Stopped(
        sorted(s for s in wanted if s in running or s in restarting),
        (s for s in wanted if s in restarting),
    )
    if not chosen:
        yield chosen
        return
    if chosen.unsettled and out is not None:
        names = sorted(chosen.unsettled)
        out.warn(
            f"{', '.join(names)} {'are' if len(names) > 1 else 'is'} "
            f"{unsettled_phrase(restarting[s] for s in names)}: stopped "
            f"for the {reason} with the others, started again after it, not waited for"
        )
    replicas = backend.replicas(project, chosen)
    state = _state_root(project) / (
        f"stopped-{project.compose.project_name}-{os.getpid()}-{time.monotonic_ns()}.json"
    )
    state.write_text(
        json.dumps(
            {
                "project": project.compose.project_name,
                "environment": project.env.name,
                "services": chosen,
                "target": backend.name,
                "replicas": replicas,
                "unsettled": sorted(chosen.unsettled),
                "pid": os.getpid(),
                "reason": reason,
                "time": _dt.datetime.now(_dt.UTC).isoformat(),
            }
        )
    )
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: no handler, Ctrl-C only
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        backend.stop(project, chosen)
        yield chosen
    finally:
        try:
            chosen.confirmed = backend.start(project, chosen, replicas, unsettled=chosen.unsettled)
            state.unlink(missing_ok=True)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
