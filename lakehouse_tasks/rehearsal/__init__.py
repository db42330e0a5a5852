"""Stand-in images for the offline rehearsal (issue 4).

Builds, with nothing but the Debian packages of this machine and the local Docker engine
(no registry is ever contacted):

* ``lakehouse-rehearsal/busybox:<hash>`` - a ``FROM scratch`` image with the machine's static
  busybox, the stand-in program ``/standin/run`` and shims (curl, mc, dbt, trino health-check,
  python, bash, promtool) so the real healthcheck commands of the stack work unchanged.
* ``lakehouse-rehearsal/postgres:<hash>`` - a real PostgreSQL 15 on a debootstrapped Debian
  root, with an entrypoint compatible with the official postgres image.

Both are also tagged ``:rehearsal``. Sources live in ``compose/standins/<kind>/``.
Docker is called through the engine package (:mod:`lakehouse_tasks.engine.images`: build,
import, tag, rmi); only the root file system tools (debootstrap, chroot, tar) run here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

# The image builders live in rehearsal_images; their names stay importable from here (the
# real tier, rehearsal_real, and the tests use them as rehearsal.<name>; __all__ below).
from ..rehearsal_images import (
    BUSYBOX_BINARY,
    DEBIAN_SUITE,
    LAST_BUILD,
    MOVING_TAG,
    POSTGRES_BASE_IMAGE,
    REPO_ROOT,
    REPOSITORY_PREFIX,
    STANDIN_IMAGES,
    STANDINS_DIR,
    Log,
    StandinBuildError,
    _cache_dir,
    _docker_build,
    _files_under,
    _hash_update_file,
    _import_rootfs,
    _read_packages,
    _run,
    _tag,
    _untag_stale,
    build_root_tarball,
    build_standins,
    debian_mirror,
    image_id,
    inputs_hash,
)

# --------------------------------------------------------------------------------------
# Per-service stand-in data
# --------------------------------------------------------------------------------------

# service -> (image kind, http ports {port: health paths}, tcp ports, data dir, one-shot)
_SPECS: dict[str, tuple[str, dict[int, list[str]], list[int], str, bool]] = {
    "minio": (
        "busybox",
        {
            9000: ["/minio/health/live", "/minio/health/ready", "/minio/v2/metrics/cluster"],
            9001: ["/"],
        },
        [],
        "/data",
        False,
    ),
    "minio-init": ("busybox", {}, [], "", True),
    "metastore-db": ("postgres", {}, [], "/var/lib/postgresql/data", False),
    "superset-db": ("postgres", {}, [], "/var/lib/postgresql/data", False),
    "airflow-db": ("postgres", {}, [], "/var/lib/postgresql/data", False),
    "hive-metastore": ("busybox", {}, [9083], "/opt/hive/data/warehouse", False),
    "spark-master": ("busybox", {8080: ["/"]}, [7077], "/opt/spark/work-dir", False),
    "spark-worker-1": ("busybox", {8081: ["/"]}, [], "/opt/spark/work-dir", False),
    "spark-worker-2": ("busybox", {8081: ["/"]}, [], "/opt/spark/work-dir", False),
    "trino": ("busybox", {8080: ["/v1/info"]}, [], "/data/trino", False),
    "superset": ("busybox", {8088: ["/health"]}, [], "/app/superset_home", False),
    "airflow-init": ("busybox", {}, [], "/opt/airflow/logs", True),
    "airflow-webserver": ("busybox", {8080: ["/health"]}, [], "/opt/airflow/logs", False),
    "airflow-scheduler": ("busybox", {8974: ["/health"]}, [], "/opt/airflow/logs", False),
    "ingestor": ("busybox", {8000: ["/health"]}, [], "/data", False),
    "dbt": ("busybox", {}, [], "/usr/app/target", False),
    # monitoring plugin
    "prometheus": (
        "busybox",
        {9090: ["/-/healthy", "/-/ready", "/metrics"]},
        [],
        "/prometheus",
        False,
    ),
    "grafana": ("busybox", {3000: ["/api/health"]}, [], "/var/lib/grafana", False),
    # the TLS reverse proxy of the staging (profile tls) and prod overrides
    "tls-proxy": ("busybox", {80: ["/healthz"], 443: ["/"]}, [], "", False),
}

#: Services that the monitoring plugin adds; its own override swaps their images.
PLUGIN_SERVICES = frozenset({"prometheus", "grafana"})

# Healthchecks that cannot work unchanged on a stand-in, as compose `test` lists. Empty: every
# healthcheck of compose/docker-compose.yaml works through the shims of the busybox image or
# is the real binary in the postgres image. (Trino's probe is the image's own HEALTHCHECK
# instruction, which a stand-in would not inherit; it works only because the compose file
# restates it as ["CMD", "/usr/lib/trino/bin/health-check"], which the busybox image shims.)
_HEALTHCHECK_OVERRIDES: dict[str, list[str]] = {}


def standin_env(service: str) -> dict[str, str]:
    """The STANDIN_* environment of the stand-in of ``service``."""
    try:
        kind, http, tcp, data_dir, oneshot = _SPECS[service]
    except KeyError:
        raise KeyError(f"no stand-in for service {service!r}; known: {sorted(_SPECS)}") from None
    env = {"STANDIN_SERVICE": service}
    if kind == "postgres":
        return env
    env["STANDIN_HTTP_PORTS"] = " ".join(str(p) for p in http)
    for port, paths in http.items():
        env[f"STANDIN_HTTP_PATHS_{port}"] = " ".join(paths)
    env["STANDIN_TCP_PORTS"] = " ".join(str(p) for p in tcp)
    env["STANDIN_DATA_DIR"] = data_dir
    env["STANDIN_ONESHOT"] = "1" if oneshot else "0"
    return env


def _service_standin(service: str) -> dict:
    kind = _SPECS[service][0]
    entry = {
        "image_kind": kind,
        "image": f"{STANDIN_IMAGES[kind]}:{MOVING_TAG}",
        "environment": standin_env(service),
        "healthcheck_override": _HEALTHCHECK_OVERRIDES.get(service),
        "data_dir": _SPECS[service][3] or None,
        "oneshot": _SPECS[service][4],
    }
    if kind == "busybox":
        # The real services set their own entrypoint/command (spark-class, minio server...):
        # the override has to reset both so the stand-in program runs.
        entry["entrypoint"] = ["/standin/run"]
        entry["command"] = []
    else:
        entry["entrypoint"] = ["/usr/local/bin/docker-entrypoint.sh"]
        entry["command"] = ["postgres"]
    return entry


SERVICE_STANDINS: dict[str, dict] = {name: _service_standin(name) for name in _SPECS}


# --------------------------------------------------------------------------------------
# The compose rehearsal override
# --------------------------------------------------------------------------------------

OVERRIDE_PATH = REPO_ROOT / "compose" / "rehearsal.yaml"
#: Stand-ins for services that only some environment overrides define (the TLS proxy of
#: staging and prod): a separate file, so that it never adds the service to dev.
PROXY_OVERRIDE_PATH = REPO_ROOT / "compose" / "rehearsal.proxy.yaml"
OPTIONAL_SERVICES = frozenset({"tls-proxy"})

_OVERRIDE_HEADER = """\
# The rehearsal layer: every service of the stack on its offline stand-in image.
#
# GENERATED from lakehouse_tasks/rehearsal/__init__.py (SERVICE_STANDINS); do not edit by hand:
#   python -m lakehouse_tasks.rehearsal override
# tests/rehearsal/test_override.py fails when this file and the generator disagree.
#
# It swaps the image (and resets build, entrypoint and command so the stand-in program runs)
# and adds the stand-in's STANDIN_* variables. Everything else of the real files stays as it
# is: resource limits and reservations, depends_on conditions, volumes, restart policies,
# logging, ports, networks, the per-environment overrides and the one-shot semantics. The
# real healthchecks stay too: the stand-ins answer them through the same binaries (shims).
#
# A test or an operator can make one service misbehave at start with a variable named
# STANDIN_FAULT_<SERVICE> (upper case, dashes as underscores), for example
# STANDIN_FAULT_HIVE_METASTORE=never-healthy in an --env-file (see compose/standins/README.md).
"""


def fault_variable(service: str) -> str:
    """The variable that sets ``service``'s fault switch at start."""
    return "STANDIN_FAULT_" + service.upper().replace("-", "_")


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def render_override(services: dict[str, dict] | None = None, *, optional: bool = False) -> str:
    """The text of compose/rehearsal.yaml (or, with ``optional``, rehearsal.proxy.yaml)."""
    services = SERVICE_STANDINS if services is None else services
    lines = [_OVERRIDE_HEADER, "services:"]
    for name, spec in services.items():
        if name in PLUGIN_SERVICES or (name in OPTIONAL_SERVICES) != optional:
            continue
        lines.extend(service_override_lines(name, spec))
    lines.append("")
    return "\n".join(lines)


