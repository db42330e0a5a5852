"""Checks of the host before a deploy: the Docker engine and compose versions, free disk, CPU and memory against the services' reservations (the backend's rule: a hard failure on swarm, a warning on compose), and the published ports."""

from __future__ import annotations

import errno
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import Check, failed, passed, warned
from ..engine.client import (
    MIN_COMPOSE_VERSION,
    MIN_ENGINE_VERSION,
    EngineInfo,
    parse_version,
)
from ..schema import Schema
from ..stack import PublishedPort, Stack
from ..units import human_bytes

if TYPE_CHECKING:
    from ..environment import Environment


#: Free disk required when the environment does not set MIN_FREE_DISK_GB.
DEFAULT_MIN_FREE_DISK_GB = 10.0

GIB = 1024**3


def _version(t: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in t)


def engine_checks(info: EngineInfo | None, error: str = "") -> list[Check]:
    """Engine reachable; engine and compose v2 at or above the documented minimums."""
    if info is None:
        return [
            failed(
                "engine reachable",
                error or "the Docker engine did not answer",
                "run scripts/setup (it installs and starts the engine on Debian), then check "
                "`docker info`",
            )
        ]
    checks = [passed("engine reachable", f"Docker {info.server_version}")]
    engine = parse_version(info.server_version)
    if engine >= MIN_ENGINE_VERSION:
        checks.append(
            passed("engine version", f"{info.server_version} >= {_version(MIN_ENGINE_VERSION)}")
        )
    else:
        checks.append(
            failed(
                "engine version",
                f"Docker {info.server_version or 'unknown'} is older than "
                f"{_version(MIN_ENGINE_VERSION)}",
                f"upgrade the Docker engine to {_version(MIN_ENGINE_VERSION)} or newer",
            )
        )
    compose = parse_version(info.compose_version)
    if not compose:
        checks.append(
            failed(
                "compose version",
                "Docker Compose v2 (`docker compose`) is not installed",
                "run scripts/setup, or install the distribution's docker-compose 2.x package "
                "(the v1 docker-compose is not used)",
            )
        )
    elif compose >= MIN_COMPOSE_VERSION:
        checks.append(
            passed("compose version", f"{info.compose_version} >= {_version(MIN_COMPOSE_VERSION)}")
        )
    else:
        checks.append(
            failed(
                "compose version",
                f"compose {info.compose_version} is older than {_version(MIN_COMPOSE_VERSION)}",
                f"upgrade the compose plugin to {_version(MIN_COMPOSE_VERSION)} or newer",
            )
        )
    return checks


def min_free_disk_gb(env: Environment) -> float:
    raw = env.get("MIN_FREE_DISK_GB")
    try:
        return float(raw) if raw not in (None, "") else DEFAULT_MIN_FREE_DISK_GB
    except ValueError:
        return DEFAULT_MIN_FREE_DISK_GB


