"""``invoke security``: a report on the merged configuration and the running containers, in
the spirit of the CIS Docker Benchmark (section 5, container runtime), plus the environment's
credentials, secret files and TLS.

Every finding is a :class:`~lakehouse_tasks.checks.Check` (pass / warn / fail / skip with a
one-line hint) grouped by service (or ``credentials``, ``files``, ``tls``). The checks are
plain functions on data (the compose config as a mapping, ``docker inspect`` rows, the
:class:`~lakehouse_tasks.environment.Environment`); :func:`security_report` gathers that data
in a fixed number of docker calls. docs/SECURITY.md explains each check and each accepted
exception (``config.py``).

The package: ``model`` (findings, report), ``config`` (the merged configuration and the running
containers), ``credentials`` (secrets, files, TLS); this module gathers them.

No finding ever contains a secret's value: credential findings name the variable only.
"""

from __future__ import annotations

from typing import Any

from ..engine.containers import inspect_containers, project_containers
from ..engine.images import local_image_users
from ..project import Project
from .config import (
    KNOWN_IMAGE_USERS,
    ROOT_REQUIRED_IMAGES,
    WRITABLE_ROOTFS_SERVICES,
    config_findings,
    container_findings,
    image_repository,
    is_root_user,
)
from .credentials import CERT_WARN_DAYS, credential_findings, file_findings, tls_findings
from .model import (
    CHECK_CAPS,
    CHECK_NNP,
    CHECK_PORTS,
    CHECK_PRIVILEGED,
    CHECK_ROOTFS,
    CHECK_SECRETS,
    CHECK_USER,
    Finding,
    SecurityReport,
)


# ---- the whole report ---------------------------------------------------------------------
def security_report(project: Project, *, inspect_running: bool = True) -> SecurityReport:
    """Every finding for a project. Docker calls: ``compose config`` (offline), and, when
    ``inspect_running``, two for the local images' users plus one ``ps`` and one ``inspect``.
    Without ``inspect_running`` (``--no-containers``) the engine is not asked anything: the
    images' own users are then not known (docs/SECURITY.md)."""
    config = project.compose.config()
    env = project.env
    images = [str(s.get("image", "")) for s in (config.get("services") or {}).values()]
    image_users = local_image_users(project.compose.docker_cmd, images) if inspect_running else {}
    findings = config_findings(config, env=env, image_users=image_users)
    inspected: list[dict[str, Any]] = []
    if inspect_running:
        rows = project_containers(project.compose.docker_cmd, project.compose.project_name)
        ids = [str(r.get("ID", "")) for r in rows if str(r.get("State", "")) == "running"]
        inspected = inspect_containers(project.compose.docker_cmd, ids)
        findings += container_findings(inspected, env=env)
    findings += credential_findings(env) + file_findings(env) + tls_findings(env)
    return SecurityReport(
        environment=env.name,
        findings=tuple(findings),
        containers_inspected=len(inspected),
    )


__all__ = [
    "CERT_WARN_DAYS",
    "CHECK_CAPS",
    "CHECK_NNP",
    "CHECK_PORTS",
    "CHECK_PRIVILEGED",
    "CHECK_ROOTFS",
    "CHECK_SECRETS",
    "CHECK_USER",
    "KNOWN_IMAGE_USERS",
    "ROOT_REQUIRED_IMAGES",
    "WRITABLE_ROOTFS_SERVICES",
    "Finding",
    "SecurityReport",
    "config_findings",
    "container_findings",
    "credential_findings",
    "file_findings",
    "image_repository",
    "is_root_user",
    "security_report",
    "tls_findings",
]