def service_override_lines(name: str, spec: dict) -> list[str]:
    """The override lines that put ``name`` on its stand-in."""
    lines: list[str] = []
    lines.append(f"  {name}:")
    lines.append(f"    image: {spec['image']}")
    lines.append("    build: !reset null")
    lines.append("    pull_policy: never")
    lines.append(f"    entrypoint: {_yaml_list(spec['entrypoint'])}")
    lines.append(f"    command: !reset {_yaml_list(spec['command'])}")
    if spec.get("healthcheck_override"):
        lines.append("    healthcheck:")
        lines.append(f"      test: {_yaml_list(spec['healthcheck_override'])}")
    lines.append("    environment:")
    for key, value in spec["environment"].items():
        lines.append(f"      {key}: {json.dumps(value)}")
    lines.append(f'      STANDIN_FAULT: "${{{fault_variable(name)}:-none}}"')
    return lines


def write_generated(files: Iterable[tuple[Path, str]]) -> bool:
    """Write each generated file whose text differs from ``text``; True when one changed."""
    changed = False
    for path, text in files:
        if not (path.exists() and path.read_text() == text):
            path.write_text(text)
            changed = True
    return changed


def write_override() -> bool:
    """Write compose/rehearsal.yaml and rehearsal.proxy.yaml; True when one changed."""
    return write_generated(
        (path, render_override(optional=optional))
        for path, optional in ((OVERRIDE_PATH, False), (PROXY_OVERRIDE_PATH, True))
    )


#: What this module serves: its own override generator, and the builders' names.
__all__ = [
    "BUSYBOX_BINARY",
    "DEBIAN_SUITE",
    "LAST_BUILD",
    "MOVING_TAG",
    "OPTIONAL_SERVICES",
    "OVERRIDE_PATH",
    "PLUGIN_SERVICES",
    "POSTGRES_BASE_IMAGE",
    "PROXY_OVERRIDE_PATH",
    "REPOSITORY_PREFIX",
    "REPO_ROOT",
    "SERVICE_STANDINS",
    "STANDINS_DIR",
    "STANDIN_IMAGES",
    "Log",
    "StandinBuildError",
    "_cache_dir",
    "_docker_build",
    "_files_under",
    "_hash_update_file",
    "_import_rootfs",
    "_read_packages",
    "_run",
    "_tag",
    "_untag_stale",
    "build_root_tarball",
    "build_standins",
    "debian_mirror",
    "fault_variable",
    "image_id",
    "inputs_hash",
    "render_override",
    "service_override_lines",
    "standin_env",
    "write_generated",
    "write_override",
]
