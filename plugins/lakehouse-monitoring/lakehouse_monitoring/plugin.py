"""Hooks of the ``monitoring`` plugin: Prometheus and Grafana join the stack.

* ``lakehouse_compose_files``: when ``ENABLE_MONITORING`` is true, the rendered
  ``compose/monitoring.yaml`` (see :func:`render_compose_file`), plus
  ``compose/monitoring.rehearsal.yaml`` in rehearsal mode (see :func:`rehearsal_requested`),
  or ``compose/monitoring.rehearsal.real.yaml`` on the real-application tier (Debian's real
  Prometheus; see :func:`real_tier_requested`).
* ``lakehouse_access_urls``: the Prometheus and Grafana web interfaces.
* ``lakehouse_preflight_checks``: both published ports are free on the host, or held by this
  same compose project (a redeploy).

Backups need no hook: ``prometheus-data`` and ``grafana-data`` are plain named volumes of the
merged project, which the core backup archives with every other volume.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse_tasks.plugin import (
    AccessURL,
    Check,
    PublishedPort,
    failed,
    hookimpl,
    passed,
    port_is_free,
    public_host,
    running_port_bindings,
    serve_scrape_dir,
    state_dir,
    warned,
)

from . import PACKAGE_DIR

if TYPE_CHECKING:
    from lakehouse_tasks.plugin import Environment, Project

COMPOSE_TEMPLATE = PACKAGE_DIR / "compose" / "monitoring.yaml"
REHEARSAL_OVERRIDE = PACKAGE_DIR / "compose" / "monitoring.rehearsal.yaml"
#: The real-application tier's override: real Prometheus, Grafana's stand-in.
REAL_REHEARSAL_OVERRIDE = PACKAGE_DIR / "compose" / "monitoring.rehearsal.real.yaml"

#: The interpolation the template uses for its bind-mount sources (with or without a
#: ``:?message`` / ``:-default`` modifier).
MONITORING_DIR_VARIABLE = "LAKEHOUSE_MONITORING_DIR"
_MONITORING_DIR_RE = re.compile(r"\$\{" + MONITORING_DIR_VARIABLE + r"(?::[?-][^}]*)?\}")
#: The directory of `invoke serve`'s scrape token, mounted into Prometheus (0700, its user's).
SCRAPE_DIR_VARIABLE = "LAKEHOUSE_SERVE_SCRAPE_DIR"
_SCRAPE_DIR_RE = re.compile(r"\$\{" + SCRAPE_DIR_VARIABLE + r"(?::[?-][^}]*)?\}")

#: The process-environment switch the tasks' ``--rehearsal`` flag also honours.
REHEARSAL_VARIABLE = "LAKEHOUSE_REHEARSAL"
_TRUE = frozenset({"1", "true", "yes", "on"})
#: The switch of the rehearsal's real-application tier (docs/REHEARSAL.md).
TIER_VARIABLE = "LAKEHOUSE_REHEARSAL_TIER"

#: (service, interface name, port variable, default host port, path).
INTERFACES: tuple[tuple[str, str, str, int, str], ...] = (
    ("prometheus", "Prometheus", "PROMETHEUS_PORT", 9090, "/"),
    ("grafana", "Grafana", "GRAFANA_PORT", 3000, "/"),
)


# ---- switches -------------------------------------------------------------------------------
def monitoring_enabled(env: Environment) -> bool:
    return env.flag("ENABLE_MONITORING", default=False)


def rehearsal_requested(env: Environment) -> bool:
    """Whether the tool runs in rehearsal mode, as far as ``lakehouse_compose_files`` can tell.

    The hook receives only the environment, and ``--rehearsal`` is not part of it; the only
    signal visible here is ``LAKEHOUSE_REHEARSAL`` (an env-file value or the process
    environment), which the tasks treat like ``--rehearsal``. ``--rehearsal`` given on the
    command line alone is NOT visible to this hook (see docs/PLUGINS.md).
    """
    raw = env.get(REHEARSAL_VARIABLE) or os.environ.get(REHEARSAL_VARIABLE) or ""
    return raw.strip().lower() in _TRUE


def real_tier_requested(env: Environment) -> bool:
    """Whether the rehearsal runs its real-application tier: ``LAKEHOUSE_REHEARSAL_TIER=real``
    in an env file or the process environment, as the core reads it."""
    raw = env.get(TIER_VARIABLE) or os.environ.get(TIER_VARIABLE) or ""
    return raw.strip().lower() == "real"


# ---- the compose file -----------------------------------------------------------------------
def render_compose_text(
    template: str, package_dir: Path = PACKAGE_DIR, scrape_dir: Path | None = None
) -> str:
    """``template`` with ``${LAKEHOUSE_MONITORING_DIR...}`` replaced by ``package_dir`` (and
    ``${LAKEHOUSE_SERVE_SCRAPE_DIR...}`` by ``scrape_dir`` when given).

    Compose resolves relative bind-mount sources against the project directory (the repository
    root), not against the file that declares them, so the sources must be absolute. A ``$`` in
    the directory is doubled so compose does not read it as interpolation.
    """
    absolute = str(Path(package_dir).resolve()).replace("$", "$$")
    text = _MONITORING_DIR_RE.sub(lambda _match: absolute, template)
    if scrape_dir is not None:
        scrape = str(Path(scrape_dir).resolve()).replace("$", "$$")
        text = _SCRAPE_DIR_RE.sub(lambda _match: scrape, text)
    return text


def render_compose_file(
    directory: Path, package_dir: Path = PACKAGE_DIR, scrape_dir: Path | None = None
) -> Path:
    """Write the rendered ``monitoring.yaml`` into ``directory`` and return its path.

    The file is only rewritten when its content changes, and atomically (temporary file then
    rename), so concurrent tasks never read half a file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if scrape_dir is None:  # by hand or in tests: an empty one beside the file (no scrape)
        scrape_dir = directory / "serve-scrape"
        scrape_dir.mkdir(mode=0o700, exist_ok=True)
    target = directory / COMPOSE_TEMPLATE.name
    text = render_compose_text(
        COMPOSE_TEMPLATE.read_text(encoding="utf-8"), package_dir, scrape_dir
    )
    try:
        if target.read_text(encoding="utf-8") == text:
            return target
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".monitoring-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def rendered_dir(env: Environment) -> Path:
    """Where the rendered compose file lives: the tool's state dir, beside the project."""
    return state_dir(env.root) / "plugins" / "monitoring"