def disk_check(
    name: str,
    path: Path,
    min_gb: float,
    *,
    usage: Callable[[str], Any] = shutil.disk_usage,
    missing_hint: str = "",
) -> Check:
    """Free space on the filesystem holding ``path`` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not path.exists() and missing_hint:
        return warned(name, f"{path} is not visible from this host", missing_hint)
    try:
        free = int(usage(str(probe)).free)
    except OSError as exc:
        return warned(name, f"cannot read free space of {probe}: {exc.strerror}", missing_hint)
    detail = f"{human_bytes(free)} free at {path} (minimum {min_gb:g} GiB)"
    if free < min_gb * GIB:
        return failed(name, detail, f"free space under {probe} or lower MIN_FREE_DISK_GB")
    return passed(name, detail)


def disk_checks(env: Environment, info: EngineInfo | None) -> list[Check]:
    min_gb = min_free_disk_gb(env)
    checks = []
    if info is not None:
        checks.append(
            disk_check(
                "disk (docker data)",
                Path(info.docker_root_dir),
                min_gb,
                missing_hint="the engine runs elsewhere (a VM or remote host): check its free "
                "disk there",
            )
        )
    backup = Path(env.get("BACKUP_DIR") or "backups").expanduser()
    if not backup.is_absolute():
        backup = env.root / backup
    checks.append(disk_check("disk (backups)", backup, min_gb))
    return checks


def limit_variable(schema: Schema | None, service: str, suffix: str) -> str:
    """The variable that sets ``service``'s ``suffix`` (``CPU_LIMIT``...), from the schema's
    ``used_by``; a readable guess when the schema does not say."""
    if schema is not None:
        for var in schema.variables.values():
            if var.name.endswith(f"_{suffix}") and service in var.used_by:
                return var.name
    return f"{service.upper().replace('-', '_')}_{suffix}"


def resource_checks(
    stack: Stack,
    info: EngineInfo,
    *,
    hard_reservations: bool = False,
    schema: Schema | None = None,
) -> list[Check]:
    """The merged config's limits and reservations against the host's CPUs and memory.

    A CPU limit above the host's CPU count always fails: the engine refuses to create the
    container. Memory over the host and reservations that do not fit only warn on compose
    (compose enforces no CPU reservation and memory reservations are soft) but fail with
    ``hard_reservations`` (swarm, which schedules by reservations and refuses what no node can
    hold).
    """
    soft = failed if hard_reservations else warned
    checks: list[Check] = []
    cpus, memory = info.cpus, info.memory_bytes
    host = f"host has {cpus} CPUs and {human_bytes(memory)}"

    too_many_cpus = [s for s in stack.active.values() if cpus and s.limits.cpus > cpus]
    for svc in too_many_cpus:
        checks.append(
            failed(
                f"cpu limit ({svc.name})",
                f"{svc.name} asks for a limit of {svc.limits.cpus:g} CPUs; {host}",
                f"set {limit_variable(schema, svc.name, 'CPU_LIMIT')} to at most {cpus} for {svc.name}",
            )
        )
    big_memory = [s for s in stack.active.values() if memory and s.limits.memory > memory]
    for svc in big_memory:
        checks.append(
            soft(
                f"memory limit ({svc.name})",
                f"{svc.name} has a memory limit of {human_bytes(svc.limits.memory)}; {host}",
                f"lower {limit_variable(schema, svc.name, 'MEMORY_LIMIT')}",
            )
        )
    totals = stack.totals()
    limits, reservations = totals["limits"], totals["reservations"]
    if memory and limits.memory > memory:
        checks.append(
            soft(
                "memory limits total",
                f"limits add up to {human_bytes(limits.memory)}, more than the host's "
                f"{human_bytes(memory)}: services may be OOM-killed under load",
                "lower the *_MEMORY_LIMIT variables or add memory",
            )
        )
    if cpus and limits.cpus > cpus:
        checks.append(
            warned(
                "cpu limits total",
                f"CPU limits add up to {limits.cpus:g}, more than the host's {cpus}: services "
                "compete for CPU under load",
                "lower the *_CPU_LIMIT variables or add CPUs",
            )
        )
    if memory and reservations.memory > memory:
        checks.append(
            soft(
                "memory reservations",
                f"reservations add up to {human_bytes(reservations.memory)}; {host}",
                "lower the *_MEMORY_RESERVATION variables or add memory",
            )
        )
    if cpus and reservations.cpus > cpus:
        checks.append(
            soft(
                "cpu reservations",
                f"reservations add up to {reservations.cpus:g} CPUs; {host}",
                "lower the *_CPU_RESERVATION variables or add CPUs",
            )
        )
    if not checks:
        checks.append(
            passed(
                "host resources",
                f"limits {limits.cpus:g} CPUs / {human_bytes(limits.memory)}, reservations "
                f"{reservations.cpus:g} CPUs / {human_bytes(reservations.memory)}; {host}",
            )
        )
    return checks


def port_is_free(port: PublishedPort) -> tuple[bool, str]:
    """Try to bind the port on its host address; ``(False, reason)`` when that fails."""
    family = socket.AF_INET6 if ":" in port.host_ip and port.host_ip != "::" else socket.AF_INET
    host = "" if port.all_interfaces else port.host_ip
    kind = socket.SOCK_DGRAM if port.protocol == "udp" else socket.SOCK_STREAM
    try:
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # A port in TIME_WAIT is free for the engine too.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port.published))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False, "in use"
        if exc.errno == errno.EADDRNOTAVAIL:
            return False, f"{port.host_ip} is not an address of this host"
        if exc.errno == errno.EACCES:
            return False, "needs privileges to bind (below 1024)"
        return False, exc.strerror or str(exc)
    return True, ""


def port_checks(
    stack: Stack,
    project_name: str,
    bindings: Sequence[dict[str, Any]],
    *,
    is_free: Callable[[PublishedPort], tuple[bool, str]] = port_is_free,
) -> list[Check]:
    """Every published port free on the host, unless this project's own container holds it."""
    checks: list[Check] = []
    ports = stack.published_ports()
    for service, port in ports:
        holders = [
            b
            for b in bindings
            if int(b["port"]) == port.published and b.get("protocol", "tcp") == port.protocol
        ]
        ours = [b for b in holders if b.get("project") == project_name]
        if ours:
            continue
        free, reason = is_free(port)
        if free:
            continue
        who = ", ".join(
            f"container {b['container']}"
            + (f" (project {b['project']})" if b.get("project") else "")
            for b in holders
        )
        if not who and reason == "in use":
            who = _host_holder(port.published) or "a process on this host"
        detail = f"port {port.published}/{port.protocol} of {service} is {reason}"
        if who:
            detail += f", held by {who}"
        checks.append(
            failed(
                f"port {port.published} ({service})",
                detail,
                f"stop what holds port {port.published} or change the {service} port variable",
            )
        )
    if not checks:
        checks.append(passed("published ports", f"{len(ports)} ports free"))
    return checks


def _host_holder(port: int) -> str:
    """``ss`` names the process holding a port when it is installed (best effort)."""
    if shutil.which("ss") is None:
        return ""
    try:
        out = subprocess.run(
            ["ss", "-Hltnup", f"sport = :{port}"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in out.splitlines():
        if 'users:(("' in line:
            name = line.split('users:(("', 1)[1].split('"', 1)[0]
            pid = line.split("pid=", 1)[1].split(",", 1)[0] if "pid=" in line else "?"
            return f"{name} (pid {pid})"
    return ""
