"""Preflight: can this host run this environment? Each check is a small function returning
:class:`~lakehouse_tasks.checks.Check` values (pass / warn / fail with a one-line fix hint).

:func:`run_preflight` runs them all; deploy calls it before touching anything. A failed check
means exit 3 (``ExitCode.PREFLIGHT_FAILED``).
"""

from __future__ import annotations

import datetime as _dt
import errno
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .certificates import certificate_expiry
from .checks import Check, Status, failed, passed, warned
from .engine import containers
from .engine import images as engine_images
from .engine.client import (
    MIN_COMPOSE_VERSION,
    MIN_ENGINE_VERSION,
    Engine,
    EngineInfo,
    parse_version,
)
from .errors import ConfigError, LakehouseError
from .schema import Schema
from .stack import PublishedPort, Stack
from .ui import human_bytes

if TYPE_CHECKING:
    from .backends.base import Backend
    from .environment import Environment
    from .project import Project

#: Certificates expiring sooner than this fail preflight.
CERT_MIN_DAYS = 14
#: Free disk required when the environment does not set MIN_FREE_DISK_GB.
DEFAULT_MIN_FREE_DISK_GB = 10.0
GIB = 1024**3



def _version(t: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in t)


# ---- engine ---------------------------------------------------------------------------------
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


# ---- disk -----------------------------------------------------------------------------------
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


# ---- host resources -------------------------------------------------------------------------
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


# ---- ports ----------------------------------------------------------------------------------
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


# ---- configuration --------------------------------------------------------------------------
def config_checks(project: Project) -> list[Check]:
    """The environment validates strictly and the merged compose config is valid."""
    from .environment import validate

    checks: list[Check] = []
    try:
        validate(project.env, strict=True)
        checks.append(passed("environment", f"{project.env.name} validates"))
    except ConfigError as exc:
        checks.append(failed("environment", exc.message, "fix the environment as the message says"))
    try:
        project.compose.config()
        checks.append(passed("compose config", f"{len(project.stack.active)} services"))
    except LakehouseError as exc:
        checks.append(failed("compose config", exc.message, "fix the compose files or variables"))
    return checks


def image_checks(
    stack: Stack,
    present: dict[str, str | None],
    *,
    pullable: Callable[[str], tuple[bool, str]] | None = None,
    offer_rehearsal: bool = False,
) -> list[Check]:
    """One check per image (naming the services using it): present locally, or built by a
    ``build:`` section (warn: will be built); with ``pullable`` (``--pull-check``) the registry
    is asked about every image that is not built here. With ``offer_rehearsal`` (a real,
    not a rehearsal, run) the fix of a missing image also offers ``--rehearsal``, the offline
    stand-ins that need no registry."""
    offline = (
        "; without a registry, rehearse offline with --rehearsal (stand-in images)"
        if offer_rehearsal
        else ""
    )
    users: dict[str, list[str]] = {}
    built: set[str] = set()
    for name, svc in sorted(stack.active.items()):
        users.setdefault(svc.image, []).append(name)
        if svc.build:
            built.add(svc.image)
    checks: list[Check] = []
    for image, services in sorted(users.items()):
        label = f"image {image}"
        used_by = ", ".join(services)
        local = bool(present.get(image))
        if image in built:
            if not local:
                checks.append(warned(label, f"not built yet (for {used_by}): will be built", ""))
            continue
        if pullable is not None:
            ok, why = pullable(image)
            if not ok and not local:
                checks.append(
                    failed(
                        label,
                        f"neither local nor pullable ({why}); needed by {used_by}",
                        "check the registry is reachable and the tag exists, or `docker load` it"
                        + offline,
                    )
                )
                continue
            if not ok:
                checks.append(
                    warned(
                        label,
                        f"present locally but the registry did not confirm it ({why})",
                        "offline hosts cannot check for updates; the local image will be used",
                    )
                )
                continue
        if not local:
            checks.append(
                failed(
                    label,
                    f"not present locally; needed by {used_by}",
                    f"`docker pull {image}` (or `docker load` it); --pull-check asks the registry"
                    + offline,
                )
            )
    if not checks:
        checks.append(passed("images", f"{len(users)} images present"))
    return checks


# ---- files ----------------------------------------------------------------------------------
def secret_file_checks(env: Environment, extra: Iterable[Path] = ()) -> list[Check]:
    """In prod, files holding secrets must not be readable by group or others."""
    if env.name != "prod":
        return []
    tracked = env.root / "env" / f"{env.name}.env"
    paths = [p for p in (*env.files, *extra) if Path(p).resolve() != tracked.resolve()]
    checks: list[Check] = []
    for path in dict.fromkeys(Path(p) for p in paths):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            checks.append(
                failed(
                    f"permissions ({path.name})",
                    f"{path} holds secrets and is readable by others (mode {mode:04o})",
                    f"chmod 600 {path}",
                )
            )
        else:
            checks.append(passed(f"permissions ({path.name})", f"mode {mode:04o}"))
    return checks