def compose_files_for(env: Environment, rehearsal: bool = False) -> list[Path]:
    """The compose files this plugin adds to ``env`` (none when monitoring is off)."""
    if not monitoring_enabled(env):
        return []
    files = [render_compose_file(rendered_dir(env), scrape_dir=serve_scrape_dir(env.root))]
    # Grafana's credentials: as files where the environment wants secrets as files.
    kind = "files" if env.flag("SENSITIVE_AS_FILES") else "env"
    files.append(PACKAGE_DIR / "compose" / f"monitoring.secrets-{kind}.yaml")
    if rehearsal or rehearsal_requested(env):
        files.append(REAL_REHEARSAL_OVERRIDE if real_tier_requested(env) else REHEARSAL_OVERRIDE)
    return files


# ---- access URLs ----------------------------------------------------------------------------
def access_urls_for(env: Environment) -> list[AccessURL]:
    if not monitoring_enabled(env):
        return []
    host = public_host(env.get("BIND_ADDRESS", "127.0.0.1"))
    urls = []
    for service, name, variable, default, path in INTERFACES:
        port = (env.get(variable) or str(default)).strip()
        # Not behind the TLS proxy (it fronts the core UIs only): always plain HTTP.
        note = "monitoring plugin" + (
            "; sign in as GRAFANA_ADMIN_USER" if service == "grafana" else ""
        )
        urls.append(AccessURL(name, f"http://{host}:{port}{path}", note, service))
    return urls


# ---- preflight ------------------------------------------------------------------------------
def port_checks_for(
    project: Project,
    *,
    bindings: list[dict[str, Any]] | None = None,
    is_free: Any = None,
) -> list[Check]:
    """One check per monitoring port: free, or held by this same compose project.

    Reuses the core's bind test (:func:`lakehouse_tasks.plugin.port_is_free`) and its one
    ``docker ps`` query for who holds a port. ``bindings`` and ``is_free`` are for tests.
    """
    env = project.env
    if not monitoring_enabled(env):
        return []
    is_free = is_free or port_is_free
    bind = (env.get("BIND_ADDRESS") or "127.0.0.1").strip()
    own_project = project.compose.project_name
    checks: list[Check] = []
    for service, _name, variable, default, _path in INTERFACES:
        raw = (env.get(variable) or str(default)).strip()
        label = f"monitoring port {variable}"
        try:
            port = int(raw)
        except ValueError:
            checks.append(
                failed(label, f"{variable}={raw!r} is not a port", f"set {variable} to 1-65535")
            )
            continue
        free, reason = is_free(PublishedPort(bind, port, 3000 if service == "grafana" else 9090))
        if free:
            checks.append(passed(label, f"{service} port {port} is free"))
            continue
        if bindings is None:
            try:
                bindings = running_port_bindings(project)
            except Exception:  # engine unreachable: the core preflight reports that itself
                bindings = []
        holders = [b for b in bindings if int(b["port"]) == port]
        if holders and all(b.get("project") == own_project for b in holders):
            checks.append(passed(label, f"{service} port {port} is held by this project"))
            continue
        who = ", ".join(str(b.get("container")) for b in holders) or "another process"
        hint = f"stop {who} or set {variable} to a free port in env/{env.name}.local.env"
        if reason.startswith("needs privileges"):
            # The engine binds as root; this process merely could not test the port.
            checks.append(warned(label, f"{service} port {port} {reason}", hint))
        elif reason == "in use":
            checks.append(failed(label, f"{service} port {port} is in use by {who}", hint))
        else:
            checks.append(failed(label, f"{service} port {port}: {reason}", hint))
    return checks


# ---- hooks ----------------------------------------------------------------------------------
@hookimpl
def lakehouse_compose_files(env: Environment, rehearsal: bool) -> list[Path]:
    return compose_files_for(env, rehearsal)


@hookimpl
def lakehouse_access_urls(env: Environment) -> list[AccessURL]:
    return access_urls_for(env)


@hookimpl
def lakehouse_preflight_checks(project: Project) -> list[Check]:
    return port_checks_for(project)
