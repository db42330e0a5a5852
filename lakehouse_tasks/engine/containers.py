"""Containers seen: ``ps``, ``inspect``, port bindings, states, events, healthcheck probes
(what is done to and in them is in :mod:`.commands`).

Each query is ONE docker command line, whatever the number of containers: the health
snapshot's call count must not grow with the stack (docs/HEALTH.md). Containers are read in one
``docker ps`` plus one ``docker inspect`` call (IMAGE_FACTS: never one inspect per container)
or, when the engine is local, with the same requests to its API (:mod:`.api`) and no docker
process at all.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EngineError
from . import api, executor

if TYPE_CHECKING:
    from .compose import ComposeProject

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


def _from_api(
    docker_cmd: Sequence[str], what: str, ask: Callable[[str], list[dict[str, Any]]]
) -> list[dict[str, Any]] | None:
    """``ask(socket path)`` when the engine is local; ``None`` when it is not or its socket
    refused (the caller's CLI asks the same); an engine that does not answer is exit 5."""
    path = api.socket_path(docker_cmd)
    if path is None:
        return None
    try:
        return ask(path)
    except api.SOCKET_REFUSED:
        return None
    except OSError as exc:
        raise executor.api_failure(f"{what} request", exc) from None


def project_containers(docker_cmd: Sequence[str], project_name: str) -> list[dict[str, Any]]:
    """Every container (running or not) of a compose project: one engine request.

    Rows are ``docker ps --format '{{json .}}'`` objects (``ID``, ``Names``, ``State``, ...).
    When the engine is local they come from its API (:func:`api.list_containers`, the same
    request without a docker process); else, or when the socket refuses, from the CLI.
    """
    found = _from_api(
        docker_cmd,
        "a container list",
        lambda path: api.list_containers(path, [f"{COMPOSE_PROJECT_LABEL}={project_name}"]),
    )
    if found is not None:
        return found
    out = executor.run(
        [
            *docker_cmd,
            "ps",
            "--all",
            "--no-trunc",
            "--filter",
            f"label={COMPOSE_PROJECT_LABEL}={project_name}",
            "--format",
            "{{json .}}",
        ]
    )
    return executor.json_lines(out)


def inspect_containers(docker_cmd: Sequence[str], ids: Sequence[str]) -> list[dict[str, Any]]:
    """``docker inspect`` of many containers (state, health log, limits, mounts): from the
    engine's API side by side when it is local (:func:`api.inspect_many`), else in one
    CLI call.

    A container removed between ``ps`` and ``inspect`` makes the whole call fail; only in
    that race is the call repeated once, without the containers docker named as gone.
    """
    if not ids:
        return []
    # the engine's API, every container at once (docs/HEALTH.md)
    found = _from_api(docker_cmd, "an inspect", lambda path: api.inspect_many(path, ids))
    if found is not None:
        return found
    try:
        out = executor.run([*docker_cmd, "container", "inspect", *ids])
    except EngineError as exc:
        if "No such" not in exc.stderr:
            raise
        gone = {line.rsplit(":", 1)[-1].strip() for line in exc.stderr.splitlines()}
        rest = [i for i in ids if i not in gone]
        if not rest or len(rest) == len(ids):
            return []
        try:
            out = executor.run([*docker_cmd, "container", "inspect", *rest])
        except EngineError:
            return []
    return executor.json_list(out)


def running_port_bindings(docker_cmd: Sequence[str]) -> list[dict[str, Any]]:
    """Published ports of every running container on the engine: one ``docker ps`` call.

    Each row: ``container`` name, ``project`` (compose project label or ""), ``host_ip``,
    ``port`` (host side), ``protocol``.
    """
    out = executor.run([*docker_cmd, "ps", "--format", "{{json .}}"])
    bindings: list[dict[str, Any]] = []
    for row in executor.json_lines(out):
        labels = _ps_labels(str(row.get("Labels", "")))
        for ip, port, proto in _ps_ports(str(row.get("Ports", ""))):
            bindings.append(
                {
                    "container": str(row.get("Names", "")),
                    "project": labels.get(COMPOSE_PROJECT_LABEL, ""),
                    "host_ip": ip,
                    "port": port,
                    "protocol": proto,
                }
            )
    return bindings


def _ps_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            labels[key.strip()] = value
    return labels


def _ps_ports(text: str) -> list[tuple[str, int, str]]:
    """``[("0.0.0.0", 8080, "tcp"), ...]`` from ``0.0.0.0:8080->80/tcp, :::8080->80/tcp``."""
    found: list[tuple[str, int, str]] = []
    for part in text.split(","):
        part = part.strip()
        if "->" not in part:
            continue
        host, _arrow, target = part.partition("->")
        proto = target.rpartition("/")[2] or "tcp"
        ip, _colon, port_text = host.rpartition(":")
        ports = port_text.split("-")
        try:
            first, last = int(ports[0]), int(ports[-1])
        except ValueError:
            continue
        for port in range(first, last + 1):
            found.append((ip.strip("[]"), port, proto))
    return found


# ---- container states (deploy, teardown, upgrade) ----

_PROJECT_FILTER = "label=com.docker.compose.project="
SERVICE_LABEL = "com.docker.compose.service"  # compose labels every container with its service


@dataclass(frozen=True)
class ContainerState:
    """One container of a compose project, as ``docker inspect`` saw it at one moment."""

    id: str
    name: str
    service: str
    status: str  # created | running | restarting | exited | dead | paused | removing
    health: str  # healthy | unhealthy | starting | "" (no healthcheck)
    exit_code: int
    restart_count: int
    image_id: str
    image: str
    labels: dict[str, str]
    health_log: tuple[str, ...] = ()  # outputs of the last healthcheck runs, oldest first

    @property
    def oneshot(self) -> bool:
        return self.labels.get("io.lakehouse.oneshot", "").lower() == "true"


def _container_state(raw: dict[str, Any]) -> ContainerState:
    state = raw.get("State") or {}
    config = raw.get("Config") or {}
    labels = dict(config.get("Labels") or {})
    health = state.get("Health") or {}
    log = tuple(
        f"exit {entry.get('ExitCode')}: {str(entry.get('Output', '')).strip()}"
        for entry in (health.get("Log") or [])
    )
    return ContainerState(
        id=str(raw.get("Id", ""))[:12],
        name=str(raw.get("Name", "")).lstrip("/"),
        service=labels.get(SERVICE_LABEL, ""),
        status=str(state.get("Status", "")),
        health=str(health.get("Status", "")),
        exit_code=int(state.get("ExitCode") or 0),
        restart_count=int(raw.get("RestartCount") or 0),
        image_id=str(raw.get("Image", "")),
        image=str(config.get("Image", "")),
        labels=labels,
        health_log=log,
    )


def container_states(
    compose: ComposeProject, *, project_name: str | None = None
) -> list[ContainerState]:
    """Every container (running or not) labelled with the compose project's name."""
    name = project_name or compose.project_name
    ids = executor.run(
        [*compose.docker_cmd, "ps", "-a", "-q", "--no-trunc", "--filter", _PROJECT_FILTER + name],
        scrub=compose.env.scrub,
    ).split()
    if not ids:
        return []
    try:
        out = executor.run([*compose.docker_cmd, "inspect", *ids], scrub=compose.env.scrub)
    except EngineError as exc:
        # A container removed between ps and inspect fails the whole call; the caller polls
        # again and sees a consistent list next time.
        if "No such" not in exc.stderr:
            raise
        return []
    states = (_container_state(raw) for raw in json.loads(out or "[]"))
    return sorted(states, key=lambda c: c.name)


class ContainerEvents:
    """``docker events`` for one compose project's containers (start, die, health changes),
    read in a thread: :meth:`wait` returns as soon as one arrives, or after ``timeout``.

    A deploy waits with it instead of sleeping a fixed poll interval: the engine announces
    the moment a container turns healthy, so the deploy ends with the last healthy service
    rather than up to a poll later, and a quiet stack costs no docker call per second. One
    long-running command, whatever the number of services. If the command cannot run, the
    wait is a plain sleep (the caller's snapshots stay the source of truth).
    """

    #: The shortest time between two wake-ups, so a burst of events (compose starting a
    #: layer) becomes one snapshot rather than one per container.
    MIN_GAP = 0.2

    def __init__(self, docker_cmd: Sequence[str], project_name: str) -> None:
        self.argv = [
            *(str(a) for a in docker_cmd),
            "events",
            "--filter",
            "type=container",
            "--filter",
            f"label={COMPOSE_PROJECT_LABEL}={project_name}",
            # not the exec events every healthcheck makes: only what changes a row
            *("--filter", "event=start", "--filter", "event=die"),
            *("--filter", "event=health_status"),
            "--format",
            "{{.Status}}",
        ]
        self._arrived = threading.Event()
        self._proc: Any = None
        try:
            executor._trace(self.argv)
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return
        threading.Thread(target=self._read, name="docker-events", daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            if line.strip():
                self._arrived.set()

    def wait(self, timeout: float) -> None:
        """Return at the next event (but not sooner than :attr:`MIN_GAP`) or after
        ``timeout`` seconds."""
        gap = min(self.MIN_GAP, timeout)
        time.sleep(gap)
        self._arrived.wait(max(0.0, timeout - gap))
        self._arrived.clear()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def probe_passes(
    docker_cmd: Sequence[str], container: str, argv: Sequence[str], *, timeout: float
) -> bool:
    """Whether ``argv`` (a healthcheck test) exits 0 in ``container`` within ``timeout``
    seconds: one ``docker exec``, traced like every command."""
    cmd = [*(str(a) for a in docker_cmd), "exec", container, *(str(a) for a in argv)]
    executor._trace(cmd)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0