def tls_checks(env: Environment, *, now: _dt.datetime | None = None) -> list[Check]:
    """Where HTTPS is enforced (or optional with certificates configured), the certificate
    and key exist and the certificate lasts at least :data:`CERT_MIN_DAYS` more days."""
    mode = (env.get("HTTPS_MODE") or "disabled").lower()
    cert_raw, key_raw = env.get("TLS_CERT_FILE") or "", env.get("TLS_KEY_FILE") or ""
    if mode == "disabled" or (mode == "optional" and not (cert_raw and key_raw)):
        return []
    checks: list[Check] = []

    def resolve(raw: str) -> Path:
        p = Path(raw).expanduser()
        return p if p.is_absolute() else env.root / p

    for var, raw in (("TLS_CERT_FILE", cert_raw), ("TLS_KEY_FILE", key_raw)):
        if not raw:
            checks.append(
                failed("tls files", f"HTTPS_MODE={mode} but {var} is not set", f"set {var}")
            )
        elif not resolve(raw).is_file():
            checks.append(
                failed(
                    "tls files",
                    f"{var}={raw} does not exist",
                    f"put the file there or fix {var}",
                )
            )
    if checks or not cert_raw:
        return checks
    cert = resolve(cert_raw)
    try:
        not_after = certificate_expiry(cert)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return [
            failed("tls certificate", f"cannot read {cert}: {exc}", "check it is a PEM certificate")
        ]
    now = now or _dt.datetime.now(_dt.UTC)
    days = (not_after - now).total_seconds() / 86400
    when = not_after.strftime("%Y-%m-%d")
    if days < 0:
        return [failed("tls certificate", f"{cert} expired on {when}", "renew the certificate")]
    if days < CERT_MIN_DAYS:
        return [
            failed(
                "tls certificate",
                f"{cert} expires on {when}, in {days:.0f} days (minimum {CERT_MIN_DAYS})",
                "renew the certificate",
            )
        ]
    return [passed("tls certificate", f"valid until {when} ({days:.0f} days)")]


# ---- plugins --------------------------------------------------------------------------------
def plugin_checks(project: Project) -> list[Check]:
    from .hooks.manager import get_plugin_manager

    return list(get_plugin_manager().preflight_checks(project=project) or [])


# ---- all together ---------------------------------------------------------------------------
def run_preflight(
    project: Project,
    *,
    backend: Backend | None = None,
    pull_check: bool = False,
    engine: Engine | None = None,
) -> list[Check]:
    """Every preflight check of ``project``, in a stable order; nothing is changed.

    ``backend`` is where the stack goes (default compose): its ``hard_reservations`` (swarm)
    turns reservations that do not fit into failures. A failed engine check skips what needs
    the engine (shown as ``skip``).
    """
    from concurrent.futures import ThreadPoolExecutor

    engine = engine or Engine(docker_cmd=project.compose.docker_cmd)
    cmd = project.compose.docker_cmd
    # The checks are independent until the images (they need the merged config): the engine
    # (one `docker info`, with `compose version` beside it), the merged config and the port
    # bindings (one `docker ps`) run at once, the file checks meanwhile in this thread. The
    # fixed cost a deploy pays is then about one `compose config` (docs/PERFORMANCE.md). When
    # the engine is down, the failed port listing is simply not read (the engine check says it).
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="preflight") as pool:
        info_job = pool.submit(engine.info)
        config_job = pool.submit(config_checks, project)
        bindings_job = pool.submit(containers.running_port_bindings, cmd)
        late = secret_file_checks(project.env) + tls_checks(project.env)
        info: EngineInfo | None = None
        error = ""
        try:
            info = info_job.result()
        except LakehouseError as exc:
            error = exc.message
        checks = engine_checks(info, error)
        checks += config_job.result()
        stack_ok = all(c.status != Status.FAIL for c in checks if c.name == "compose config")
        checks += disk_checks(project.env, info)
        if info is None or not stack_ok:
            why = "the engine is unreachable" if info is None else "the compose config is invalid"
            for name in ("host resources", "published ports", "images"):
                checks.append(Check(name, Status.SKIP, f"skipped: {why}"))
        else:
            stack = project.stack
            images_job = pool.submit(engine.image_ids, stack.images().values())
            checks += resource_checks(
                stack,
                info,
                hard_reservations=bool(backend and backend.hard_reservations),
                schema=project.env.schema,
            )
            checks += port_checks(stack, project.compose.project_name, bindings_job.result())
            present = images_job.result()

            def pullable(ref: str) -> tuple[bool, str]:
                return engine_images.manifest_available(cmd, ref)

            checks += image_checks(
                stack,
                present,
                pullable=pullable if pull_check else None,
                offer_rehearsal=not project.rehearsal,
            )
    checks += late
    checks += plugin_checks(project)
    return checks


def preflight_failed(checks: Iterable[Check]) -> bool:
    return any(c.status == Status.FAIL for c in checks)
